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

import hashlib
import importlib.util
import os
import re
import shlex
import shutil
import sys

from trac.admin.api import AdminCommandError, IAdminCommandProvider
from trac.config import BoolOption
from trac.core import Component, implements
from trac.env import EnvironmentAdmin
from trac.web.chrome import ITemplateProvider
from trac.util.text import jinja2env, printout

from .accounts import SECTION
from .pgread import postgres_schema
from .doctor import diagnose

HERE = os.path.dirname(os.path.abspath(__file__))
TEMPLATES = os.path.join(HERE, 'templates')
LUA_HOOK = os.path.join(HERE, 'contrib', 'log_remote_user.lua')

_DEPLOY_USAGE = '<directory> [--no-pooling] [--url=/path] [--group=name]'
_DEPLOY_HELP = """Extract static resources from Trac and all plugins, and
write tracwsgiauth's scripts

Besides htdocs/ and cgi-bin/, writes cgi-bin/trac.wsgi that serves this
environment and is also its Apache auth script (WSGIAuthUserScript,
WSGIAuthGroupScript, WSGIAccessScript), apache/trac.conf to Include
in Apache, and apache/mod_wsgi-express, a command that serves the
environment on its own.

--no-pooling: turn off Trac's PostgreSQL connection pooling in the
script, as [wsgiauth] postgres_pooling = false does.

--url=/path: where Apache serves the environment; default: / and the
environment's directory name.

--group=name: the permission group the mod_wsgi-express command
requires; default: authenticated, i.e. every user with a password.
"""


def apache_quote(text):
    """`text` as one double-quoted Apache directive argument, or None
    when Apache's syntax cannot carry it (newlines, ``${``)."""
    if '\n' in text or '\r' in text or '${' in text or text.endswith('\\'):
        return None
    return '"%s"' % text.replace('"', '\\"')


def apache_realm(realm):
    """`realm` as the argument of ``AuthName``, which Apache reads as a
    string expression: ``%`` and ``$`` escaped for that, ``"`` for the
    configuration syntax. A realm Apache cannot carry exactly (``${``,
    a backslash, which Apache sends unescaped in ``WWW-Authenticate``,
    control characters) is refused, naming the option."""
    bad = re.search(r'\$\{|\\|[\x00-\x1f\x7f]', realm)
    if bad or not realm:
        raise AdminCommandError(
            '[%s] realm = %r cannot be an Apache AuthName: %s. Change it '
            '(trac-admin ENV config set %s realm NEW) and deploy again.'
            % (SECTION, realm, 'it is empty' if not realm else
               'it contains %r' % bad.group(0), SECTION))
    text = re.sub(r'([%$])', r'\\\1', realm)
    return '"%s"' % text.replace('\\', '\\\\').replace('"', '\\"')


def check_group(group):
    """Refuse a ``--group`` that is no plain permission group name (it
    ends up in a shell script and in mod_wsgi-express's configuration)."""
    if not re.match(r'\A[-\w.@]+\Z', group):
        raise AdminCommandError(
            '--group=%r: a permission group name is letters, digits and '
            '- . _ @ only' % group)
    return group


class DeployAdmin(EnvironmentAdmin):
    """Trac's environment commands, with a `deploy` that also writes
    tracwsgiauth's trac.wsgi and Apache configuration. Active only while
    `trac.env.environmentadmin` is disabled in `[components]`."""

    postgres_pooling = BoolOption(SECTION, 'postgres_pooling', 'true',
        doc="""Whether the trac.wsgi `deploy` writes keeps Trac's
        PostgreSQL connection pool. Turn it off when many environments
        or Apache processes share one PostgreSQL server: each query then
        opens its own connection (best behind PgBouncer, see
        contrib/pgbouncer). Takes effect at the next `deploy`.""")

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
        write_files(self.env, os.path.abspath(dest), settings,
                    reflect_user=self.log_trac_logins)
        if settings['schema_warning']:
            banner = '!' * 72
            printout('\n'.join([banner, 'WARNING: this environment can '
                                'read ANOTHER environment\'s users '
                                'through its database connection.'] +
                               settings['schema_warning'] + [banner]))

    def _settings(self, options):
        """The deploy settings from the command line, checked before
        anything is written."""
        settings = {'pooling': self.postgres_pooling,
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
        if not re.match(r'\A/[-\w./~]*\Z', settings['url']):
            raise AdminCommandError('--url takes a plain URL path')
        apache_realm(self.config.get(SECTION, 'realm', 'trac'))
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


def _render(name, data):
    jenv = jinja2env(autoescape=False, keep_trailing_newline=True)
    with open(os.path.join(TEMPLATES, name), encoding='utf-8') as f:
        return jenv.from_string(f.read()).render(data)


def _write(path, text, mode):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, 'w', encoding='utf-8') as f:
        f.write(text)
    os.chmod(path, mode)


MISSING_MOD_WSGI = """WARNING: mod_wsgi is not installed for %s, so
apache/mod_wsgi-express cannot run. Install it with this package's
"apache" extra (pip install 'tracwsgiauth[apache]'; on Debian it needs
apt-get install apache2 apache2-dev first), then deploy again."""


def express_command():
    """The shell words that run mod_wsgi-express with this Python, or ''
    when mod_wsgi is not installed for it."""
    if not _importable('mod_wsgi'):
        return ''
    beside = os.path.join(os.path.dirname(sys.executable), 'mod_wsgi-express')
    if os.access(beside, os.X_OK):
        return shlex.quote(beside)
    if _importable('mod_wsgi.express.cli'):   # mod_wsgi 6
        return '%s -m mod_wsgi.express.cli' % shlex.quote(sys.executable)
    return 'mod_wsgi-express'


def _importable(name):
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError, AttributeError):
        return False


def write_files(env, target, settings, reflect_user=False):
    """Write trac.wsgi, apache/trac.conf and apache/mod_wsgi-express."""
    from . import __version__
    script = os.path.join(target, 'cgi-bin', 'trac.wsgi')
    htdocs = os.path.join(target, 'htdocs')
    apache_dir = os.path.join(target, 'apache')
    os.makedirs(apache_dir, mode=0o755, exist_ok=True)
    database = env.config.get('trac', 'database')
    postgres = postgres_schema(database) is not None
    slug = re.sub(r'\W', '', os.path.basename(env.path))[:20] or 'trac'
    data = {
        'version': __version__,
        'executable': sys.executable,
        'env_path': env.path,
        'env_path_comment': ' '.join(env.path.split()),
        'schema_warning': settings.get('schema_warning') or [],
        'pyrepr': repr,
        'q': apache_quote,
        'sh': shlex.quote,
        'script_path_comment': ' '.join(script.split()),
        'non_pooled': postgres and not settings['pooling'],
        'postgres': postgres,
        'reflect_user': reflect_user,
        'script': script,
        'htdocs': htdocs,
        'lua_hook': os.path.join(apache_dir, 'log_remote_user.lua'),
        'url': settings['url'].rstrip('/') or '/',
        'prefix': settings['url'].rstrip('/'),
        'group': check_group(settings['group']),
        'realm': env.config.get(SECTION, 'realm', 'trac'),
        'realm_q': apache_realm(env.config.get(SECTION, 'realm', 'trac')),
        'process_group': 'trac-%s-%s' % (slug, hashlib.sha1(
            env.path.encode('utf-8', 'surrogateescape')).hexdigest()[:8]),
        'python_home': sys.prefix,
        'express': express_command(),
        'express_root': os.path.join(target, 'express'),
        # the daemon's working directory: one the Apache user can enter
        # (the directory deploy ran in may be private)
        'target': target,
    }
    unquotable = [p for p in (script, htdocs, data['lua_hook'],
                              data['python_home'])
                  if apache_quote(p) is None]
    _write(script, _render('trac.wsgi', data), 0o755)
    if unquotable:
        text = ('# The deploy directory %r cannot be written in Apache\n'
                '# configuration syntax (newline or "${"); deploy to\n'
                '# another directory.\n' % target)
        printout('WARNING: ' + text.replace('# ', ''))
    else:
        text = _render('apache.conf', data)
    _write(os.path.join(apache_dir, 'trac.conf'), text, 0o644)
    _write(os.path.join(apache_dir, 'mod_wsgi-express'),
           _render('mod_wsgi-express.sh', data), 0o755)
    if reflect_user:
        shutil.copyfile(LUA_HOOK, data['lua_hook'])
        os.chmod(data['lua_hook'], 0o644)
    printout('Wrote tracwsgiauth scripts:\n  %s\n  %s\n  %s' % (
        script, os.path.join(apache_dir, 'trac.conf'),
        os.path.join(apache_dir, 'mod_wsgi-express')))
    if not data['express']:
        printout(MISSING_MOD_WSGI % sys.executable)
    if data['non_pooled']:
        printout('PostgreSQL connection pooling is off in trac.wsgi. To '
                 'share a server among many environments, put PgBouncer '
                 'in front of it in one of the safe configurations of '
                 'contrib/pgbouncer/README.rst.')
