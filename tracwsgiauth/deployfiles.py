"""The files tracwsgiauth's ``deploy`` writes: trac.wsgi, the Apache
configuration (in one file, or split into the daemon process and the
locations for several virtual hosts) and the mod_wsgi-express command;
and the checks of the values they carry."""

import hashlib
import importlib.util
import os
import re
import shlex
import shutil
import sys

from trac.admin.api import AdminCommandError
from trac.util.text import jinja2env, printout

from .accounts import SECTION
from .login import DEFAULTS
from .pgread import postgres_schema

HERE = os.path.dirname(os.path.abspath(__file__))
TEMPLATES = os.path.join(HERE, 'templates')
LUA_HOOK = os.path.join(HERE, 'contrib', 'log_remote_user.lua')

#: The Apache files deploy writes: name -> which part of apache.conf.
APACHE_FILES = {'trac.conf': 'all', 'trac-daemon.conf': 'daemon',
                'trac-locations.conf': 'locations'}

#: The realm htdigest passwords are stored with while [wsgiauth] realm
#: is not set (what ``wsgiauth passwd`` uses then).
DEFAULT_REALM = DEFAULTS['realm']


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
    if group.isupper():
        raise AdminCommandError(
            '--group=%r is a permission (upper case), which no user is a '
            'member of; name a group (lower case)' % group)
    return group


def site_name(env_path, url):
    """What names this environment among the others of one server: its
    URL path, or for ``/`` its folder name (letters, digits, - . _)."""
    return url.strip('/') or \
        re.sub(r'[^-\w.]', '', os.path.basename(env_path))[:40] or 'trac'


def realms(config, name):
    """(Basic AuthName, Digest AuthName, whether [wsgiauth] realm is set).
    Unset, Basic gets a realm of this environment's own; Digest must keep
    the realm passwords were stored with, which is then "trac"."""
    if config.has_option(SECTION, 'realm', defaults=False):
        realm = config.get(SECTION, 'realm')
        return realm, realm, True
    return 'trac %s' % name, DEFAULT_REALM, False


def _render(name, data):
    # no line statements or line comments: "#" and "##" are text here
    jenv = jinja2env(autoescape=False, keep_trailing_newline=True,
                     line_statement_prefix=None, line_comment_prefix=None)
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


def _paths(env, target):
    script = os.path.join(target, 'cgi-bin', 'trac.wsgi')
    apache_dir = os.path.join(target, 'apache')
    slug = re.sub(r'\W', '', os.path.basename(env.path))[:20] or 'trac'
    return {
        'script': script, 'script_path_comment': ' '.join(script.split()),
        'htdocs': os.path.join(target, 'htdocs'), 'apache_dir': apache_dir,
        'lua_hook': os.path.join(apache_dir, 'log_remote_user.lua'),
        'express_root': os.path.join(target, 'express'),
        # the daemon's working directory: one the Apache user can enter
        # (the directory deploy ran in may be private)
        'target': target,
        'process_group': 'trac-%s-%s' % (slug, hashlib.sha1(
            env.path.encode('utf-8', 'surrogateescape')).hexdigest()[:8]),
    }


def _environment(env, settings):
    postgres = postgres_schema(env.config.get('trac', 'database')) is not None
    name = site_name(env.path, settings['url'])
    realm, digest_realm, realm_set = realms(env.config, name)
    return {
        'env_path': env.path, 'env_path_comment': ' '.join(env.path.split()),
        'schema_warning': settings.get('schema_warning') or [],
        'non_pooled': postgres and not settings['pooling'],
        'postgres': postgres, 'name': name,
        'url': settings['url'].rstrip('/') or '/',
        'prefix': settings['url'].rstrip('/'),
        'group': check_group(settings['group']),
        'realm_q': apache_realm(realm), 'realm_set': realm_set,
        'digest_realm': digest_realm,
        'digest_realm_q': apache_realm(digest_realm),
    }


def template_data(env, target, settings, reflect_user=False):
    """What the templates are rendered with."""
    from . import __version__
    data = dict(_paths(env, target), **_environment(env, settings))
    data.update(version=__version__, executable=sys.executable,
                python_home=sys.prefix, express=express_command(),
                reflect_user=reflect_user, pyrepr=repr, q=apache_quote,
                sh=shlex.quote)
    return data


def _write_apache(data):
    """The Apache files, or comments only when the deploy directory
    cannot be written in Apache's syntax; their paths."""
    unquotable = [p for p in (data['script'], data['htdocs'],
                              data['lua_hook'], data['python_home'])
                  if apache_quote(p) is None]
    refusal = ('# The deploy directory %r cannot be written in Apache\n'
               '# configuration syntax (newline or "${"); deploy to\n'
               '# another directory.\n' % data['target'])
    if unquotable:
        printout('WARNING: ' + refusal.replace('# ', ''))
    written = []
    for filename, part in APACHE_FILES.items():
        written.append(os.path.join(data['apache_dir'], filename))
        _write(written[-1], refusal if unquotable else
               _render('apache.conf', dict(data, part=part)), 0o644)
    return written


def write_files(env, target, settings, reflect_user=False):
    """Write trac.wsgi, the Apache files and apache/mod_wsgi-express;
    the data they were rendered with."""
    data = template_data(env, target, settings, reflect_user)
    os.makedirs(data['apache_dir'], mode=0o755, exist_ok=True)
    _write(data['script'], _render('trac.wsgi', data), 0o755)
    written = [data['script']] + _write_apache(data)
    express = os.path.join(data['apache_dir'], 'mod_wsgi-express')
    _write(express, _render('mod_wsgi-express.sh', data), 0o755)
    if reflect_user:
        shutil.copyfile(LUA_HOOK, data['lua_hook'])
        os.chmod(data['lua_hook'], 0o644)
    printout('Wrote tracwsgiauth scripts:\n  ' +
             '\n  '.join(written + [express]))
    _report(data)
    return data


def _report(data):
    if not data['express']:
        printout(MISSING_MOD_WSGI % sys.executable)
    if data['non_pooled']:
        printout('PostgreSQL connection pooling is off in trac.wsgi. To '
                 'share a server among many environments, put PgBouncer '
                 'in front of it in one of the safe configurations of '
                 'contrib/pgbouncer/README.rst.')
