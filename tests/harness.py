"""Real parts for the tests: Trac environments, a real Apache httpd with
mod_wsgi, and curl as the HTTP client.

Apache runs as `nobody` when the tests run as root, so everything it reads
lives in world-readable folders under /tmp (pytest's tmp_path is 0700).
When CI is set, a missing Apache, mod_wsgi or curl fails the tests
instead of skipping them.
"""

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import pytest

APACHE = shutil.which('apache2', path='/usr/sbin:' + os.environ['PATH']) \
    or shutil.which('httpd', path='/usr/sbin:' + os.environ['PATH'])
MODULES = '/usr/lib/apache2/modules'
BIN = os.path.dirname(sys.executable)
MOD_WSGI_EXPRESS = os.path.join(BIN, 'mod_wsgi-express')
TRAC_ADMIN = os.path.join(BIN, 'trac-admin')
CURL = shutil.which('curl')

PLUGIN_COMPONENTS = """
[components]
tracwsgiauth.* = enabled
trac.env.environmentadmin = disabled
"""


def require(ok, what):
    """Skip outside CI, fail in CI, when a required real part is missing."""
    if ok:
        return
    if os.environ.get('CI'):
        pytest.fail('required for CI but missing: %s' % what)
    pytest.skip('missing: %s' % what)


def public_dir(prefix='twa-'):
    """A fresh folder that the Apache user can read."""
    path = tempfile.mkdtemp(prefix=prefix, dir='/tmp')
    os.chmod(path, 0o755)
    return path


def open_up(path):
    """Let the Apache user read and write a tree (Trac writes sessions)."""
    for root, _dirs, files in os.walk(path):
        os.chmod(root, 0o777)
        for name in files:
            os.chmod(os.path.join(root, name), 0o666)


def trac_admin(env_path, *args, stdin=None, check=True):
    proc = subprocess.run([TRAC_ADMIN, env_path] + list(args), input=stdin,
                          capture_output=True, text=True, timeout=120)
    if check and proc.returncode != 0:
        raise AssertionError('trac-admin %s failed: %s%s'
                             % (' '.join(args), proc.stdout, proc.stderr))
    return proc


def make_env(parent, name='proj', extra_ini='', database=None):
    """A real Trac environment with the plugin enabled."""
    from trac.env import Environment
    path = os.path.join(parent, name)
    options = [('trac', 'database', database or 'sqlite:db/trac.db')]
    env = Environment(path, create=True, options=options)
    with open(env.config.filename, 'a', encoding='utf-8') as f:
        f.write(PLUGIN_COMPONENTS + extra_ini)
    env.shutdown()
    return path


def edit_ini(env_path, section, option, value):
    """Change an option in an environment's trac.ini as another process
    would, giving the file a modification time that surely differs from
    any it had (changes are noticed by modification time)."""
    from trac.env import Environment
    env = Environment(env_path)
    try:
        env.config.set(section, option, value)
        env.config.save()
    finally:
        env.shutdown()
    bump(os.path.join(env_path, 'conf', 'trac.ini'))


def bump(path):
    """Move a file's modification time surely forward."""
    stamp = max(time.time(), os.stat(path).st_mtime) + 2
    os.utime(path, (stamp, stamp))


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def module_config():
    out = subprocess.run([MOD_WSGI_EXPRESS, 'module-config'],
                         capture_output=True, text=True, check=True).stdout
    return out


MAIN_CONF = """
ServerRoot "{root}"
ServerName 127.0.0.1
Listen 127.0.0.1:{port}
PidFile "{root}/httpd.pid"
ErrorLog "{root}/error.log"
LogLevel info
{user}
LoadModule mpm_event_module {modules}/mod_mpm_event.so
LoadModule authz_core_module {modules}/mod_authz_core.so
LoadModule authz_user_module {modules}/mod_authz_user.so
LoadModule authz_host_module {modules}/mod_authz_host.so
LoadModule authn_core_module {modules}/mod_authn_core.so
LoadModule authn_file_module {modules}/mod_authn_file.so
LoadModule auth_basic_module {modules}/mod_auth_basic.so
LoadModule auth_digest_module {modules}/mod_auth_digest.so
LoadModule alias_module {modules}/mod_alias.so
LoadModule mime_module {modules}/mod_mime.so
LoadModule headers_module {modules}/mod_headers.so
LoadModule lua_module {modules}/mod_lua.so
TypesConfig /etc/mime.types
LogFormat "%h \\"%u\\" \\"%r\\" %>s" simple
CustomLog "{root}/access.log" simple
Timeout 20
WSGISocketPrefix "{root}/wsgi"
{wsgi}
{body}
"""


#: MPM settings for exactly one Apache child process, whose memory,
#: first request and connection pool are then easy to observe
ONE_CHILD = """
StartServers 1
ServerLimit 1
ThreadsPerChild 25
MaxRequestWorkers 25
MinSpareThreads 1
MaxSpareThreads 25
"""


class Apache(object):
    """Debian's Apache httpd with mod_wsgi from pip, configured by hand."""

    #: server roots of every Apache started in this run, for the final
    #: look through their error logs
    roots = []

    def __init__(self, body, policy=True):
        """`policy`: give every group script of `body` that no
        ``WSGIImportScript`` preloads a daemon process that does (where
        it answers the children's group questions), as a site must."""
        if policy:
            body += policy_daemons(body)
        require(APACHE, 'Apache httpd (apt-get install apache2)')
        require(os.path.exists(MOD_WSGI_EXPRESS), 'mod_wsgi (pip install)')
        require(CURL, 'curl')
        self.root = public_dir('twa-httpd-')
        Apache.roots.append(self.root)
        self.port = free_port()
        self.url = 'http://127.0.0.1:%d' % self.port
        user = 'User nobody\nGroup nogroup' if os.geteuid() == 0 else ''
        self.conf = os.path.join(self.root, 'httpd.conf')
        with open(self.conf, 'w') as f:
            f.write(MAIN_CONF.format(root=self.root, port=self.port,
                                     user=user, modules=MODULES,
                                     wsgi=module_config(), body=body))
        self.proc = None

    def check_syntax(self):
        return subprocess.run([APACHE, '-t', '-f', self.conf],
                              capture_output=True, text=True)

    def start(self):
        syntax = self.check_syntax()
        assert syntax.returncode == 0, syntax.stderr
        self.proc = subprocess.Popen(
            [APACHE, '-f', self.conf, '-DFOREGROUND'],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            start_new_session=True)
        deadline = time.time() + 20
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError('Apache exited: %s\n%s' % (
                    self.proc.stderr.read().decode(), self.error_log()))
            try:
                socket.create_connection(('127.0.0.1', self.port), 1).close()
                return self
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise AssertionError('Apache did not start:\n' + self.error_log())

    def stop(self):
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)

    def _read(self, name):
        try:
            with open(os.path.join(self.root, name), encoding='utf-8',
                      errors='replace') as f:
                return f.read()
        except FileNotFoundError:
            return ''

    def error_log(self):
        return self._read('error.log')

    def access_log(self):
        return self._read('access.log')


def curl(url, user=None, password=None, digest=False, headers=False,
         extra=()):
    """(status, body[, response headers]) of a GET with curl."""
    args = [CURL, '-sS', '--max-time', '20', '-o', '-', '-w',
            '\n%{http_code}', url]
    if headers:
        args[1:1] = ['-D', '/dev/stderr']
    if user is not None:
        args += ['--digest' if digest else '--basic',
                 '-u', '%s:%s' % (user, password)]
    args += list(extra)
    proc = subprocess.run(args, capture_output=True, timeout=30)
    body, _, code = proc.stdout.rpartition(b'\n')
    result = (int(code or 0), body.decode('utf-8', 'replace'))
    if headers:
        return result + (proc.stderr.decode('latin-1'),)
    return result


def basic_get(port, path, user=None, password=None, timeout=30):
    """(status, body) of one GET with Basic credentials, on a new
    connection."""
    import base64
    import http.client
    headers = {}
    if user is not None:
        token = base64.b64encode(('%s:%s' % (user, password)).encode('utf-8'))
        headers['Authorization'] = 'Basic ' + token.decode('ascii')
    conn = http.client.HTTPConnection('127.0.0.1', port, timeout=timeout)
    try:
        conn.request('GET', path, headers=headers)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def hammer(port, cases, concurrency=8):
    """Send every (path, user, password) case from `concurrency` threads;
    the statuses, in the order of `cases`."""
    from concurrent.futures import ThreadPoolExecutor
    with ThreadPoolExecutor(concurrency) as pool:
        return list(pool.map(lambda case: basic_get(port, *case)[0], cases))


AUTH_SCRIPT = '''{pooling}
from tracwsgiauth.modwsgi import for_environment

check_password, get_realm_hash, groups_for_user, allow_access = \\
    for_environment({env_path!r})
'''
NO_POOLING = '''from trac.db.postgres_backend import PostgreSQLConnection
PostgreSQLConnection.poolable = False
'''


def auth_script(path, env_path, pooled=True):
    """Write an auth-only mod_wsgi script for one environment."""
    with open(path, 'w') as f:
        f.write(AUTH_SCRIPT.format(env_path=env_path,
                                   pooling='' if pooled else NO_POOLING))
    return path


def auth_location(url, script, group=None, kind='Basic'):
    """An Apache <Location> that lets in the users of `script`'s
    environment, only members of `group` when given."""
    lines = ['<Location %s>' % url,
             '    AuthType %s' % kind,
             '    AuthName "trac"',
             '    Auth%sProvider wsgi' % kind,
             '    WSGIAuthUserScript "%s" application-group=%%{GLOBAL}'
             % script]
    if group:
        lines += ['    WSGIAuthGroupScript "%s" application-group=%%{GLOBAL}'
                  % script,
                  '    <RequireAll>',
                  '        Require valid-user',
                  '        Require wsgi-group %s' % group,
                  '    </RequireAll>']
    else:
        lines.append('    Require valid-user')
    return '\n'.join(lines + ['</Location>', ''])


def policy_daemons(body):
    """Apache lines for a mod_wsgi daemon process per group script of
    `body` that no ``WSGIImportScript`` preloads yet: preloaded, the
    script answers the children's group questions."""
    import re
    scripts = re.findall(r'WSGIAuthGroupScript\s+"([^"]+)"', body)
    loaded = set(re.findall(r'WSGIImportScript\s+"([^"]+)"', body))
    lines = []
    for number, script in enumerate(sorted(set(scripts) - loaded)):
        name = 'policy-%d' % number
        lines += ['WSGIDaemonProcess %s threads=4 display-name=%%{GROUP}'
                  % name,
                  'WSGIImportScript "%s" process-group=%s '
                  'application-group=%%{GLOBAL}' % (script, name)]
    return '\n' + '\n'.join(lines) + '\n'
