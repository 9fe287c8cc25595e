"""Accounts over a Trac environment's own tables, for HTTP authentication.

Passwords live where TracAccountManager's SessionStore keeps them
(``session_attribute``, ``name='password'``, ``authenticated=1``); groups
come from Trac's permission system.  AccountManager need not be installed,
but its account state (lock, approval, e-mail verification) is honoured.
Checking a credential never writes to the database.
"""

import collections
import contextlib
import hmac
import ipaddress
import os
import re
import threading
import time

from trac.config import ChoiceOption, IntOption, ListOption, Option
from trac.core import Component
from trac.db.api import parse_connection_uri
from trac.perm import PermissionSystem
from trac.util import lazy

from . import hashes
from .names import canonical_name
from .sqlite import SQLiteReader

SECTION = 'wsgiauth'

#: The session attributes one check reads, and a ``known`` row when the
#: user has an authenticated session (AccountManager locks only those).
_ATTRIBUTES = ('password', 'approval', 'email_verification_token',
               'failed_logins_count', 'failed_logins', 'lock_count')
_ACCOUNT_QUERY = """
    SELECT name, value FROM session_attribute
     WHERE sid=%%s AND authenticated=1 AND name IN (%s)
    UNION ALL
    SELECT 'known', '1' FROM session WHERE sid=%%s AND authenticated=1
    """ % ','.join("'%s'" % a for a in _ATTRIBUTES)
_SQLITE_ACCOUNT_QUERY = _ACCOUNT_QUERY.replace('%s', '?')

#: AccountManager writes ``failed_logins`` as a Python repr of a list of
#: dicts; read only the ``time`` numbers out of it, never evaluate it.
_ATTEMPT_TIME = re.compile(r"""['"]time['"]\s*:\s*(\d{1,12})\b""")


class Refused(Exception):
    """The password is right but the account may not log in."""


class SchemaDrift(Exception):
    """The database session is not in the environment's schema (a
    connection pooler shares PostgreSQL sessions between environments)."""


#: What PostgreSQL says a transaction's schema is.
SCHEMA_QUERY = "SELECT current_schema(), current_setting('search_path')"


def postgres_schema(database):
    """The schema of a ``postgres://`` database URI (``public`` when none
    is given), or None for other databases."""
    scheme, args = parse_connection_uri(database)
    if scheme != 'postgres':
        return None
    return args.get('params', {}).get('schema') or 'public'


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


class AuthStore(Component):
    """Check user names and passwords against this environment's users,
    and tell which permission groups a user belongs to, for Apache
    (mod_wsgi) authentication and authorisation.

    Passwords are read where TracAccountManager stores them, in any of
    the hash formats it writes; AccountManager's lock, approval and
    e-mail verification state is honoured.
    """

    strip_domains = ListOption(SECTION, 'strip_domains', '',
        doc="""Windows domains whose `DOMAIN\\user` prefix is removed from
        a login name (`*` for any domain), compared without regard to
        case. A name with a domain that is not listed is kept whole and
        so matches only a Trac user of exactly that name. Empty (the
        default): names are never changed.""")

    strip_realms = ListOption(SECTION, 'strip_realms', '',
        doc="""Kerberos realms whose `user@REALM` suffix (after the last
        `@`) is removed from a login name (`*` for any realm), compared
        without regard to case. Leave it empty when Trac user names are
        e-mail addresses.""")

    hash_scheme = ChoiceOption(SECTION, 'hash_scheme', hashes.SCHEMES,
        doc="""Hash scheme of the passwords `trac-admin wsgiauth passwd`
        writes: `bcrypt`, `sha512` or `sha256` (SHA-crypt), `md5`
        (`$apr1$`), `sha` (`{SHA}`), `crypt` (DES, weak) or `htdigest`
        (needed for HTTP Digest; uses `realm`). Existing passwords in
        any of these forms keep working whatever this says.""")

    realm = Option(SECTION, 'realm', 'trac',
        doc="""Realm of the htdigest passwords this plugin writes, and the
        `AuthName` of the Apache configuration `deploy` writes. For HTTP
        Digest the stored realm must equal Apache's `AuthName`; set
        `[account-manager] db_htdigest_realm` to the same value when
        AccountManager writes passwords too.""")

    allow_hosts = ListOption(SECTION, 'allow_hosts', '',
        doc="""Client addresses or networks (`192.0.2.0/24`, `::1`) that
        may reach locations guarded by `WSGIAccessScript`. Empty: all
        that `deny_hosts` does not name.""")

    deny_hosts = ListOption(SECTION, 'deny_hosts', '',
        doc="""Client addresses or networks refused by `WSGIAccessScript`,
        even when `allow_hosts` names them too.""")

    cache_size = IntOption(SECTION, 'cache_size', 1000,
        doc="""How many verified credentials each Apache process remembers
        so that slow hashes (bcrypt, SHA-crypt) are not computed again on
        every request. Only a keyed hash of each credential is kept;
        the stored password and account state are still taken from the
        database as it is at each request, so a new password, a lock or a
        revoked approval count at once. 0 turns the cache off.""")

    cache_ttl = IntOption(SECTION, 'cache_ttl', 300,
        doc="""Seconds a verified credential is remembered (see
        `cache_size`).""")

    # -- checking a login (see `Rules`)

    def rules(self):
        """The login rules of this environment, with trac.ini read now."""
        return Rules(self)

    def canonical(self, name):
        """The Trac user name for a login name, or None to refuse it."""
        return canonical_name(
            name, self.strip_domains, self.strip_realms,
            self.config.getbool('trac', 'ignore_auth_case'))

    def authenticate(self, name, password):
        """Check a credential of a canonical user name (see
        `Rules.authenticate`)."""
        return self.rules().authenticate(name, password)

    def realm_hash(self, name, realm):
        """The htdigest hash of a user for `realm`, or None."""
        return self.rules().realm_hash(name, realm)

    def refusal(self, name):
        """Why an account may not log in, or None when it may."""
        return self.rules().refusal(name)

    # -- passwords

    def set_password(self, name, password):
        """Store a password for a user, in `hash_scheme`."""
        stored = hashes.make(self.hash_scheme, name, password, self.realm)
        with self.env.db_transaction as db:
            self._check_schema(db)
            if not db("SELECT 1 FROM session WHERE sid=%s AND authenticated=1",
                      (name,)):
                db("INSERT INTO session (sid, authenticated, last_visit) "
                   "VALUES (%s, 1, %s)", (name, int(time.time())))
            db("DELETE FROM session_attribute "
               "WHERE sid=%s AND authenticated=1 AND name='password'",
               (name,))
            db("INSERT INTO session_attribute "
               "(sid, authenticated, name, value) "
               "VALUES (%s, 1, 'password', %s)", (name, stored))

    def delete_password(self, name):
        """Remove a user's password; True when there was one."""
        with self.env.db_transaction as db:
            self._check_schema(db)
            found = bool(db("SELECT 1 FROM session_attribute WHERE sid=%s "
                            "AND authenticated=1 AND name='password'",
                            (name,)))
            db("DELETE FROM session_attribute "
               "WHERE sid=%s AND authenticated=1 AND name='password'",
               (name,))
        return found

    # -- groups

    def groups(self, name):
        """All permission groups of a user, as Trac's permission system
        knows them, including groups of groups and the groups of
        `authenticated` and of groups plugins provide."""
        perm = PermissionSystem(self.env)
        with self._reading():
            # Trac's own queries below join this transaction
            groups = set(perm.get_permission_groups(name))
            rows = perm.get_all_permissions()
        members = {name} | groups
        grown = True
        while grown:
            grown = False
            for subject, action in rows:
                if subject in members and not action.isupper() \
                        and action not in members:
                    members.add(action)
                    groups.add(action)
                    grown = True
        groups.discard(name)
        return sorted(groups)

    # -- hosts

    def host_allowed(self, address):
        """Whether a client address passes `allow_hosts`/`deny_hosts`."""
        try:
            address = ipaddress.ip_address(address)
        except ValueError:
            return False

        def listed(entries):
            return any(address in ipaddress.ip_network(e, strict=False)
                       for e in entries)
        if listed(self.deny_hosts):
            return False
        return not self.allow_hosts or listed(self.allow_hosts)

    # -- internals

    @lazy
    def schema(self):
        """The PostgreSQL schema this environment lives in, or None when
        it is not on PostgreSQL."""
        return postgres_schema(self.config.get('trac', 'database'))

    def _check_schema(self, db):
        """Fail closed unless this transaction reads this environment's
        schema. Every query of a check runs in one transaction, so one
        look at the start covers them all, whatever a pooler does."""
        if self.schema is None:
            return
        current, search_path = db(SCHEMA_QUERY)[0]
        if current != self.schema:
            raise SchemaDrift(
                'the database session is in schema %r (search_path %s), '
                'not in this environment\'s schema %r: a connection '
                'pooler (PgBouncer in transaction mode?) is sharing '
                'sessions between environments; run "trac-admin ENV '
                'wsgiauth doctor"' % (current, search_path[:80],
                                      self.schema))

    @contextlib.contextmanager
    def _reading(self):
        """One read-only transaction, checked to be in our schema."""
        with self.env.db_query as db:
            self._check_schema(db)
            yield db

    @lazy
    def _sqlite(self):
        """A reader of this environment's SQLite database, or None when
        it is on another database."""
        scheme, args = parse_connection_uri(
            self.config.get('trac', 'database'))
        path = args.get('path')
        if scheme != 'sqlite' or path == ':memory:':
            return None
        timeout = int(args.get('params', {}).get('timeout', 10))
        return SQLiteReader(os.path.join(self.env.path, path.lstrip('/'))
                            if not os.path.isabs(path) else path, timeout)

    def _account(self, name):
        """A user's session attributes, plus ``known`` when the user has
        an authenticated session, read in one query."""
        if self._sqlite is not None:
            rows = self._sqlite.rows(_SQLITE_ACCOUNT_QUERY, (name, name))
        else:
            with self._reading() as db:
                rows = db(_ACCOUNT_QUERY, (name, name))
        return dict(rows)


class Rules(object):
    """How one environment checks a login, with the trac.ini options every
    check needs read once.

    `AuthStore` makes a new one for each call; the mod_wsgi provider keeps
    one for as long as trac.ini is unchanged, so a request reads no option.
    The account itself is read from the database on every check.
    """

    _dummies = {}
    _dummies_lock = threading.Lock()

    def __init__(self, store):
        config = store.config
        self._store = store
        self._scope = store.env.path
        self._domains = frozenset(d.lower() for d in store.strip_domains)
        self._realms = frozenset(r.lower() for r in store.strip_realms)
        self._lowercase = config.getbool('trac', 'ignore_auth_case')
        self._cache_size = store.cache_size
        self._cache_ttl = store.cache_ttl
        self._verify_email = config.getbool('account-manager',
                                            'verify_email', True)
        self._max_attempts = config.getint('account-manager',
                                           'login_attempt_max_count', 0)

    def canonical(self, name):
        """The Trac user name for a login name, or None to refuse it."""
        return canonical_name(name, self._domains, self._realms,
                              self._lowercase)

    def authenticate(self, name, password):
        """Check a credential of a canonical user name.

        Returns None when the user has no password here, False when the
        password is wrong, and raises `Refused` when it is right but the
        account is locked, awaiting approval or unverified.
        """
        attrs = self._store._account(name)
        stored = attrs.get('password')
        if stored is None:
            # Do the hashing work anyway: an unknown user should cost as
            # much as a wrong password.
            hashes.verify(self._dummy(), name, password)
            return None
        if not self._verify(name, stored, password):
            return False
        self._check_state(attrs)
        return True

    def realm_hash(self, name, realm):
        """The htdigest hash of a user for `realm`, or None."""
        attrs = self._store._account(name)
        stored = attrs.get('password')
        if stored is None or hashes.digest_realm(stored) != realm:
            return None
        try:
            self._check_state(attrs)
        except Refused:
            return None
        return stored.rsplit(':', 1)[1]

    def refusal(self, name):
        """Why an account may not log in, or None when it may."""
        try:
            self._check_state(self._store._account(name))
        except Refused as e:
            return str(e)

    def _verify(self, name, stored, password):
        size, ttl = self._cache_size, self._cache_ttl
        if size < 1 or ttl < 1:
            return hashes.verify(stored, name, password)
        if verified.hit(self._scope, name, stored, password, ttl):
            return True
        if not hashes.verify(stored, name, password):
            return False
        verified.add(self._scope, name, stored, password, size)
        return True

    def _dummy(self):
        kind = self._store.hash_scheme
        with self._dummies_lock:
            if kind not in self._dummies:
                self._dummies[kind] = hashes.make(kind, '', 'not a password',
                                                  self._store.realm)
            return self._dummies[kind]

    def _check_state(self, attrs):
        if attrs.get('approval'):
            raise Refused('account approval %s' % attrs['approval'][:40])
        if attrs.get('email_verification_token') is not None and \
                self._verify_email:
            raise Refused('e-mail address not verified')
        if self._locked(attrs):
            raise Refused('account locked after failed logins')

    def _locked(self, attrs):
        """AccountManager's AccountGuard.user_locked, read-only."""
        if self._max_attempts < 1 or 'failed_logins_count' not in attrs:
            return False
        try:
            count = int(attrs['failed_logins_count'])
        except ValueError:
            return True  # unreadable: fail closed
        if count < self._max_attempts:
            return False
        if not attrs.get('known'):
            return False  # AccountManager only locks known users
        # the rest is read only for accounts at the limit, as before
        config = self._store.config
        lock_time = config.getint('account-manager', 'user_lock_time', 0)
        if lock_time == 0:
            return True  # locked until an administrator unlocks it
        attempts = _ATTEMPT_TIME.findall(attrs.get('failed_logins') or '')
        if not attempts:
            return True
        try:
            progression = float(config.get('account-manager',
                                           'user_lock_time_progression', '1'))
        except ValueError:
            progression = 1
        try:
            lock_count = int(attrs.get('lock_count') or 0)
        except ValueError:
            lock_count = 0
        lock_time *= max(progression, 1) ** (lock_count - 1)
        lock_time = min(lock_time, config.getint(
            'account-manager', 'user_lock_max_time', 86400))
        return int(attempts[-1]) + lock_time > time.time()
