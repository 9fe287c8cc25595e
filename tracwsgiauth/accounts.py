"""The Trac component: declares the ``[wsgiauth]`` options, writes
passwords, ends sessions, and answers which permission groups a user is
in through Trac's own permission system (with the group providers of
plugins).

Logins themselves are decided by `login.Login` in Apache's child
processes, which import no Trac module (see `modwsgi`); this component
runs where Trac runs: trac-admin, and the Trac application's process,
which answers the children's group questions (`policy`).
"""

import time

from trac.config import BoolOption, ChoiceOption, IntOption, ListOption, \
    Option
from trac.core import Component
from trac.perm import DefaultPermissionStore, PermissionSystem

from . import hashes, tables
from .login import DEFAULTS
from .pgread import check_schema, postgres_schema
from .sessions import HOLD

SECTION = 'wsgiauth'


class AuthStore(Component):
    """The passwords and permission groups Apache (mod_wsgi) checks
    against this environment's users.

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

    realm = Option(SECTION, 'realm', DEFAULTS['realm'],
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

    cache_size = IntOption(SECTION, 'cache_size', DEFAULTS['cache_size'],
        doc="""How many verified credentials each Apache process remembers
        so that slow hashes (bcrypt, SHA-crypt) are not computed again on
        every request. Only a keyed hash of each credential is kept;
        the stored password and account state are still taken from the
        database as it is at each request, so a new password, a lock or a
        revoked approval count at once. 0 turns the cache off.""")

    cache_ttl = IntOption(SECTION, 'cache_ttl', DEFAULTS['cache_ttl'],
        doc="""Seconds a verified credential is remembered (see
        `cache_size`); while the database is unchanged, a repeated right
        login is answered from memory for no longer either.""")

    connect_timeout = IntOption(
        SECTION, 'connect_timeout', DEFAULTS['connect_timeout'],
        doc="""Seconds a login waits for PostgreSQL to connect or
        answer, and a group check for the Trac application's process to
        answer, before it is refused (with one line in Apache's error
        log). The other environments of the same Apache are never held
        up by one whose server does not answer.""")

    failure_delay = IntOption(
        SECTION, 'failure_delay', DEFAULTS['failure_delay'],
        doc="""Seconds a refused login (a wrong password, an unknown
        user, a locked account or a throttled address) waits before it
        is answered; 0 turns the wait off. A client guessing passwords
        waits for every answer, so each of its connections guesses at
        most once per delay and leaves the machine to everyone else.
        Each waiting request holds one of Apache's threads (see README,
        "Brute force").""")

    address_failures = IntOption(
        SECTION, 'address_failures', DEFAULTS['address_failures'],
        doc="""Failed logins from one client address within
        `address_window` seconds after which every login from it is
        refused for `address_block_time` seconds, by all of Apache's
        processes (failures for unknown users count too). 0 (the
        default) turns it off. The address is `REMOTE_ADDR`: behind a
        proxy, let mod_remoteip set it.""")

    address_window = IntOption(
        SECTION, 'address_window', DEFAULTS['address_window'],
        doc="""Seconds in which `address_failures` failures throttle an
        address.""")

    address_block_time = IntOption(
        SECTION, 'address_block_time', DEFAULTS['address_block_time'],
        doc="""Seconds a throttled address is refused.""")

    audit_log = Option(SECTION, 'audit_log', DEFAULTS['audit_log'],
        doc="""File to which Apache's processes append one JSON line per
        refused login and per account lock or address throttle (relative:
        to the environment's folder; Apache's user must be able to write
        it). Empty (the default): none. See README, "Brute force".""")

    repository_passwords = ListOption(
        SECTION, 'repository_passwords', 'account, app',
        doc="""Which passwords the repository locations take: `account`
        (the user's password) and `app` (app passwords, see Preferences
        -> App passwords). `app` alone makes Subversion and Git clients
        use app passwords.""")

    app_passwords_everywhere = BoolOption(
        SECTION, 'app_passwords_everywhere', 'false',
        doc="""Whether the other locations of trac.wsgi (Trac's `/login`,
        groups, downloads) take app passwords too; a read app password
        then logs in to Trac with the user's whole permissions.""")

    # -- passwords

    def set_password(self, name, password):
        """Store a password for a user, in `hash_scheme`."""
        stored = hashes.make(self.hash_scheme, name, password, self.realm)
        with self.env.db_transaction as db:
            check_schema(db, self._schema)
            db(HOLD, (name,))
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
            check_schema(db, self._schema)
            db(HOLD, (name,))
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
            check_schema(db, self._schema)
            count = len(db("SELECT 1 FROM auth_cookie WHERE " + where, args))
            db("DELETE FROM auth_cookie WHERE " + where, args)
        return count

    def unlock(self, name):
        """End a user's failed-login count and lock, as AccountManager's
        admin does; True when there was one."""
        names = "('failed_logins', 'failed_logins_count', 'lock_count')"
        with self.env.db_transaction as db:
            check_schema(db, self._schema)
            db(HOLD, (name,))
            found = db("SELECT 1 FROM session_attribute WHERE sid=%s AND "
                       "authenticated=1 AND name IN " + names, (name,))
            db("DELETE FROM session_attribute WHERE sid=%s AND "
               "authenticated=1 AND name IN " + names, (name,))
        return bool(found)

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
        rows = tables.permissions(self._reader)
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

    @property
    def _schema(self):
        return postgres_schema(self.config.get('trac', 'database'))

    @property
    def _reader(self):
        """The reader of this environment's database that logins use in
        this process (trac.ini read as they read it)."""
        from .modwsgi import provider_for
        return provider_for(self.env.path).reader()
