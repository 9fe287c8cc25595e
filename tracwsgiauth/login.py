"""The login decision, with no Trac import.

Given `Settings` (read from trac.ini once, when it is (re)read) and a way
to read an account (`read_account(name)` -> the user's session
attributes, plus ``known`` when the user has an authenticated session),
a `Login` tells whether a credential is accepted, refused (`Refused`, and
why) or unknown.  It holds the verified-credential cache and
AccountManager's lock, approval and e-mail verification rules.
"""

import collections
import hmac
import os
import re
import threading
import time

from . import hashes
from .names import canonical_name

#: AccountManager writes ``failed_logins`` as a Python repr of a list of
#: dicts; read only the ``time`` numbers out of it, never evaluate it.
_ATTEMPT_TIME = re.compile(r"""['"]time['"]\s*:\s*(\d{1,12})\b""")

#: A lock option AccountManager cannot read either: accounts whose lock
#: state depends on it are refused (fail closed).
INVALID = object()


class Refused(Exception):
    """The password is right but the account may not log in."""


def _integer(text, default):
    """An ``[account-manager]`` integer read as Trac's IntOption reads it
    (empty is 0), or INVALID."""
    if text is None:
        return default
    try:
        return int(text or 0)
    except ValueError:
        return INVALID


def _progression(text):
    """``user_lock_time_progression`` as AccountGuard reads it: below 1
    or unreadable is 1; infinite makes AccountGuard fail (INVALID)."""
    try:
        value = float(text if text is not None else 1)
    except ValueError:
        return 1
    if value != value:          # NaN: AccountGuard falls back to 1
        return 1
    if value in (float('inf'), float('-inf')):
        return INVALID
    return max(value, 1)


class LockPolicy(collections.namedtuple(
        'LockPolicy', 'max_count lock_time max_time progression')):
    """AccountManager's ``[account-manager]`` lock options, read the way
    its AccountGuard reads them (and fixes them: ``user_lock_max_time``
    below 1 is 86400, a negative ``login_attempt_max_count`` turns the
    guard off)."""

    @classmethod
    def from_options(cls, get):
        """`get(name)`: the raw text of an option, or None when unset.
        Raises ValueError when ``login_attempt_max_count`` is not a
        number: AccountManager then refuses every login, and so do we."""
        max_count = _integer(get('login_attempt_max_count'), 0)
        if max_count is INVALID:
            raise ValueError('[account-manager] login_attempt_max_count '
                             'is not an integer')
        max_time = _integer(get('user_lock_max_time'), 86400)
        if max_time is not INVALID and max_time < 1:
            max_time = 86400
        return cls(max_count, _integer(get('user_lock_time'), 0), max_time,
                   _progression(get('user_lock_time_progression')))

    def locked(self, attrs, now):
        """AccountGuard.user_locked for these attributes, read-only; True
        also where AccountGuard would fail on a value it cannot read."""
        if self.max_count < 1 or 'failed_logins_count' not in attrs:
            return False
        try:
            count = int(attrs['failed_logins_count'])
        except ValueError:
            return True         # unreadable: fail closed
        if count < self.max_count or not attrs.get('known'):
            return False        # AccountManager only locks known users
        if self.lock_time is INVALID:
            return True
        if self.lock_time == 0:
            return True         # until an administrator unlocks it
        attempts = _ATTEMPT_TIME.findall(attrs.get('failed_logins') or '')
        if not attempts or INVALID in (self.max_time, self.progression):
            return True
        return int(attempts[-1]) + self._lock_time(attrs) > now

    def _lock_time(self, attrs):
        try:
            lock_count = int(attrs.get('lock_count') or 0)
        except ValueError:
            lock_count = 0
        length = self.lock_time * self.progression ** (lock_count - 1)
        return min(length, self.max_time)


#: What one environment's logins need of its trac.ini.
Settings = collections.namedtuple('Settings', [
    'scope',            # what keys verified credentials (the env path)
    'domains', 'realms', 'lowercase',   # the name rule
    'cache_size', 'cache_ttl',
    'verify_email',     # [account-manager] verify_email
    'lock',             # a LockPolicy
])


class VerifiedCache(object):
    """Remembers, within one process, which (user, stored hash, password)
    triples verified, so a slow hash is not computed again for the next
    request with the same credentials.

    Only an HMAC of the triple, keyed with a random per-process secret,
    is kept -- never the password. The stored hash is part of the key, so
    a new password misses at once; the caller still reads the stored hash
    and the account state on every check. Failures are never stored.
    """

    def __init__(self):
        # keyed once; each key is a copy of this HMAC-SHA256 state
        self._keyed = hmac.new(os.urandom(32), digestmod='sha256')
        self._entries = collections.OrderedDict()
        self._lock = threading.Lock()

    def _key(self, scope, name, stored, password):
        data = '\0'.join((scope, name, stored, password))
        mac = self._keyed.copy()
        mac.update(data.encode('utf-8', 'surrogatepass'))
        return mac.digest()

    def hit(self, scope, name, stored, password, ttl):
        key = self._key(scope, name, stored, password)
        with self._lock:
            added = self._entries.get(key)
            if added is None:
                return False
            if time.monotonic() - added > ttl:
                del self._entries[key]
                return False
            self._entries.move_to_end(key)
            return True

    def add(self, scope, name, stored, password, size):
        key = self._key(scope, name, stored, password)
        with self._lock:
            self._entries[key] = time.monotonic()
            self._entries.move_to_end(key)
            while len(self._entries) > size:
                self._entries.popitem(last=False)


#: One per process, shared by the environments it serves.
verified = VerifiedCache()


class Login(object):
    """How one environment checks a login.

    :param read_account: `read_account(name)` -> dict of the user's
        session attributes, plus ``known`` when the user has an
        authenticated session; read as the database is now.
    :param typical_hash: `typical_hash()` -> a stored password value
        typical of this environment's users, whose verification an
        unknown user is made to cost (so that user names cannot be told
        by timing).
    """

    def __init__(self, settings, read_account, typical_hash):
        self.settings = settings
        self._read = read_account
        self._typical = typical_hash

    def canonical(self, name):
        """The Trac user name for a login name, or None to refuse it."""
        s = self.settings
        return canonical_name(name, s.domains, s.realms, s.lowercase)

    def authenticate(self, name, password):
        """Check a credential of a canonical user name.

        Returns None when the user has no password here, False when the
        password is wrong, and raises `Refused` when it is right but the
        account is locked, awaiting approval or unverified.
        """
        attrs = self._read(name)
        stored = attrs.get('password')
        if stored is None:
            # cost what a wrong password of a typical user costs
            hashes.verify(self._typical(), name, password)
            return None
        if not self._verify(name, stored, password):
            return False
        self.check_state(attrs)
        return True

    def realm_hash(self, name, realm):
        """The htdigest hash of a user for `realm`, or None."""
        attrs = self._read(name)
        stored = attrs.get('password')
        if stored is None or hashes.digest_realm(stored) != realm:
            return None
        try:
            self.check_state(attrs)
        except Refused:
            return None
        return stored.rsplit(':', 1)[1]

    def refusal(self, name):
        """Why an account may not log in, or None when it may."""
        try:
            self.check_state(self._read(name))
        except Refused as e:
            return str(e)

    def session_refusal(self, name):
        """Why a Trac session of `name` must end, or None. A user with no
        password here (authenticated by another provider: SSPI,
        Kerberos) is refused only while locked or not approved."""
        attrs = self._read(name)
        try:
            self.check_state(attrs, email='password' in attrs)
        except Refused as e:
            return str(e)

    def check_state(self, attrs, email=True):
        """Raise `Refused` when the account state forbids a login."""
        if attrs.get('approval'):
            raise Refused('account approval %s' % attrs['approval'][:40])
        if email and attrs.get('email_verification_token') is not None \
                and self.settings.verify_email:
            raise Refused('e-mail address not verified')
        if self.settings.lock.locked(attrs, time.time()):
            raise Refused('account locked after failed logins')

    def _verify(self, name, stored, password):
        s = self.settings
        if s.cache_size < 1 or s.cache_ttl < 1:
            return hashes.verify(stored, name, password)
        if verified.hit(s.scope, name, stored, password, s.cache_ttl):
            return True
        if not hashes.verify(stored, name, password):
            return False
        verified.add(s.scope, name, stored, password, s.cache_size)
        return True
