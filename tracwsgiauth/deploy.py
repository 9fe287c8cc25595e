"""``trac-admin ENV wsgiauth deploy DIR`` (always) and ``trac-admin ENV
deploy DIR`` (while Trac's own is disabled) write Trac's static files plus
tracwsgiauth's trac.wsgi, an Apache configuration and a mod_wsgi-express
command.

Trac runs the first ``deploy`` it finds, always its own `EnvironmentAdmin`,
so the `DeployAdmin` subclass takes over ``deploy`` only when that one is
disabled::

    trac-admin ENV config set components trac.env.environmentadmin disabled

It keeps every other command of `EnvironmentAdmin` (hotcopy, upgrade,
convert_db) unchanged. While Trac's own ``deploy`` is enabled, its output
names that line (`TracDeployNote`).
"""

import os
import re
import shlex

from trac.admin.api import AdminCommandError, IAdminCommandProvider
from trac.config import BoolOption
from trac.core import Component, implements
from trac.env import EnvironmentAdmin
from trac.web.chrome import ITemplateProvider
from trac.util.text import printout

from .accounts import SECTION
from .deployfiles import (LUA_HOOK, TEMPLATES, apache_realm,  # noqa: F401
                          check_group, write_files)
from .deployrepos import check_urls, write_repositories
from .repoauth import prefixes
from .doctor import diagnose
from .pgread import postgres_schema

_DEPLOY_USAGE = '<directory> [--no-pooling] [--url=/path] [--group=name]'
_DEPLOY_HELP = """Extract static resources from Trac and all plugins, and
write tracwsgiauth's scripts

Besides htdocs/ and cgi-bin/, writes cgi-bin/trac.wsgi that serves this
environment and is also its Apache auth script (WSGIAuthUserScript,
WSGIAuthGroupScript, WSGIAccessScript), apache/trac.conf to Include
once in Apache (or, for several virtual hosts, apache/trac-daemon.conf
once at server level and apache/trac-locations.conf in each), and
apache/mod_wsgi-express, a command that serves the environment on its
own.

--no-pooling: no PostgreSQL connection is kept for reuse, neither by
Trac's pool nor by the login readers of Apache's children, whatever
[wsgiauth] postgres_pooling says (it is written into trac.wsgi).

--url=/path: where Apache serves the environment; default: / and the
environment's directory name.

--group=name: the permission group the mod_wsgi-express command
requires; default: authenticated, i.e. every user with a password.
"""


class DeployAdmin(EnvironmentAdmin):
    """Trac's environment commands, with a `deploy` that also writes
    tracwsgiauth's trac.wsgi and Apache configuration. Active only while
    `trac.env.environmentadmin` is disabled in `[components]`."""

    postgres_pooling = BoolOption(SECTION, 'postgres_pooling', 'true',
        doc="""Whether Apache's processes keep PostgreSQL connections
        for reuse: Trac's own pool in the daemon process that runs Trac,
        and the login readers of Apache's child processes. Read by
        trac.wsgi when Apache starts it (restart Apache after a change);
        a trac.wsgi written by `deploy --no-pooling` keeps none whatever
        this says. Turn it off when many environments or Apache
        processes share one PostgreSQL server: each query then opens its
        own connection (best behind PgBouncer, see contrib/pgbouncer).""")

    log_trac_logins = BoolOption(SECTION, 'log_trac_logins', 'false',
        doc="""Whether the trac.wsgi `deploy` writes reports the user of
        a request Trac considers logged in (also through a login form)
        in `X-Remote-User`/`X-Auth-Type` response headers, which the
        Apache configuration `deploy` writes turns into the access log's
        user and strips (mod_headers and mod_lua). Takes effect at the
        next `deploy`.""")

    def get_admin_commands(self):
        if self.env.is_enabled(EnvironmentAdmin):
            return  # Trac's own commands answer; do not list them twice
        for command in super().get_admin_commands():
            if command[0] == 'deploy':
                yield ('deploy', _DEPLOY_USAGE, _DEPLOY_HELP, None,
                       self._do_deploy)
            else:
                yield command

    def _do_deploy(self, dest, *options):
        settings = self._settings(options)
        settings['schema_warning'] = self._schema_warning()
        note = TracDeployNote(self.env)
        note.silent = True   # this deploy is ours: no note about Trac's
        try:
            super()._do_deploy(dest)
        finally:
            note.silent = False
        data = write_files(self.env, os.path.abspath(dest), settings,
                           reflect_user=self.log_trac_logins)
        write_repositories(self.env, data)
        if settings['schema_warning']:
            banner = '!' * 72
            printout('\n'.join([banner, 'WARNING: this environment can '
                                'read ANOTHER environment\'s users '
                                'through its database connection.'] +
                               settings['schema_warning'] + [banner]))

    def _settings(self, options):
        """The deploy settings from the command line, checked before
        anything is written."""
        # [wsgiauth] postgres_pooling is trac.wsgi's to read at start
        settings = {'pooling': True,
                    'url': '/' + os.path.basename(
                        self.env.path.rstrip(os.sep)),
                    'group': 'authenticated'}
        for option in options:
            if option == '--no-pooling':
                settings['pooling'] = False
            elif option.startswith('--url='):
                settings['url'] = '/' + option[6:].strip('/')
            elif option.startswith('--group=') and option[8:]:
                settings['group'] = check_group(option[8:])
            else:
                raise AdminCommandError('Unknown option %r' % option,
                                        show_usage=True)
        url = settings['url']
        if not re.match(r'\A/[-\w./~]*\Z', url) or \
                {'.', '..'} & set(url.split('/')) or '//' in url:
            raise AdminCommandError('--url takes a plain URL path (no . or '
                                    '.. segment, which Apache never '
                                    'matches)')
        apache_realm(self.config.get(SECTION, 'realm', 'trac'))
        check_urls(prefixes(self.config))
        return settings

    def _schema_warning(self):
        """What `wsgiauth doctor` finds wrong with the database
        connection, as lines, or [] when nothing is."""
        if postgres_schema(self.config.get('trac', 'database')) is None:
            return []
        try:
            ok, lines = diagnose(self.env, transactions=100)
        except Exception as e:
            return ['Could not check the database connection (%s: %s); '
                    'run "trac-admin ENV wsgiauth doctor" once it is up.'
                    % (type(e).__name__, ' '.join(str(e).split())[:200])]
        return [] if ok else lines


class WsgiauthDeploy(Component):
    """``trac-admin ENV wsgiauth deploy``: tracwsgiauth's deploy, whether
    or not Trac's own `EnvironmentAdmin` is enabled."""

    implements(IAdminCommandProvider)

    def get_admin_commands(self):
        yield ('wsgiauth deploy', _DEPLOY_USAGE, _DEPLOY_HELP, None,
               self._do_deploy)

    def _do_deploy(self, dest, *options):
        DeployAdmin(self.env)._do_deploy(dest, *options)


class TracDeployNote(Component):
    """While Trac's own ``deploy`` answers ``trac-admin ENV deploy``, make
    its output say so: Trac 1.6 prints the htdocs folder of every
    template provider it copies, and these "folders" are the note (they
    do not exist, so nothing is copied or served)."""

    implements(ITemplateProvider)

    silent = False

    def get_htdocs_dirs(self):
        if self.silent or not self.env.is_enabled(EnvironmentAdmin):
            return []
        return [('tracwsgiauth-note-%d' % i, line)
                for i, line in enumerate(trac_deploy_note(self.env.path))]

    def get_templates_dirs(self):
        return []


def trac_deploy_note(env_path):
    """What Trac's own deploy should tell a tracwsgiauth user."""
    env = shlex.quote(env_path)
    return ['NOTE: this is Trac\'s own deploy, WITHOUT tracwsgiauth\'s '
            'trac.wsgi and Apache configuration.',
            'For those run:  trac-admin %s wsgiauth deploy DIR' % env,
            'or make "deploy" tracwsgiauth\'s:  trac-admin %s config set '
            'components trac.env.environmentadmin disabled' % env]
