import os
import re

import pytest

from tests import harness
from tests.harness import public_dir, make_env
from tracwsgiauth import hashes, tables


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
    from tests.pg import Postgres
    server = Postgres().start()
    yield server
    server.stop()


def pytest_report_header(config):
    import tracwsgiauth
    return 'tracwsgiauth from %s' % os.path.dirname(tracwsgiauth.__file__)


MARKERS = {
    'apache': 'starts a real Apache httpd (or mod_wsgi-express)',
    'postgres': 'starts a throwaway PostgreSQL server (or PgBouncer)',
}

def pytest_configure(config):
    for name, text in MARKERS.items():
        config.addinivalue_line('markers', '%s: %s' % (name, text))


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    """Before -m selects: a test using the `pg` fixture needs PostgreSQL."""
    for item in items:
        if 'pg' in item.fixturenames:
            item.add_marker('postgres')


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    """harness.needs: the test whose setup or call is running now (its
    module fixtures included) must be marked for what it starts."""
    harness.running_marks = lambda: {m.name for m in item.iter_markers()}


#: what a password, a stored hash or an HMAC looks like in a log line
SECRET_SHAPES = [
    r'\$(apr1|1|2[aby]|5|6)\$[./0-9A-Za-z$]{6,}',
    r'\{SHA\}[A-Za-z0-9+/=]{8,}',
    r'(?<![0-9a-f])[0-9a-f]{32}(?![0-9a-f])',
    r'(?<![0-9a-f])[0-9a-f]{64}(?![0-9a-f])',
]


@pytest.fixture(scope='session', autouse=True)
def no_secret_in_any_apache_log():
    """After the whole run: no password given to a test user
    (harness.PASSWORDS), hash or HMAC in any error log of any Apache the
    tests started; then the run's folders under /tmp go (kept with
    TWA_KEEP_TMP=1)."""
    import tests.users  # noqa: F401 -- its passwords, used or not
    yield
    try:
        passwords = sorted(harness.PASSWORDS)
        found = []
        for root in harness.Apache.roots:
            log = harness.read_text(os.path.join(root, 'error.log'))
            for line in log.splitlines():
                if any(p in line for p in passwords) or \
                        any(re.search(shape, line)
                            for shape in SECRET_SHAPES):
                    found.append(line)
        assert not found, found[:5]
    finally:
        if not os.environ.get('TWA_KEEP_TMP'):
            harness.remove_public_dirs()


@pytest.fixture
def counted(monkeypatch):
    """How often logins read the account and compute a hash."""
    counts = {'reads': 0, 'hashes': 0}

    def counting(key, real):
        def call(*args, **kwargs):
            counts[key] += 1
            return real(*args, **kwargs)
        return call
    monkeypatch.setattr(tables, 'for_login',
                        counting('reads', tables.for_login))
    monkeypatch.setattr(hashes, 'verify', counting('hashes', hashes.verify))
    return counts
