"""``trac-admin ENV wsgiauth token list|add|revoke``: app passwords
from the command line."""

import time

from trac.admin.api import AdminCommandError, IAdminCommandProvider
from trac.core import Component, implements
from trac.util.text import printout

from .apppasswords import AppPasswords
from .apptokens import SCOPES
from .modwsgi import provider_for


class AppPasswordAdmin(Component):
    """trac-admin commands for app passwords."""

    implements(IAdminCommandProvider)

    def get_admin_commands(self):
        yield ('wsgiauth token list', '[user]',
               "List app passwords (of one user): id, user, scope, label, "
               "created, last used, expires",
               None, self._do_list)
        yield ('wsgiauth token add', '<user> <label> <read|commit> [days]',
               """Create an app password and print it (once)

               read: Subversion and Git clients may read what the user
               may read; commit: also commit and push what the user may.
               days: it expires after that many days.""",
               None, self._do_add)
        yield ('wsgiauth token revoke', '<id>',
               "Revoke an app password (its next use is refused)",
               None, self._do_revoke)

    def _do_list(self, user=None):
        for token in AppPasswords(self.env).listing(
                self._name(user) if user else None):
            printout('%(id)s  %(username)s  %(scope)s  %(label)s' % token +
                     '  created %s, last used %s%s, expires %s' % (
                         _day(token['created']), _day(token['last_used']),
                         ' from ' + token['last_address']
                         if token['last_address'] else '',
                         _day(token['expires'])))

    def _do_add(self, user, label, scope, days=None):
        if scope not in SCOPES:
            raise AdminCommandError('The scope is read or commit.')
        try:
            expires = time.time() + 86400 * float(days) if days else None
        except ValueError:
            raise AdminCommandError('days: a number') from None
        token_id, password = AppPasswords(self.env).create(
            self._name(user), label, scope, expires)
        printout('App password %s: %s' % (token_id, password))

    def _do_revoke(self, token_id):
        if not AppPasswords(self.env).revoke(token_id):
            raise AdminCommandError('No app password %s.' % token_id)
        printout('Revoked %s.' % token_id)

    def _name(self, user):
        name = provider_for(self.env.path).login().canonical(user)
        if name is None:
            raise AdminCommandError('%r is not an acceptable user name.'
                                    % user)
        return name


def _day(seconds):
    if not seconds:
        return 'never'
    return time.strftime('%Y-%m-%d %H:%M', time.localtime(seconds))
