"""Real parts for the tests and the benchmarks: Trac environments and
their users, a real Apache httpd with mod_wsgi, and HTTP clients (curl,
and raw Basic requests).

Apache runs as `nobody` when the tests run as root, so everything it reads
lives in world-readable folders under /tmp (pytest's tmp_path is 0700),
made by `public_dir` and removed at the end of a test session. When CI is
set, a missing Apache, mod_wsgi or curl fails the tests instead of
skipping them.

Every password given to a user through this harness (`add_user`,
`set_password`, `trac_admin ... wsgiauth passwd`, tests/users.py, the
PostgreSQL roles of tests/pg.py) is remembered in `PASSWORDS`, and
`secret` adds any other: after the run, no Apache error log may show one.
"""

import base64
import contextlib
import http.client
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import namedtuple
from concurrent.futures import ThreadPoolExecutor

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


#: passwords no log may show (see `secret`)
PASSWORDS = set()

#: what `needs` asks of the running test, set by tests/conftest.py: the
#: names of its markers (None outside pytest, e.g. in the benchmarks)
running_marks = None


def secret(password):
    """`password`, remembered as one that no Apache error log of the run
    may show (the final check in tests/conftest.py)."""
    if len(password) >= 4:      # shorter ones match by chance
        PASSWORDS.add(password)
    return password


def require(ok, what):
    """Skip outside CI, fail in CI, when a required real part is missing."""
    if ok:
        return
    if os.environ.get('CI'):
        pytest.fail('required for CI but missing: %s' % what)
    pytest.skip('missing: %s' % what)


def needs(marker, what):
    """A test that starts `what` must carry `marker`, so that
    ``-m "not apache and not postgres"`` never starts it."""
    marks = running_marks() if running_marks else None
    if marks is not None and marker not in marks:
        pytest.fail('this test starts %s but is not marked %r'
                    % (what, marker))


#: folders made by public_dir, removed by remove_public_dirs
_made = []


def public_dir(prefix='twa-'):
    """A fresh folder that the Apache user can read."""
    path = tempfile.mkdtemp(prefix=prefix, dir='/tmp')
    os.chmod(path, 0o755)
    _made.append(path)
    return path


def private_dir(prefix='twa-private-'):
    """A fresh folder that only its owner may enter (mode 0700, as a
    fresh clone in a home folder is to the Apache user), removed with the
    folders of public_dir."""
    path = tempfile.mkdtemp(prefix=prefix, dir='/tmp')
    _made.append(path)
    return path


def remove_public_dirs():
    """Remove every folder public_dir made (the files of other users in
    them too, as root)."""
    while _made:
        shutil.rmtree(_made.pop(), ignore_errors=True)


def read_text(path):
    """A log file's text; '' while there is none."""
    try:
        with open(path, encoding='utf-8', errors='replace') as f:
            return f.read()
    except OSError:
        return ''


def write_file(path, text):
    with open(path, 'w', encoding='utf-8') as f:
        f.write(text)
    return path


def docs_folder(parent, name='docs'):
    """A folder in `parent` holding f.txt ('ok'), to protect."""
    docs = os.path.join(parent, name)
    os.makedirs(docs, exist_ok=True)
    write_file(os.path.join(docs, 'f.txt'), 'ok\n')
    return docs


def open_up(path):
    """Let the Apache user read and write a tree (Trac writes sessions)."""
    for root, _dirs, files in os.walk(path):
        os.chmod(root, 0o777)
        for name in files:
            os.chmod(os.path.join(root, name), 0o666)


def trac_admin(env_path, *args, stdin=None, check=True):
    if args[:2] == ('wsgiauth', 'passwd') and stdin:
        secret(stdin.splitlines()[0])
    proc = subprocess.run([TRAC_ADMIN, env_path] + list(args), input=stdin,
                          capture_output=True, text=True, timeout=120)
    if check and proc.returncode != 0:
        raise AssertionError('trac-admin %s failed: %s%s'
                             % (' '.join(args), proc.stdout, proc.stderr))
    return proc


def make_env(parent, name='proj', extra_ini='', database=None):
    """A real Trac environment with the plugin enabled, refused logins
    answered at once (``failure_delay = 0``) unless `extra_ini` says
    otherwise: many tests send wrong passwords, and the delay has tests
    of its own."""
    from trac.env import Environment
    path = os.path.join(parent, name)
    options = [('trac', 'database', database or 'sqlite:db/trac.db')]
    env = Environment(path, create=True, options=options)
    with open(env.config.filename, 'a', encoding='utf-8') as f:
        f.write(PLUGIN_COMPONENTS + extra_ini)
    env.shutdown()
    with trac_env(path) as env:
        env.upgrade()       # the plugin's table (trac-admin ENV upgrade)
        if not env.config.has_option('wsgiauth', 'failure_delay',
                                     defaults=False):
            env.config.set('wsgiauth', 'failure_delay', '0')
            env.config.save()
    return path


@contextlib.contextmanager
def trac_env(env_path):
    """The Trac environment at `env_path`, shut down afterwards."""
    from trac.env import Environment
    env = Environment(env_path)
    try:
        yield env
    finally:
        env.shutdown()


def add_user(env_path, name, password, *groups):
    """A user (and its groups) as an administrator adds one: through
    trac-admin, the password on stdin."""
    trac_admin(env_path, 'wsgiauth', 'passwd', name, stdin=password + '\n')
    for group in groups:
        trac_admin(env_path, 'permission', 'add', name, group)


def set_password(env_path, name, password, *groups):
    """The same in this process (quicker): through AuthStore and Trac's
    permission system."""
    from trac.perm import PermissionSystem
    from tracwsgiauth.accounts import AuthStore
    with trac_env(env_path) as env:
        AuthStore(env).set_password(name, secret(password))
        for group in groups:
            PermissionSystem(env).grant_permission(name, group)


Deployment = namedtuple('Deployment', 'target output script')


def deploy(env_path, *options, target=None):
    """`trac-admin ENV deploy` into `target` (default: deploy-<name> next
    to the environment)."""
    target = target or os.path.join(os.path.dirname(env_path), 'deploy-' +
                                    os.path.basename(env_path))
    out = trac_admin(env_path, 'deploy', target, *options).stdout
    return Deployment(target, out,
                      os.path.join(target, 'cgi-bin', 'trac.wsgi'))


def deploy_ours(env_path, *options, target=None):
    """deploy, which must say that it wrote this plugin's scripts (not
    Trac's own deploy)."""
    deployment = deploy(env_path, *options, target=target)
    assert 'Wrote tracwsgiauth scripts' in deployment.output, \
        deployment.output
    return deployment


def deployed(name, *users, extra_ini='', options=()):
    """A new environment `name` in a fresh public folder, with `users`
    ((name, password, group...) each, added by add_user), deployed by
    deploy_ours with `options` and opened up to the Apache user: the
    folder, the environment and the deploy target."""
    parent = public_dir()
    env_path = make_env(parent, name, extra_ini=extra_ini)
    for user in users:
        add_user(env_path, *user)
    target = deploy_ours(env_path, *options).target
    open_up(parent)
    return parent, env_path, target


def include(*targets):
    """Apache lines serving deployed environments."""
    return ''.join('Include "%s/apache/trac.conf"\n' % t for t in targets)


def uncomment(text, start, end='#</'):
    """The commented example block of a generated file that begins with
    the line `start`, made live."""
    lines = text.splitlines()
    first = lines.index(start)
    last = next(i for i in range(first, len(lines))
                if lines[i].startswith(end))
    return '\n'.join(line[1:] for line in lines[first:last + 1]) + '\n'


def edit_ini(env_path, section, option, value):
    """Change an option in an environment's trac.ini as another process
    would, giving the file a modification time that surely differs from
    any it had (changes are noticed by modification time)."""
    with trac_env(env_path) as env:
        env.config.set(section, option, value)
        env.config.save()
    bump(os.path.join(env_path, 'conf', 'trac.ini'))


def bump(path):
    """Move a file's modification time surely forward."""
    stamp = max(time.time(), os.stat(path).st_mtime) + 2
    os.utime(path, (stamp, stamp))


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def wait_for(predicate, timeout=10, interval=0.2):
    """Whether `predicate()` came true within `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())


def wait_port(port, proc=None, what='server', timeout=20):
    """Wait until something listens on `port` of 127.0.0.1; fail when
    `proc` exits first or time runs out."""
    def listening():
        if proc is not None and proc.poll() is not None:
            raise AssertionError('%s exited' % what)
        try:
            socket.create_connection(('127.0.0.1', port), 1).close()
            return True
        except OSError:
            return False
    if not wait_for(listening, timeout, 0.05):
        raise AssertionError('%s did not start on port %d' % (what, port))


class SilentServer(object):
    """A port of 127.0.0.1 that accepts connections and never answers;
    `held`: the connections it accepted."""

    def __init__(self):
        import threading
        self.sock = socket.socket()
        self.sock.bind(('127.0.0.1', 0))
        self.sock.listen(128)
        self.port = self.sock.getsockname()[1]
        self.held = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        try:
            while True:
                self.held.append(self.sock.accept()[0])
        except OSError:
            pass

    def close(self):
        self.sock.close()
        for cnx in self.held:
            cnx.close()


def stop_group(proc, sig=signal.SIGTERM, timeout=15):
    """Stop a process started with start_new_session=True, and its
    children: `sig`, then SIGKILL after `timeout` seconds."""
    if proc and proc.poll() is None:
        os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)


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
{modules}
TypesConfig /etc/mime.types
LogFormat "%h \\"%u\\" \\"%r\\" %>s" simple
CustomLog "{root}/access.log" simple
Timeout 20
WSGISocketPrefix "{root}/wsgi"
{wsgi}
{body}
"""


MODULE_NAMES = ['mpm_event', 'authz_core', 'authz_user', 'authz_host',
                'authn_core', 'authn_file', 'auth_basic', 'auth_digest',
                'alias', 'mime', 'headers', 'lua']


def load_modules():
    return '\n'.join('LoadModule %s_module %s/mod_%s.so' % (name, MODULES,
                                                          name)
                     for name in MODULE_NAMES)


def mpm(children, threads, min_spare=1, steady=False):
    """MPM settings for exactly `children` Apache child processes of
    `threads` threads; `steady`: none stopped or started while it runs."""
    return ('\nStartServers {n}\nServerLimit {n}\nThreadsPerChild {t}\n'
            'MaxRequestWorkers {all}\nMinSpareThreads {spare}\n'
            'MaxSpareThreads {all}\n{steady}').format(
                n=children, t=threads, all=children * threads,
                spare=min_spare,
                steady='MaxConnectionsPerChild 0\n' if steady else '')


#: MPM settings for exactly one Apache child process, whose memory,
#: first request and connection pool are then easy to observe
ONE_CHILD = mpm(1, 25)


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
        needs('apache', 'Apache')
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
                                     user=user, modules=load_modules(),
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
        try:
            wait_port(self.port, self.proc, 'Apache')
        except AssertionError as e:
            self.stop()
            raise AssertionError('%s: %s\n%s' % (
                e, self.proc.stderr.read().decode(),
                self.error_log())) from None
        return self

    def stop(self):
        stop_group(self.proc)

    def error_log(self):
        return read_text(os.path.join(self.root, 'error.log'))

    def access_log(self):
        return read_text(os.path.join(self.root, 'access.log'))


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


#: curl options that follow Trac's redirect after /login, keeping its
#: session cookie
LOGIN = ['-L', '-b', '']


def check_login(url, user, password, shown=None):
    """Trac at `url` (its base URL) lets `user` in at /login with
    `password` through Apache's Basic auth and shows them logged in (as
    `shown`, default `user`), and Apache refuses a wrong password."""
    status, body = curl(url + '/login', user, password, extra=LOGIN)
    assert status == 200, body[:1000]
    assert re.search(r'logged in as\s*(<[^>]*>\s*)*%s\b'
                     % re.escape(shown or user), body), body[:2000]
    assert curl(url + '/login', user, 'wrong')[0] == 401
    return body


def started(port, proc, what, timeout):
    """wait_port, failing with the output of `proc` (started with
    stdout=PIPE) when it exited first."""
    try:
        wait_port(port, proc, what, timeout)
    except AssertionError as e:
        out = proc.stdout.read().decode('utf-8', 'replace') \
            if proc.poll() is not None and proc.stdout else ''
        raise AssertionError('%s\n%s' % (e, out)) from None


def request(port, path, user=None, password=None, cookie=None, timeout=30):
    """(status, body, response headers) of one GET on a new connection,
    with Basic credentials when `user` is given: text is sent as UTF-8,
    bytes as they are (the way a client of any encoding sends them)."""
    headers = {}
    if user is not None:
        if isinstance(user, str):
            user, password = user.encode('utf-8'), password.encode('utf-8')
        token = base64.b64encode(user + b':' + password)
        headers['Authorization'] = 'Basic ' + token.decode('ascii')
    if cookie:
        headers['Cookie'] = cookie
    conn = http.client.HTTPConnection('127.0.0.1', port, timeout=timeout)
    try:
        conn.request('GET', path, headers=headers)
        response = conn.getresponse()
        return response.status, response.read(), response.headers
    finally:
        conn.close()


def basic_get(port, path, user=None, password=None, timeout=30):
    """(status, body) of one GET with Basic credentials, on a new
    connection."""
    return request(port, path, user, password, timeout=timeout)[:2]


def hammer(port, cases, concurrency=8):
    """Send every (path, user, password) case from `concurrency` threads;
    the statuses, in the order of `cases`."""
    with ThreadPoolExecutor(concurrency) as pool:
        return list(pool.map(lambda case: basic_get(port, *case)[0], cases))


AUTH_SCRIPT = '''
from tracwsgiauth.modwsgi import for_environment

check_password, get_realm_hash, groups_for_user, allow_access = \\
    for_environment({env_path!r}, pooled={pooled!r})
{application}'''


def auth_script(path, env_path, pooled=True, application=''):
    """Write a mod_wsgi script for one environment: its auth entry points,
    and the source of a WSGI `application` when given."""
    return write_file(path, AUTH_SCRIPT.format(
        env_path=env_path, pooled=pooled,
        application=application and '\n\n' + application))


def auth_location(url, script, group=None, kind='Basic', realm='trac',
                  app_group='%{GLOBAL}', user_file=None):
    """An Apache <Location> that lets in the users of `script`'s
    environment (of the htpasswd `user_file` instead when given), only
    members of `group` (by `script`) when given."""
    lines = ['<Location %s>' % url,
             '    AuthType %s' % kind,
             '    AuthName "%s"' % realm]
    if user_file:
        lines += ['    Auth%sProvider file' % kind,
                  '    AuthUserFile "%s"' % user_file]
    else:
        lines += ['    Auth%sProvider wsgi' % kind,
                  '    WSGIAuthUserScript "%s" application-group=%s'
                  % (script, app_group)]
    if group:
        lines += ['    WSGIAuthGroupScript "%s" application-group=%s'
                  % (script, app_group),
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
