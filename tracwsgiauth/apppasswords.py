"""App passwords: the table they live in, created by Trac's environment
upgrade, and what Trac's preferences, its admin and ``trac-admin`` do
with them (`apptokens` has their form and hash; Apache's children check
them, see `modwsgi`)."""

import time

from trac.core import Component, implements
from trac.db.api import DatabaseManager
from trac.db.schema import Column, Index, Table
from trac.env import IEnvironmentSetupParticipant

from . import apptokens
from .pgread import check_schema, postgres_schema

#: The table's version in Trac's ``system`` table.
VERSION_NAME = 'tracwsgiauth_app_passwords'
VERSION = 1

SCHEMA = [Table(apptokens.TABLE, key='id')[
    Column('id'), Column('username'), Column('label'), Column('scope'),
    Column('hash'), Column('created', type='int64'),
    Column('expires', type='int64'), Column('last_used', type='int64'),
    Column('last_address'), Index(['username'])]]


class AppPasswords(Component):
    """App passwords for Subversion and Git clients: each a secret of its
    own per user, limited to reading or to reading and committing, with
    an optional expiry, revocable on its own."""

    implements(IEnvironmentSetupParticipant)

    # IEnvironmentSetupParticipant

    def environment_created(self):
        self.upgrade_environment()

    def environment_needs_upgrade(self):
        return DatabaseManager(self.env).needs_upgrade(VERSION, VERSION_NAME)

    def upgrade_environment(self):
        manager = DatabaseManager(self.env)
        with self.env.db_transaction:
            if not manager.has_table(apptokens.TABLE):
                manager.create_tables(SCHEMA)
            manager.set_database_version(VERSION, VERSION_NAME)

    # the model

    def create(self, username, label, scope, expires=None):
        """A new app password of `username`: (its id, the password to
        show once). `expires`: seconds since the epoch, or None."""
        if scope not in apptokens.SCOPES:
            raise ValueError('scope must be one of %s'
                             % ', '.join(apptokens.SCOPES))
        label = ' '.join((label or '').split())[:80] or 'app password'
        token_id, secret, password = apptokens.generate()
        with self.env.db_transaction as db:
            self._check(db)
            db("INSERT INTO wsgiauth_app_password (id, username, label, "
               "scope, hash, created, expires) VALUES (%s,%s,%s,%s,%s,%s,%s)",
               (token_id, username, label, scope,
                apptokens.digest(token_id, secret), int(time.time()),
                int(expires) if expires else None))
        return token_id, password

    def listing(self, username=None):
        """The app passwords (of `username`, or all): dicts of
        `apptokens.COLUMNS` but the hash, newest first."""
        where, args = ('WHERE username=%s', (username,)) if username \
            else ('', ())
        names = [c for c in apptokens.COLUMNS if c != 'hash']
        with self.env.db_query as db:
            self._check(db)
            rows = db("SELECT %s FROM wsgiauth_app_password %s "
                      "ORDER BY created DESC, id" % (', '.join(names), where),
                      args)
        return [{name: row[i] for i, name in enumerate(names)}
                for row in rows]

    def revoke(self, token_id, username=None):
        """Remove an app password (only of `username` when given);
        whether there was one."""
        where, args = 'id=%s', (token_id,)
        if username is not None:
            where, args = 'id=%s AND username=%s', (token_id, username)
        with self.env.db_transaction as db:
            self._check(db)
            found = db("SELECT 1 FROM wsgiauth_app_password WHERE " + where,
                       args)
            db("DELETE FROM wsgiauth_app_password WHERE " + where, args)
        return bool(found)

    def revoke_all(self, username):
        """Remove every app password of a user; how many there were."""
        with self.env.db_transaction as db:
            self._check(db)
            count = len(db("SELECT 1 FROM wsgiauth_app_password "
                           "WHERE username=%s", (username,)))
            db("DELETE FROM wsgiauth_app_password WHERE username=%s",
               (username,))
        return count

    def _check(self, db):
        check_schema(db, postgres_schema(self.config.get('trac',
                                                         'database')))

