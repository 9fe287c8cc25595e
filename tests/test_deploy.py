"""`trac-admin ENV deploy` with the plugin, and what it writes, served by
a real Apache httpd."""

import os
import re
import stat
import subprocess
import sys
import time

import pytest
from trac.env import Environment

import tracwsgiauth.deploy
from tests.harness import (LOGIN, Apache, add_user, check_login, curl,
                           deploy_ours, deployed, docs_folder, free_port,
                           include, make_env, open_up, private_dir,
                           public_dir, stop_group, trac_admin, uncomment,
                           wait_port)
from tracwsgiauth.deploy import write_files


@pytest.fixture(scope='module')
def two_envs():
    parent = public_dir()
    one = make_env(parent, 'one', extra_ini='\n[wsgiauth]\n'
                   'strip_domains = CORP\n')
    two = make_env(parent, 'two')
    add_user(one, 'alice', 'alice-pw', 'developers')
    add_user(two, 'bob', 'bob-pw')
    targets = [deploy_ours(one).target, deploy_ours(two).target]
    open_up(parent)
    apache = Apache(include(*targets)).start()
    yield apache, targets
    apache.stop()


@pytest.mark.apache
def test_login_shows_trac_logged_in(two_envs):
    apache, _ = two_envs
    check_login(apache.url + '/one', 'alice', 'alice-pw')
    assert curl(apache.url + '/one/login')[0] == 401


@pytest.mark.apache
def test_each_environment_has_its_own_users_and_pages(two_envs):
    apache, _ = two_envs
    assert curl(apache.url + '/two/login', 'alice', 'alice-pw')[0] == 401
    assert curl(apache.url + '/one/login', 'bob', 'bob-pw')[0] == 401
    status, body = curl(apache.url + '/two/login', 'bob', 'bob-pw',
                        extra=LOGIN)
    assert status == 200 and 'logged in as' in body
    for name in ('one', 'two'):
        status, body = curl(apache.url + '/%s/wiki' % name)
        assert status == 200
        assert '<title>' in body and '/%s/chrome/' % name in body
        assert curl(apache.url + '/%s/chrome/common/css/trac.css'
                    % name)[0] == 200


@pytest.mark.apache
def test_domain_user_becomes_trac_user(two_envs):
    apache, _ = two_envs
    body = check_login(apache.url + '/one', 'CORP\\alice', 'alice-pw',
                       shown='alice')
    assert 'CORP' not in re.search(r'logged in as.{0,200}', body,
                                   re.S).group(0)


def test_generated_files_and_modes(env_path):
    for target, _, script in [deploy_ours(env_path)]:
        conf = os.path.join(target, 'apache', 'trac.conf')
        express = os.path.join(target, 'apache', 'mod_wsgi-express')
        assert stat.S_IMODE(os.stat(script).st_mode) == 0o755
        assert stat.S_IMODE(os.stat(conf).st_mode) == 0o644
        assert stat.S_IMODE(os.stat(express).st_mode) == 0o755
        with open(script) as f:
            text = f.read()
        assert 'TRAC_ENV' not in text and 'poolable' not in text
        compile(text, script, 'exec')
        subprocess.run(['sh', '-n', express], check=True)


@pytest.mark.apache
def test_group_requirements_are_always_inside_require_all(two_envs):
    _, targets = two_envs
    with open(os.path.join(targets[0], 'apache', 'trac.conf')) as f:
        lines = [line.lstrip('#').strip() for line in f]
    depth = 0
    seen = 0
    for line in lines:
        if line.startswith('<RequireAll>'):
            depth += 1
        elif line.startswith('</RequireAll>'):
            depth -= 1
        elif line.startswith('Require wsgi-group'):
            seen += 1
            assert depth > 0, line
    assert seen >= 2


def test_templates_come_from_the_installed_package():
    templates = tracwsgiauth.deploy.TEMPLATES
    assert os.path.isfile(os.path.join(templates, 'trac.wsgi'))
    assert os.path.isfile(tracwsgiauth.deploy.LUA_HOOK)
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    if os.environ.get('CI'):
        # CI tests the built and installed package, not the source tree
        assert not templates.startswith(here)


def _script_for(env, tmp, database, **settings):
    env.config.set('trac', 'database', database)
    settings = dict({'pooling': True, 'url': '/x', 'group': 'g'}, **settings)
    write_files(env, tmp, settings)
    return os.path.join(tmp, 'cgi-bin', 'trac.wsgi')


def _run_script(script):
    """The environment a script serves, and whether it keeps PostgreSQL
    connections for reuse."""
    code = ('import runpy\n'
            'from tracwsgiauth.modwsgi import provider_for\n'
            'g = runpy.run_path(%r)\n'
            'print(repr(g["ENV_PATH"]), provider_for(g["ENV_PATH"]).pooled)'
            % script)
    return subprocess.run([sys.executable, '-c', code], capture_output=True,
                          text=True, check=True).stdout.strip()


@pytest.mark.parametrize('database, pooling, poolable', [
    ('postgres://u@127.0.0.1/db', False, 'False'),
    ('postgres://u@127.0.0.1/db?schema=x', True, 'True'),
    ('sqlite:db/trac.db', False, 'True'),
])
def test_pooling_off_only_when_asked_on_postgres(env, database, pooling,
                                                 poolable):
    tmp = public_dir()
    os.makedirs(os.path.join(tmp, 'cgi-bin'))
    script = _script_for(env, tmp, database, pooling=pooling)
    assert _run_script(script).endswith(' ' + poolable)


def test_no_pooling_option_of_deploy(env_path):
    # SQLite: nothing to turn off
    target, _, script = deploy_ours(env_path, '--no-pooling')
    with open(script) as f:
        assert 'poolable' not in f.read()
    bad = trac_admin(env_path, 'deploy', target, '--bogus', check=False)
    assert bad.returncode != 0


@pytest.mark.apache     # Apache checks the syntax of its configuration
@pytest.mark.parametrize('name', [
    'quo\'te"s', 'new\nline', 'back\\slash', 'sp ace', 'ünï', "x'''; "
    "import os; os.system('touch pwned') #"])
def test_hostile_environment_path(name):
    parent = public_dir()
    env_path = make_env(parent, name)
    env = Environment(env_path)
    try:
        target = os.path.join(parent, 'deploy')
        os.makedirs(os.path.join(target, 'cgi-bin'))
        script = _script_for(env, target, 'sqlite:db/trac.db')
    finally:
        env.shutdown()
    with open(script, encoding='utf-8') as f:
        compile(f.read(), script, 'exec')
    assert _run_script(script) == '%r True' % env_path
    # the Apache configuration names the path only in comments: still valid
    conf = os.path.join(target, 'apache', 'trac.conf')
    syntax = Apache('Include "%s"\n' % conf).check_syntax()
    assert syntax.returncode == 0, syntax.stderr


def test_hostile_deploy_directory_gives_no_apache_config(env):
    target = os.path.join(public_dir(), 'new\nline')
    os.makedirs(os.path.join(target, 'cgi-bin'))
    _script_for(env, target, 'sqlite:db/trac.db')
    with open(os.path.join(target, 'apache', 'trac.conf')) as f:
        text = f.read()
    assert all(line.startswith('#') for line in text.splitlines())


def test_deploy_is_ours_only_while_trac_own_is_disabled(env_path):
    help_text = trac_admin(env_path, 'help', 'deploy').stdout
    assert '--no-pooling' in help_text
    listing = trac_admin(env_path, 'help').stdout
    assert len(re.findall(r'^deploy\b', listing, re.M)) == 1
    assert len(re.findall(r'^hotcopy\b', listing, re.M)) == 1
    env = Environment(env_path)
    env.config.remove('components', 'trac.env.environmentadmin')
    env.config.save()
    env.shutdown()
    listing = trac_admin(env_path, 'help').stdout
    assert len(re.findall(r'^deploy\b', listing, re.M)) == 1
    assert '--no-pooling' not in trac_admin(env_path, 'help',
                                            'deploy').stdout


def test_hotcopy_and_upgrade_still_work(env_path):
    backup = os.path.join(os.path.dirname(env_path), 'backup')
    out = trac_admin(env_path, 'hotcopy', backup).stdout
    assert 'Hotcopy done' in out
    assert os.path.isfile(os.path.join(backup, 'db', 'trac.db'))
    out = trac_admin(env_path, 'upgrade').stdout
    assert 'up to date' in out or 'Upgrade done' in out


@pytest.mark.apache
def test_trac_logins_reach_the_access_log_but_not_the_client():
    parent, _, target = deployed(
        'logs', ('carl', 'carl-pw'),
        extra_ini='\n[wsgiauth]\nlog_trac_logins = true\n')
    apache = Apache(include(target)).start()
    try:
        jar = os.path.join(parent, 'cookies')
        status, _, headers = curl(apache.url + '/logs/login', 'carl',
                                  'carl-pw', headers=True,
                                  extra=['-c', jar])
        assert status == 302
        # a later request logged in by Trac's cookie only, no Apache auth
        status, body, headers = curl(apache.url + '/logs/wiki/WikiStart',
                                     headers=True, extra=['-b', jar])
        assert status == 200 and 'logged in as' in body
        assert 'x-remote-user' not in headers.lower()
        assert 'x-auth-type' not in headers.lower()
        anonymous = curl(apache.url + '/logs/wiki/WikiStart', headers=True)
        assert 'x-remote-user' not in anonymous[2].lower()
        time.sleep(0.5)  # the access log is written after the response
        log = apache.access_log()
        assert '"carl" "GET /logs/wiki/WikiStart' in log
        assert '"-" "GET /logs/wiki/WikiStart' in log
    finally:
        apache.stop()


@pytest.mark.apache
def test_generated_group_examples_refuse_valid_non_members():
    parent, _, target = deployed(
        'grp', ('alice', 'alice-pw', 'developers', 'downloaders'),
        ('bob', 'bob-pw'),
        extra_ini='\n[wsgiauth]\ndeny_hosts = 192.0.2.0/24\n',
        options=['--url=/grp', '--group=developers'])
    downloads = docs_folder(parent, 'downloads')
    with open(os.path.join(target, 'apache', 'trac.conf')) as f:
        conf = f.read()
    extra = os.path.join(target, 'apache', 'examples.conf')
    with open(extra, 'w') as f:
        f.write(uncomment(conf, '#<Location "/grp/admin">'))
        f.write(uncomment(conf, '#Alias "/downloads/grp" '
                           '"/srv/downloads/grp"', '#</Directory>')
                .replace('/srv/downloads/grp', downloads)
                .replace('/downloads/grp', '/downloads'))
    apache = Apache(include(target) + '\nInclude "%s"\n' % extra).start()
    try:
        for url in ('/grp/admin', '/downloads/f.txt'):
            assert curl(apache.url + url, 'bob', 'bob-pw')[0] == 401, url
            assert curl(apache.url + url, 'alice', 'wrong')[0] == 401, url
        # alice gets past Apache: Trac answers the admin page itself
        assert curl(apache.url + '/grp/admin', 'alice', 'alice-pw')[0] \
            not in (401, 500)
        assert curl(apache.url + '/downloads/f.txt', 'alice',
                    'alice-pw') == (200, 'ok\n')
    finally:
        apache.stop()


@pytest.mark.apache
def test_generated_express_command_requires_the_group():
    _, _, target = deployed('xp', ('alice', 'alice-pw', 'developers'),
                            ('bob', 'bob-pw'),
                            options=['--url=/', '--group=developers'])
    port = free_port()
    command = ['sh', os.path.join(target, 'apache', 'mod_wsgi-express'),
               '--locale', 'C.UTF-8', '--startup-timeout', '20']
    if os.geteuid() == 0:
        command += ['--user', 'nobody', '--group', 'nogroup']
    # started from a folder the Apache user cannot enter (mode 0700)
    private = private_dir()
    proc = subprocess.Popen(command, env=dict(os.environ, PORT=str(port)),
                            cwd=private, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        url = 'http://127.0.0.1:%d/' % port
        wait_port(port, proc, 'mod_wsgi-express', timeout=60)
        assert curl(url)[0] == 401
        assert curl(url, 'bob', 'bob-pw')[0] == 401
        assert curl(url, 'alice', 'alice-pw')[0] == 200
    finally:
        stop_group(proc, timeout=30)
