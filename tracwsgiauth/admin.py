"""trac-admin commands to manage the passwords this plugin checks, so that
a site needs no AccountManager to run Apache authentication."""

import getpass
import sys
import time

from trac.admin.api import AdminCommandError, IAdminCommandProvider
from trac.core import Component, implements
from trac.util.text import printout

from . import audit, tables
from .accounts import AuthStore
from .apppasswords import AppPasswords
from .doctor import diagnose
from .guard import guard_for, writer
from .lockout import attempts
from .login import Refused
from .modwsgi import provider_for
from .pgread import SchemaDrift


def read_password(confirm):
    """Read a password from the terminal (twice when `confirm`), or one
    line from standard input when that is not a terminal -- never from
    the command line, where other users could see it."""
    if not sys.stdin.isatty():
        line = sys.stdin.readline()
        # one line, as any editor ends it (a CRLF file too)
        password = line[:-2] if line.endswith('\r\n') else \
            line[:-1] if line.endswith('\n') else line
    else:
        password = getpass.getpass('Password: ')
        if confirm and getpass.getpass('Repeat password: ') != password:
            raise AdminCommandError('The passwords do not match.')
    if not password:
        raise AdminCommandError('No password given.')
    return password


def _refusing_drift(command):
    """`command`, turning a schema drift into a clear refusal."""
    def run(*args):
        try:
            return command(*args)
        except SchemaDrift as e:
            raise AdminCommandError('Refused: %s.' % e) from None
    return run


class WsgiAuthAdmin(Component):
    """trac-admin commands for the passwords and groups that Apache
    authentication through tracwsgiauth sees."""

    implements(IAdminCommandProvider)

    def get_admin_commands(self):
        for command in self._commands():
            yield command[:4] + (_refusing_drift(command[4]),)

    def _commands(self):
        yield ('wsgiauth passwd', '<user>',
               """Set a user's password

               The password is read from the terminal, or as one line
               from standard input. It is hashed with the scheme named
               by [wsgiauth] hash_scheme.""",
               None, self._do_passwd)
        yield ('wsgiauth remove', '<user>',
               """Remove a user's password

               Also ends the user's Trac sessions (logged in by cookie)
               and revokes the user's app passwords.""",
               None, self._do_remove)
        yield ('wsgiauth check', '<user>',
               """Check a password as Apache would

               The password is read like for `wsgiauth passwd`. Exits
               with a failure status unless the login would succeed.""",
               None, self._do_check)
        yield ('wsgiauth groups', '<user>',
               "List the permission groups Apache sees for a user",
               None, self._do_groups)
        yield ('wsgiauth status', '<user>',
               """Show a user's failed logins and lock

               The failed logins AccountManager and Apache count, the
               address and time of the last ones, and whether the
               account is locked, until when.""",
               None, self._do_status)
        yield ('wsgiauth unlock', '<user>',
               """Unlock an account locked after failed logins

               Ends its failed-login count and lock, as AccountManager's
               admin does.""",
               None, self._do_unlock)
        yield ('wsgiauth doctor', '',
               """Check that the database keeps this environment's schema

               On PostgreSQL with a connection pooler such as PgBouncer,
               runs many short transactions and looks at how sessions
               are pooled, to find when queries could read another
               environment's tables. Exits with a failure status and
               names the safe configurations when they could.""",
               None, self._do_doctor)

    @property
    def _store(self):
        return AuthStore(self.env)

    @property
    def _login(self):
        """The rules check_password decides with (trac.ini as it is)."""
        return provider_for(self.env.path).login()

    def _name(self, user):
        name = self._login.canonical(user)
        if name is None:
            raise AdminCommandError('%r is not an acceptable user name.'
                                    % user)
        return name

    def _do_passwd(self, user):
        name = self._name(user)
        if self.env.db_query("SELECT 1 FROM permission WHERE action=%s "
                             "LIMIT 1", (name,)):
            raise AdminCommandError('%s is a permission group; a user of '
                                    'that name would hold its permissions '
                                    'in Trac.' % name)
        try:
            self._store.set_password(name, read_password(confirm=True))
        except ValueError as e:
            raise AdminCommandError(str(e)) from None
        printout('Password set for %s.' % name)

    def _do_remove(self, user):
        name = self._name(user)
        if not self._store.delete_password(name):
            raise AdminCommandError('%s has no password.' % name)
        ended = self._store.end_sessions(name)
        revoked = AppPasswords(self.env).revoke_all(name)
        printout('Password removed for %s; %d Trac session(s) ended, %d app '
                 'password(s) revoked.' % (name, ended, revoked))

    def _do_check(self, user):
        name = self._name(user)
        try:
            found = self._login.authenticate(name, read_password(False))
            writer.flush()      # a wrong password counts, as in Apache
        except Refused as e:
            writer.flush()
            raise AdminCommandError('Refused: %s.' % e) from None
        if found is None:
            raise AdminCommandError('Refused: %s has no password.' % name)
        if not found:
            raise AdminCommandError('Refused: wrong password.')
        printout('Accepted as %s.' % name)

    def _do_status(self, user):
        name = self._name(user)
        login = self._login
        attrs = tables.account(provider_for(self.env.path).reader(), name)
        lock = login.settings.lock
        printout('failed logins: %s' % attrs.get('failed_logins_count', 0))
        for address, when in attempts(attrs.get('failed_logins'))[-5:]:
            printout('  %s from %s' % (_when(when), address or 'unknown'))
        if lock.max_count < 1:
            printout('locked: no ([account-manager] login_attempt_max_count '
                     'is 0: no lock)')
        elif not lock.locked(attrs, time.time()):
            printout('locked: no (locks after %d failed logins)'
                     % lock.max_count)
        else:
            until = lock.release(attrs)
            printout('locked: yes, %s' % ('until ' + _when(until) if until
                                          else 'until unlocked'))

    def _do_unlock(self, user):
        name = self._name(user)
        if not self._store.unlock(name):
            raise AdminCommandError('%s has no failed logins.' % name)
        guard = guard_for(self.env.path)
        guard.configure(self.env.config, 5)
        audit.record(guard.audit_log, 'unlocked', self.env.path, user, name,
                     None, None, 'trac-admin wsgiauth unlock')
        printout('Unlocked %s.' % name)

    def _do_doctor(self):
        ok, lines = diagnose(self.env)
        for line in lines:
            printout(line)
        if not ok:
            raise AdminCommandError('The database connection does not '
                                    'reliably keep this environment\'s '
                                    'schema.')

    def _do_groups(self, user):
        for group in self._store.groups(self._name(user)):
            printout(group)


def _when(seconds):
    return time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(seconds))
