"""README's first command: the demo, served by mod_wsgi-express."""

import os
import subprocess

import pytest

from tests.harness import (CURL, check_login, curl, free_port, private_dir,
                           public_dir, require, started, stop_group)

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
        assert world_writable(demo) == []
    finally:
        stop_group(proc, timeout=20)
    out = proc.stdout.read().decode()
    assert 'user:        demo' in out
