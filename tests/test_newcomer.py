"""The path a newcomer follows, from a fresh clone to a Trac that Apache
protects: install, enable in an environment that already has
``[components]`` (the README's own commands), set a password, deploy,
start the generated ``apache/mod_wsgi-express`` without extra options and
log in with curl -- as root and as an unprivileged user.

The clone is the repository's committed state. It is installed with pip
(``'clone[apache]'``) into a fresh virtualenv that inherits this run's
site-packages through a .pth file, so Trac, mod_wsgi and the other
dependencies are found already installed instead of downloaded; only
pip's build of the clone itself may fetch setuptools."""

import os
import pwd
import re
import shlex
import shutil
import subprocess
import sys
import sysconfig

import pytest

from tests.harness import (CURL, MOD_WSGI_EXPRESS, check_login, curl,
                           free_port, public_dir, require, started,
                           stop_group)

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NEWCOMER = 'twa-newcomer'
README_ENV = '/srv/trac/proj'
RUNUSER = shutil.which('runuser', path='/usr/sbin:/sbin:/usr/bin:/bin')

#: every test here starts mod_wsgi-express
pytestmark = pytest.mark.apache


def scenarios():
    """Who walks the path: root and a throwaway user when we are root,
    else the calling (unprivileged) user."""
    return ['root', NEWCOMER] if os.geteuid() == 0 else [None]


def readme_lines(prefix):
    """The README's command lines that start with `prefix`."""
    with open(os.path.join(HERE, 'README.rst'), encoding='utf-8') as f:
        return [line.strip() for line in f
                if line.strip().startswith(prefix)]


class Newcomer(object):
    """Runs commands as one user in a clean login-like environment."""

    def __init__(self, user, base):
        self.user = None if user in (None, 'root') else user
        self.base = base
        home = pwd.getpwnam(self.user).pw_dir if self.user else \
            os.path.expanduser('~')
        path = '/usr/local/bin:/usr/bin:/bin'
        if os.geteuid() == 0 and not self.user:
            path = '/usr/local/sbin:/usr/sbin:/sbin:' + path
        self.env = {'PATH': path, 'HOME': home,
                    'LANG': 'C.UTF-8'}   # Debian's default locale
        self.python = os.path.join(base, 'venv', 'bin', 'python')

    def command(self, args):
        return ([RUNUSER, '-u', self.user, '--'] if self.user else []) \
            + list(args)

    def run(self, *args, stdin=None, check=True):
        proc = subprocess.run(self.command(args), input=stdin, env=self.env,
                              cwd=self.base, capture_output=True, text=True,
                              timeout=120)
        assert proc.returncode == 0 or not check, \
            '%s: %s%s' % (' '.join(args), proc.stdout, proc.stderr)
        return proc

    def trac_admin(self, *args, **kwargs):
        return self.run(self.python, '-m', 'trac.admin.console', *args,
                        **kwargs)


def make_user(name):
    try:
        pwd.getpwnam(name)
    except KeyError:
        subprocess.run(['useradd', '-m', name], check=True)


@pytest.fixture(scope='module')
def clone():
    require(shutil.which('git'), 'git')
    require(CURL, 'curl')
    require(os.path.exists(MOD_WSGI_EXPRESS), 'mod_wsgi (pip install)')
    parent = public_dir('twa-clone-')
    path = os.path.join(parent, 'tracwsgiauth')
    subprocess.run(['git', 'clone', '-q', HERE, path], check=True)
    yield path
    shutil.rmtree(parent)


def install(me, clone):
    """A fresh virtualenv with the clone and its `apache` extra."""
    src = os.path.join(me.base, 'tracwsgiauth')
    shutil.copytree(clone, src, symlinks=True)
    if me.user:
        subprocess.run(['chown', '-R', me.user, me.base], check=True)
    me.run(sys._base_executable, '-m', 'venv', '--without-pip', 'venv')
    site = me.run(me.python, '-c', 'import sysconfig; '
                  'print(sysconfig.get_paths()["purelib"])').stdout.strip()
    me.run('sh', '-c', 'echo "$1" > "$2"/inherit.pth', '-',
           sysconfig.get_paths()['purelib'], site)
    out = me.run(sys.executable, '-m', 'pip', '--python', me.python,
                 'install', '-q', src + '[apache]')
    assert 'does not provide the extra' not in out.stdout + out.stderr
    assert me.run(me.python, '-c', 'import mod_wsgi.express.cli').returncode \
        == 0


def enable_and_deploy(me):
    env_path = os.path.join(me.base, 'proj')
    me.trac_admin(env_path, 'initenv', 'proj', 'sqlite:db/trac.db')
    me.trac_admin(env_path, 'config', 'set', 'components',
                  'tracopt.versioncontrol.git.*', 'enabled')
    enable = readme_lines('trac-admin %s config set components' % README_ENV)
    assert len(enable) == 2, enable
    for line in enable:
        me.trac_admin(env_path, *shlex.split(line)[2:])
    [upgrade] = readme_lines('trac-admin %s upgrade' % README_ENV)
    me.trac_admin(env_path, *shlex.split(upgrade)[2:])
    me.trac_admin(env_path, 'wsgiauth', 'passwd', 'alice',
                  stdin='alice-pw\n')
    target = os.path.join(me.base, 'deploy')
    out = me.trac_admin(env_path, 'deploy', target).stdout
    assert 'Wrote tracwsgiauth scripts' in out and 'WARNING' not in out
    return env_path, os.path.join(target, 'apache', 'mod_wsgi-express')


def start(me, express, port, *options):
    env = dict(me.env, PORT=str(port))
    return subprocess.Popen(me.command(['sh', express] + list(options)),
                            env=env,
                            cwd=me.base, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, start_new_session=True)


def as_root_give_env_away(me, env_path, express):
    """As root, the script refuses a root-owned environment and names the
    chown to run; the newcomer runs it."""
    proc = me.run('sh', express, check=False)
    assert proc.returncode == 1
    chown = re.search(r'\((chown -R www-data:www-data "[^"]+")\)',
                      proc.stderr)
    assert chown, proc.stderr
    me.run('sh', '-c', chown.group(1))


@pytest.mark.parametrize('user', scenarios())
def test_fresh_clone_to_protected_trac(clone, user):
    if user == NEWCOMER:
        make_user(NEWCOMER)
    me = Newcomer(user, public_dir('twa-newcomer-'))
    try:
        install(me, clone)
        env_path, express = enable_and_deploy(me)
        if user == 'root':
            as_root_give_env_away(me, env_path, express)
        port = free_port()
        proc = start(me, express, port)
        try:
            check_served(port, proc)
        finally:
            stop_group(proc, timeout=30)
    finally:
        shutil.rmtree(me.base, ignore_errors=True)


def check_served(port, proc):
    url = 'http://127.0.0.1:%d' % port
    started(port, proc, 'mod_wsgi-express', timeout=40)
    check_login(url, 'alice', 'alice-pw')
    # every URL, not only /login
    assert curl(url + '/wiki/WikiStart')[0] == 401
    assert curl(url + '/chrome/common/css/trac.css')[0] == 401
    assert curl(url + '/chrome/common/css/trac.css', 'alice',
                'alice-pw')[0] == 200
