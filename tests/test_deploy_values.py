"""What `deploy` does with values it writes into shell scripts and Apache
configuration (``--group``, ``[wsgiauth] realm``), which deploy answers
``trac-admin ENV deploy``, and a Python without mod_wsgi."""

import os
import re
import subprocess
import sys

import pytest

from tests.harness import (Apache, curl, deploy_ours,
                           edit_ini, include, make_env, open_up,
                           public_dir, trac_admin)

PYTHON_WITHOUT_MOD_WSGI = (
    "import sys; sys.modules['mod_wsgi'] = None; "
    "from trac.admin.console import run; sys.exit(run())")


def test_group_cannot_run_commands_from_the_express_script(env_path):
    parent = os.path.dirname(env_path)
    marker = os.path.join(parent, 'pwned')
    target = os.path.join(parent, 'deploy')
    for group in ('x$(touch %s)' % marker, 'x`touch %s`' % marker,
                  'x"; touch %s; "' % marker, "x'\ntouch %s\n'" % marker):
        proc = trac_admin(env_path, 'deploy', target, '--group=' + group,
                          check=False)
        assert proc.returncode != 0
        assert '--group=' in proc.stdout + proc.stderr
        assert not os.path.exists(target)   # refused before writing
    trac_admin(env_path, 'deploy', target, '--group=dev-team.1')
    express = os.path.join(target, 'apache', 'mod_wsgi-express')
    with open(express) as f:
        assert "GROUP=dev-team.1\n" in f.read()
    assert not os.path.exists(marker)


@pytest.mark.parametrize('option, says', [
    ('--group=WIKI_ADMIN', 'is a permission'),
    ('--url=/../x', 'plain URL path'), ('--url=/a/./b', 'plain URL path'),
    ('--url=/a//b', 'plain URL path')])
def test_values_no_request_could_match_are_refused(env_path, option, says):
    target = os.path.join(os.path.dirname(env_path), 'deploy')
    proc = trac_admin(env_path, 'deploy', target, option, check=False)
    assert proc.returncode != 0 and says in proc.stdout + proc.stderr
    assert not os.path.exists(target)


#: realms Apache can carry exactly: quotes, expression and Define syntax
#: that is not "${"
GOOD_REALMS = ['Team "A" %{HTTP_HOST} $1 $ {x} }', "it's 100%", 'ünï']
BAD_REALMS = ['back\\slash', 'trailing\\', 'define ${x}', '']


def _realm_of(headers):
    """The realm of a WWW-Authenticate header, unescaped."""
    value = re.search(r'realm="((?:[^"\\]|\\.)*)"', headers).group(1)
    return re.sub(r'\\(.)', r'\1', value)


@pytest.mark.apache
def test_realm_reaches_the_client_exactly():
    parent = public_dir()
    paths = [make_env(parent, 'r%d' % i) for i in range(len(GOOD_REALMS))]
    targets = []
    for path, realm in zip(paths, GOOD_REALMS, strict=True):
        edit_ini(path, 'wsgiauth', 'realm', realm)
        targets.append(deploy_ours(path).target)
    open_up(parent)
    apache = Apache(include(*targets))
    syntax = apache.check_syntax()
    assert syntax.returncode == 0, syntax.stderr
    apache.start()
    try:
        for i, realm in enumerate(GOOD_REALMS):
            status, _, headers = curl('%s/r%d/login' % (apache.url, i),
                                      headers=True)
            assert status == 401
            raw = headers.encode('latin-1').decode('utf-8')
            assert _realm_of(raw) == realm
    finally:
        apache.stop()


@pytest.mark.parametrize('realm', BAD_REALMS)
def test_realm_apache_cannot_carry_is_refused_naming_the_option(env_path,
                                                                realm):
    edit_ini(env_path, 'wsgiauth', 'realm', realm)
    target = os.path.join(os.path.dirname(env_path), 'deploy')
    proc = trac_admin(env_path, 'deploy', target, check=False)
    assert proc.returncode != 0
    assert '[wsgiauth] realm' in proc.stdout + proc.stderr
    assert not os.path.exists(target)


def _only_plugin_enabled(env_path):
    edit_ini(env_path, 'components', 'trac.env.environmentadmin', 'enabled')


def test_trac_own_deploy_says_it_is_not_ours(env_path):
    _only_plugin_enabled(env_path)
    target = os.path.join(os.path.dirname(env_path), 'trac-own')
    out = trac_admin(env_path, 'deploy', target).stdout
    assert 'Wrote tracwsgiauth scripts' not in out
    assert not os.path.exists(os.path.join(target, 'apache'))
    assert "NOTE: this is Trac's own deploy" in out
    line = 'trac-admin %s config set components ' \
        'trac.env.environmentadmin disabled' % env_path
    assert line in out
    assert 'trac-admin %s wsgiauth deploy DIR' % env_path in out


@pytest.mark.parametrize('trac_own', [True, False])
def test_wsgiauth_deploy_is_always_ours(env_path, trac_own):
    if trac_own:
        _only_plugin_enabled(env_path)
    target = os.path.join(os.path.dirname(env_path), 'ours')
    out = trac_admin(env_path, 'wsgiauth', 'deploy', target,
                     '--group=devs').stdout
    assert 'Wrote tracwsgiauth scripts' in out and 'NOTE' not in out
    with open(os.path.join(target, 'apache', 'mod_wsgi-express')) as f:
        assert 'GROUP=devs' in f.read()
    assert 'NOTE' not in trac_admin(env_path, 'deploy', target).stdout \
        or trac_own


def test_deploy_without_mod_wsgi_says_what_to_install(env_path):
    target = os.path.join(os.path.dirname(env_path), 'deploy')
    proc = subprocess.run(
        [sys.executable, '-c', PYTHON_WITHOUT_MOD_WSGI, env_path,
         'wsgiauth', 'deploy', target], capture_output=True, text=True,
        timeout=120, cwd='/', env=dict(os.environ, PATH='/usr/bin:/bin'))
    assert proc.returncode == 0, proc.stderr
    assert "pip install 'tracwsgiauth[apache]'" in proc.stdout
    express = subprocess.run(
        ['sh', os.path.join(target, 'apache', 'mod_wsgi-express')],
        capture_output=True, text=True, timeout=30)
    assert express.returncode == 127
    assert "pip install 'tracwsgiauth[apache]'" in express.stderr
