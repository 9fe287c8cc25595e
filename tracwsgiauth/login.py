"""The login decision, with no Trac import.

Given `Settings` (read from trac.ini once, when it is (re)read) and a way
to read an account (`read_account(name)` -> the user's session
attributes, plus ``known`` when the user has an authenticated session),
a `Login` tells whether a credential is accepted, refused (`Refused`, and
why) or unknown.  It holds the verified-credential cache and
AccountManager's lock, approval and e-mail verification rules.
"""

import collections
import hashlib
import os
import threading
import time

from . import apptokens, hashes
from .lockout import LOCK_ATTRIBUTES, LockPolicy
from .names import canonical_name

class Refused(Exception):
    """The password is right but the account may not log in."""


#: What one environment's logins need of its trac.ini.
Settings = collections.namedtuple('Settings', [
    'scope',            # what keys verified credentials (the env path)
    'domains', 'realms', 'lowercase',   # the name rule
    'cache_size', 'cache_ttl',
    'verify_email',     # [account-manager] verify_email
    'lock',             # a LockPolicy
])


#: The defaults of the ``[wsgiauth]`` options a login reads (the Trac
#: component declares the options with these defaults and their docs).
DEFAULTS = {'strip_domains': '', 'strip_realms': '', 'cache_size': 1000,
            'cache_ttl': 300, 'allow_hosts': '', 'deny_hosts': '',
            'realm': 'trac', 'hash_scheme': 'bcrypt',
            'postgres_pooling': True, 'connect_timeout': 5,
            'svn_url': '/svn', 'git_url': '/git', 'audit_log': '',
            'address_failures': 0, 'address_window': 180,
            'address_block_time': 600, 'failure_delay': 1}


def read_settings(scope, config):
    """The `Settings` of an environment from its trac.ini, read through
    `config`: Trac's own Configuration or a `tracini.TracIni`, which
    answer get/getbool/getint/getlist alike."""
    def listed(option):
        return frozenset(v.lower() for v in config.getlist(
            'wsgiauth', option, DEFAULTS[option]))
    return Settings(
        scope=scope, domains=listed('strip_domains'),
        realms=listed('strip_realms'),
        lowercase=config.getbool('trac', 'ignore_auth_case', False),
        cache_size=config.getint('wsgiauth', 'cache_size',
                                 DEFAULTS['cache_size']),
        cache_ttl=config.getint('wsgiauth', 'cache_ttl',
                                DEFAULTS['cache_ttl']),
        verify_email=config.getbool('account-manager', 'verify_email', True),
        lock=LockPolicy.from_options(
            lambda name: config.get('account-manager', name, None)))


class VerifiedCache(object):
    """Remembers, within one process, which (user, stored hash, password)
    triples verified, so a slow hash is not computed again for the next
    request with the same credentials.

    Only a keyed BLAKE2b digest of the triple (a MAC, keyed with a
    random per-process secret) is kept -- never the password. The stored
    hash is part of the key, so a new password misses at once; the
    caller still reads the stored hash and the account state on every
    check. Failures are never stored.
    """

    def __init__(self):
        self._secret = os.urandom(32)
        self._entries = collections.OrderedDict()
        self._lock = threading.Lock()

    def _key(self, scope, name, stored, password):
        data = '\0'.join((scope, name, stored, password))
        return hashlib.blake2b(data.encode('utf-8', 'surrogatepass'),
                               key=self._secret, digest_size=32).digest()

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

    def left(self, scope, name, stored, password, ttl):
        """Seconds the triple stays remembered, 0 when it is not."""
        added = self._entries.get(self._key(scope, name, stored, password))
        return 0 if added is None else max(0, added + ttl - time.monotonic())

    def add(self, scope, name, stored, password, size):
        key = self._key(scope, name, stored, password)
        with self._lock:
            self._entries[key] = time.monotonic()
            self._entries.move_to_end(key)
            while len(self._entries) > size:
                self._entries.popitem(last=False)


#: One per process, shared by the environments it serves: account
#: passwords, and app passwords (their own, so that no key of one can
#: ever stand for the other).
verified = VerifiedCache()
verified_apps = VerifiedCache()


class Login(object):
    """How one environment checks a login.

    :param read_account: `read_account(name)` -> dict of the user's
        session attributes, plus ``known`` when the user has an
        authenticated session; read as the database is now.
    :param typical_hash: `typical_hash()` -> a stored password value
        typical of this environment's users, whose verification an
        unknown user is made to cost (so that user names cannot be told
        by timing).
    :param record: `record(name, event)` queues what AccountGuard writes
        for a failed login of a known user (event: (address, time), or
        (address, time, 'locked') while the account is locked) or a
        right one that ends a count (event: None); see `guard`.
    """

    def __init__(self, settings, read_account, typical_hash,
                 record=lambda name, event: None):
        self.settings = settings
        self._read = read_account
        self._typical = typical_hash
        self._record = record
        self._canonical = {}

    def canonical(self, name):
        """The Trac user name for a login name, or None to refuse it;
        remembered for the names of the last logins (the rule is of
        trac.ini alone, which a new `Login` reads)."""
        known = self._canonical
        if name in known:
            return known[name]
        s = self.settings
        found = canonical_name(name, s.domains, s.realms, s.lowercase)
        if len(known) >= 4096:
            known.clear()
        known[name] = found
        return found

    def authenticate(self, name, password, address=None, attrs=None):
        """Check a credential of a canonical user name, sent from
        `address`; `attrs`: the account as just read, else read.

        Returns None when the user has no password here, False when the
        password is wrong (a failed login, as AccountGuard counts one),
        and raises `Refused` when it is right but the account is not
        approved, and when the account is locked, right or wrong: then
        both cost the same (the cache is not asked) and both count as a
        failed login, so that neither the answer nor the writes it causes
        tell the right password.
        """
        if attrs is None:
            attrs = self._read(name)
        stored = attrs.get('password')
        if stored is None:
            # cost what a wrong password of a typical user costs
            hashes.verify(self._typical(), name, password)
            return None
        now = time.time()
        if self.settings.lock.locked(attrs, now):
            # right or wrong: the same work, the same write, the same
            # answer (nothing tells the right password while locked)
            hashes.verify(stored, name, password)
            self._record(name, (address, now, 'locked'))
            raise Refused('account locked after failed logins')
        if not self._verify(name, stored, password):
            self._record(name, (address, now))
            return False
        self.check_state(attrs)
        if self.settings.lock.max_count > 0 and \
                any(key in attrs for key in LOCK_ATTRIBUTES):
            self._record(name, None)        # a right login ends the count
        return True

    def authenticate_app(self, name, password, token, address=None,
                         attrs=None):
        """Check an app password (`apptokens`) of a canonical user name,
        given its row `token` (a dict of `apptokens.FIND`'s columns, or
        None). Its scope when it is right; False when it is wrong,
        expired or another user's (a failed login); raises `Refused` as
        `authenticate` does. The account must still exist, and its state
        applies. `attrs`: the account as just read, else read."""
        if attrs is None:
            attrs = self._read(name)
        token_id, secret = apptokens.parse(password)
        now = time.time()
        locked = self.settings.lock.locked(attrs, now)
        right = token is not None and token['username'] == name and \
            self._verify_app(name, token, token_id, secret, password,
                             cached=not locked) and \
            not (token['expires'] and token['expires'] <= now) and \
            bool(attrs.get('known'))
        if locked:
            self._record(name, (address, now, 'locked'))  # as `authenticate`
            raise Refused('account locked after failed logins')
        if not right:
            if attrs.get('known'):
                self._record(name, (address, now))
            return False
        self.check_state(attrs)
        return token['scope']

    def remembered_for(self, name, password, attrs, token=None):
        """Seconds the verification of `password` -- the account's, as
        `attrs` store it, or the app password of row `token` -- stays
        remembered (``cache_ttl``); 0 when it is not."""
        s = self.settings
        if s.cache_size < 1 or s.cache_ttl < 1:
            return 0    # the cache is off, whatever it still holds
        if token is not None:
            return verified_apps.left(s.scope, name, token['hash'],
                                      password, s.cache_ttl)
        return verified.left(s.scope, name, attrs.get('password') or '',
                             password, s.cache_ttl)

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
        """Why an account may not log in, or None when it may: locked or
        not approved, whether its password is stored here or not (SSPI,
        Kerberos). Also why its Trac session must end."""
        try:
            self.check_state(self._read(name))
        except Refused as e:
            return str(e)

    def group_refusal(self, name, attrs=None):
        """Why `name` must be in no group for Apache, or None: refused,
        or an e-mail address not verified yet (AccountManager lets such
        a user log in, to verify, with no more than anonymous's
        permissions). `attrs`: the account as just read, else read."""
        if attrs is None:
            attrs = self._read(name)
        try:
            self.check_state(attrs)
        except Refused as e:
            return str(e)
        if attrs.get('email_verification_token') is not None and \
                self.settings.verify_email:
            return 'e-mail address not verified'
        return None

    def check_state(self, attrs):
        """Raise `Refused` when the account state forbids a login."""
        if attrs.get('approval'):
            raise Refused('account approval %s' % attrs['approval'][:40])
        if self.settings.lock.locked(attrs, time.time()):
            raise Refused('account locked after failed logins')

    def _verify(self, name, stored, password):
        return self._remembered(verified, name, stored, password,
                                lambda: hashes.verify(stored, name, password))

    def _verify_app(self, name, token, token_id, secret, password,
                    cached=True):
        """Whether an app password matches its row; remembered as
        account passwords are, except while the account is locked (then
        right and wrong cost the same)."""
        def check():
            return apptokens.matches(token['hash'], token_id, secret)
        if not cached:
            return check()
        return self._remembered(verified_apps, name, token['hash'],
                                password, check)

    def _remembered(self, cache, name, stored, password, check):
        """`check()` of a password against `stored`, remembered in
        `cache` (a `VerifiedCache`) when it verified."""
        s = self.settings
        if s.cache_size < 1 or s.cache_ttl < 1:
            return check()
        if cache.hit(s.scope, name, stored, password, s.cache_ttl):
            return True
        if not check():
            return False
        cache.add(s.scope, name, stored, password, s.cache_size)
        return True


class TypicalHash(object):
    """A stored password typical of an environment's users, for unknown
    users to cost what a wrong password costs: one of the most common
    scheme among them (the middle one, so with the usual cost
    parameters), looked at again every `refresh` seconds.

    :param read_stored: `read_stored()` -> stored password values
    :param fallback: `fallback()` -> a value when none are stored
    """

    refresh = 300

    def __init__(self, read_stored, fallback):
        self._read, self._fallback = read_stored, fallback
        self._value, self._when = None, None

    def __call__(self):
        now = time.monotonic()
        if self._when is None or now - self._when > self.refresh:
            self._value, self._when = self._pick(), now
        return self._value

    def _pick(self):
        by_scheme = {}
        for stored in self._read():
            by_scheme.setdefault(hashes.scheme(stored), []).append(stored)
        by_scheme.pop(None, None)
        if not by_scheme:
            return self._fallback()
        common = max(by_scheme.values(), key=len)
        return sorted(common)[len(common) // 2]


def dummy_hash(scheme, realm):
    """A hash of no one's password, in `scheme`."""
    return lambda: hashes.make(scheme, '', 'not a password', realm)
