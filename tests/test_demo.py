"""README's first command: the demo, served by mod_wsgi-express."""

import os
import re
import subprocess

import pytest

from tests.harness import (CURL, check_login, curl, free_port, private_dir,
                           public_dir, require, secret, started, stop_group)
from tests.repoclients import git, svn

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

#: the demo is served by mod_wsgi-express
pytestmark = pytest.mark.apache


def world_writable(top):
    """Files and folders under `top` that anyone may write to."""
    found = []
    for root, dirs, files in os.walk(top):
        for name in dirs + files:
            path = os.path.join(root, name)
            if not os.path.islink(path) and os.stat(path).st_mode & 0o002:
                found.append(path)
    return found


def test_demo_serves_trac_with_apache_auth():
    require(CURL, 'curl')
    port = free_port()
    demo = os.path.join(public_dir(), 'demo')
    env = dict(os.environ, PORT=str(port), DEMO_DIR=demo)
    # run from a folder the Apache user cannot enter, as a fresh clone is
    proc = subprocess.Popen(['bash', os.path.join(HERE, 'contrib', 'demo.sh')],
                            env=env, cwd=private_dir(),
                            stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, start_new_session=True)
    try:
        started(port, proc, 'demo.sh', timeout=240)
        url = 'http://127.0.0.1:%d' % port
        check_login(url, 'demo', 'demo-password')
        assert curl(url + '/login')[0] == 401
        assert curl(url + '/chrome/common/css/trac.css', 'demo',
                    'demo-password')[0] == 200
        check_repositories(url, os.path.join(public_dir(), 'clients'))
        shown = check_app_password(url, proc, os.path.join(public_dir(),
                                                           'app'))
        assert world_writable(demo) == []
    finally:
        stop_group(proc, timeout=20)
    out = (shown + proc.stdout.read()).decode()
    assert 'user:        demo' in out
    assert 'Preferences -> App passwords' in out


def check_repositories(url, work):
    """The demo's repositories, as its message says: demo commits to the
    Subversion one and Trac's timeline shows it (the hook is installed);
    reader clones the Git one but may not push; anonymous may not read."""
    wc, clone = os.path.join(work, 'wc'), os.path.join(work, 'clone')
    assert svn(['checkout', url + '/svn/code', wc], 'demo',
               'demo-password').returncode == 0
    with open(os.path.join(wc, 'trunk', 'hello.txt'), 'w') as f:
        f.write('hello\n')
    svn(['add', 'trunk/hello.txt'], cwd=wc, check=True)
    committed = svn(['commit', '-m', 'Hello from the demo test', wc],
                    'demo', 'demo-password')
    assert 'Committed revision 2.' in committed.stdout, committed.stderr
    timeline = curl(url + '/timeline?changeset=on', 'demo', 'demo-password')
    assert 'Hello from the demo test' in timeline[1]
    assert git(['clone', url + '/git/tools', clone], 'reader',
               'reader-password').returncode == 0
    assert os.path.exists(os.path.join(clone, 'README'))
    git(['commit', '--allow-empty', '-m', 'by reader'], cwd=clone,
        check=True)
    pushed = git(['push', 'origin', 'main'], 'reader', 'reader-password',
                 cwd=clone)
    assert pushed.returncode != 0 and '403' in pushed.stderr
    anonymous = git(['ls-remote', url + '/git/tools'])
    assert anonymous.returncode != 0


def check_app_password(url, proc, work):
    """The app password the demo prints clones and pushes with git; what
    it printed up to there."""
    printed = b''
    while b'(make more in Trac' not in printed:
        chunk = proc.stdout.read1(4096)
        assert chunk, printed
        printed += chunk
    token = re.search(rb'tracapp_[0-9a-f]{8}_[a-z2-7]{32}', printed)
    assert token, printed
    password = secret(token.group(0).decode())
    clone = os.path.join(work, 'clone')
    assert git(['clone', url + '/git/tools', clone], 'demo',
               password).returncode == 0
    git(['commit', '--allow-empty', '-m', 'by app password'], cwd=clone,
        check=True)
    assert git(['push', 'origin', 'main'], 'demo', password,
               cwd=clone).returncode == 0
    return printed
