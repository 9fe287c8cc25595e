import os
import re

import pytest

from harness import public_dir, make_env


@pytest.fixture
def env_path():
    """A fresh real Trac environment (SQLite) with the plugin enabled."""
    return make_env(public_dir())


@pytest.fixture
def env(env_path):
    from trac.env import Environment
    env = Environment(env_path)
    yield env
    env.shutdown()


@pytest.fixture(scope='session')
def pg():
    """One throwaway PostgreSQL cluster for the whole run."""
    from pg import Postgres
    server = Postgres().start()
    yield server
    server.stop()


def pytest_report_header(config):
    import tracwsgiauth
    return 'tracwsgiauth from %s' % os.path.dirname(tracwsgiauth.__file__)


#: what a password, a stored hash or an HMAC looks like in a log line
SECRET_SHAPES = [
    r'\$(apr1|1|2[aby]|5|6)\$[./0-9A-Za-z$]{6,}',
    r'\{SHA\}[A-Za-z0-9+/=]{8,}',
    r'(?<![0-9a-f])[0-9a-f]{32}(?![0-9a-f])',
    r'(?<![0-9a-f])[0-9a-f]{64}(?![0-9a-f])',
]


@pytest.fixture(scope='session', autouse=True)
def no_secret_in_any_apache_log():
    """After the whole run: no password, hash or HMAC in any error log of
    any Apache the tests started."""
    yield
    from harness import Apache
    from users import USERS
    passwords = [p for p, _ in USERS.values()] + [
        'alice-pw', 'bob-pw', 'new-pw', 'pw-pub', 'pw-sa', 'pw-sb',
        'trac-secret', 'rp1-secret', 'rp2-secret', 'secret-gone']
    found = []
    for root in Apache.roots:
        try:
            with open(os.path.join(root, 'error.log'), encoding='utf-8',
                      errors='replace') as f:
                log = f.read()
        except FileNotFoundError:
            continue
        for line in log.splitlines():
            if any(p in line for p in passwords) or \
                    any(re.search(shape, line) for shape in SECRET_SHAPES):
                found.append(line)
    assert not found, found[:5]
