"""README's first command: the demo, served by mod_wsgi-express."""

import os
import re
import signal
import socket
import subprocess
import tempfile
import time

from harness import CURL, curl, free_port, public_dir, require

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


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
                            env=env, cwd=tempfile.mkdtemp(),
                            stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.time() + 240
        while time.time() < deadline:
            assert proc.poll() is None, proc.stdout.read().decode()
            try:
                socket.create_connection(('127.0.0.1', port), 1).close()
                break
            except OSError:
                time.sleep(0.5)
        url = 'http://127.0.0.1:%d' % port
        status, body = curl(url + '/login', 'demo', 'demo-password',
                            extra=['-L', '-b', ''])
        assert status == 200, body[:500]
        assert re.search(r'logged in as\s*(<[^>]*>\s*)*demo', body)
        assert curl(url + '/login', 'demo', 'wrong')[0] == 401
        assert curl(url + '/login')[0] == 401
        assert curl(url + '/chrome/common/css/trac.css', 'demo',
                    'demo-password')[0] == 200
        assert world_writable(demo) == []
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
    out = proc.stdout.read().decode()
    assert 'user:        demo' in out
