import os

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
