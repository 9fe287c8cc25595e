"""Accounts over a Trac environment's own tables, for HTTP authentication.

Passwords live where TracAccountManager's SessionStore keeps them
(``session_attribute``, ``name='password'``, ``authenticated=1``); groups
come from Trac's permission system.  AccountManager need not be installed,
but its account state (lock, approval, e-mail verification) is honoured.
Checking a credential never writes to the database.
"""

import contextlib
import ipaddress
import os
import threading
import time

from trac.config import ChoiceOption, IntOption, ListOption, Option
from trac.core import Component
from trac.db.api import parse_connection_uri
from trac.perm import DefaultPermissionStore, PermissionSystem
from trac.util import lazy

from . import hashes
from .login import LockPolicy, Login, Refused, Settings, verified  # noqa
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
        config = self.config
        lock = LockPolicy.from_options(
            lambda name: config.get('account-manager', name, None))
        settings = Settings(
            scope=self.env.path,
            domains=frozenset(d.lower() for d in self.strip_domains),
            realms=frozenset(r.lower() for r in self.strip_realms),
            lowercase=config.getbool('trac', 'ignore_auth_case'),
            cache_size=self.cache_size, cache_ttl=self.cache_ttl,
            verify_email=config.getbool('account-manager', 'verify_email',
                                        True),
            lock=lock)
        return Login(settings, self._account, _Typical(self).hash)

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

    def end_sessions(self, name, cookie=None):
        """End a user's Trac sessions (its `auth_cookie` rows), or only
        the one of `cookie`; how many there were."""
        where, args = "name=%s", (name,)
        if cookie is not None:
            where, args = "name=%s AND cookie=%s", (name, cookie)
        with self.env.db_transaction as db:
            self._check_schema(db)
            count = len(db("SELECT 1 FROM auth_cookie WHERE " + where, args))
            db("DELETE FROM auth_cookie WHERE " + where, args)
        return count

    def session_user(self, cookie):
        """The user a Trac auth cookie logs in, or None."""
        sql = "SELECT name FROM auth_cookie WHERE cookie=%s"
        if self._sqlite is not None:
            rows = self._sqlite.rows(sql.replace('%s', '?'), (cookie,))
        else:
            with self._reading() as db:
                rows = db(sql, (cookie,))
        return rows[0][0] if rows else None

    # -- groups

    def groups(self, name):
        """All permission groups of a user, including groups of groups,
        the groups of `authenticated` and groups plugins provide, with
        the `permission` table read as it is now (not Trac's cached copy,
        which a raw write such as AccountManager's user deletion leaves
        stale)."""
        store = DefaultPermissionStore(self.env)
        groups = set()
        for provider in PermissionSystem(self.env).group_providers:
            if provider is not store:
                groups.update(provider.get_permission_groups(name) or ())
        members = {name} | groups
        rows = self._permission_rows()
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

    def _permission_rows(self):
        sql = "SELECT username, action FROM permission"
        if self._sqlite is not None:
            return self._sqlite.rows(sql)
        with self._reading() as db:
            return db(sql)

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

    def _stored_passwords(self, limit=1000):
        """Up to `limit` stored password values."""
        sql = ("SELECT value FROM session_attribute WHERE authenticated=1 "
               "AND name='password' LIMIT %d" % limit)
        if self._sqlite is not None:
            rows = self._sqlite.rows(sql)
        else:
            with self._reading() as db:
                rows = db(sql)
        return [row[0] for row in rows]

    def _account(self, name):
        """A user's session attributes, plus ``known`` when the user has
        an authenticated session, read in one query."""
        if self._sqlite is not None:
            rows = self._sqlite.rows(_SQLITE_ACCOUNT_QUERY, (name, name))
        else:
            with self._reading() as db:
                rows = db(_ACCOUNT_QUERY, (name, name))
        return dict(rows)


class _Typical(object):
    """A stored password typical of an environment's users: one of the
    most common scheme among them (the middle one of those, so with the
    usual cost parameters), looked at again every `refresh` seconds.
    With no passwords stored, a hash of `hash_scheme`."""

    refresh = 300
    _lock = threading.Lock()

    def __init__(self, store):
        self._store = store
        self._value, self._when = None, None

    def hash(self):
        now = time.monotonic()
        if self._when is None or now - self._when > self.refresh:
            with self._lock:
                self._value, self._when = self._pick(), now
        return self._value

    def _pick(self):
        by_scheme = {}
        for stored in self._store._stored_passwords():
            by_scheme.setdefault(hashes.scheme(stored), []).append(stored)
        by_scheme.pop(None, None)
        if not by_scheme:
            store = self._store
            return hashes.make(store.hash_scheme, '', 'not a password',
                               store.realm)
        common = max(by_scheme.values(), key=len)
        return sorted(common)[len(common) // 2]
