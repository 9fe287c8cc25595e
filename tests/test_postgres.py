"""Environments on a real PostgreSQL server behind a real Apache httpd:
auth, Digest and groups, the connections left open with Trac's pooling on
and off, a server restart in the middle, a failing query, schema drift."""

import os

import pytest

from tests.harness import (ONE_CHILD, Apache, add_user, auth_location,
                           basic_get, curl, deploy, docs_folder, hammer,
                           open_up, public_dir, set_password, trac_env,
                           wait_for)
from tests.pg import Postgres, make_pg_env
from tracwsgiauth.accounts import AuthStore
from tracwsgiauth.modwsgi import rules_for
from tracwsgiauth.pgread import SchemaDrift

pytestmark = pytest.mark.postgres

TRAC_POOL_SIZE = 10   # Trac's default TRAC_DB_POOL_SIZE, per process


def rules(store):
    """The rules check_password decides with, from trac.ini as the
    environment holds it now (with what a test set in memory)."""
    return rules_for(store.env.path, store.config).login


def auth_apache(scripts):
    """Apache protecting a static file at /e<i>/ (Basic) and /d<i>/
    (Digest) with the auth script of environment i."""
    docs = docs_folder(public_dir('twa-docs-'))
    body = ONE_CHILD + 'AliasMatch "^/[ed][0-9]+/(.*)" "%s/$1"\n' % docs
    for i, script in enumerate(scripts):
        body += auth_location('/e%d' % i, script, 'developers')
        body += auth_location('/d%d' % i, script, 'developers', 'Digest')
    return Apache(body).start()


@pytest.fixture(scope='module')
def envs(pg):
    """Three environments: a database of its own (public schema), and two
    schemas of one shared database. Every one has an `alice` with its
    own password, in developers, and hashes usable for Digest."""
    parent = public_dir()
    ini = '\n[wsgiauth]\nhash_scheme = htdigest\ncache_size = 0\n'
    paths = [make_pg_env(pg, parent, 'pub', 'twa_pub', extra_ini=ini),
             make_pg_env(pg, parent, 'sa', 'twa_shared', 'sa', ini),
             make_pg_env(pg, parent, 'sb', 'twa_shared', 'sb', ini)]
    for path in paths:
        add_user(path, 'alice', 'pw-' + os.path.basename(path), 'developers')
        add_user(path, 'bob-' + os.path.basename(path), 'bob-pw')
    pooled = [deploy(p, target=os.path.join(
        parent, 'pooled-' + os.path.basename(p))).script for p in paths]
    unpooled = [deploy(p, '--no-pooling', target=os.path.join(
        parent, 'unpooled-' + os.path.basename(p))).script for p in paths]
    open_up(parent)
    return paths, {'pooled': pooled, 'non-pooled': unpooled}


def app_connections(pg):
    return pg.connections('twa_pub') + pg.connections('twa_shared')


@pytest.mark.apache
@pytest.mark.parametrize('mode', ['pooled', 'non-pooled'])
def test_burst_over_three_environments_and_connections_left(pg, envs, mode):
    paths, scripts = envs
    names = [os.path.basename(p) for p in paths]
    apache = auth_apache(scripts[mode])
    try:
        cases, expected = [], []
        for _ in range(20):
            for i, name in enumerate(names):
                other = names[(i + 1) % 3]
                for user, password, status in [
                        ('alice', 'pw-' + name, 200),
                        ('alice', 'pw-' + other, 401),   # another env's
                        ('bob-' + name, 'bob-pw', 401),  # not in developers
                        ('bob-' + other, 'bob-pw', 401),
                        ('nobody', 'x', 401)]:
                    cases.append(('/e%d/f.txt' % i, user, password))
                    expected.append(status)
        statuses = hammer(apache.port, cases, concurrency=8)
        wrong = [(case, got, want) for case, got, want
                 in zip(cases, statuses, expected, strict=True)
                 if got != want]
        assert not wrong, wrong[:10]

        for i, name in enumerate(names):
            assert curl('%s/d%d/f.txt' % (apache.url, i), 'alice',
                        'pw-' + name, digest=True)[0] == 200
            assert curl('%s/d%d/f.txt' % (apache.url, i), 'alice',
                        'wrong', digest=True)[0] == 401

        if mode == 'non-pooled':
            assert wait_for(lambda: app_connections(pg) == 0)
        else:
            held = app_connections(pg)
            # the child keeps at most 5 per environment; each Trac process
            # (one per environment, answering group checks) as many, plus
            # what Trac's own pool holds there
            assert 1 <= held <= 3 * (5 + 5 + TRAC_POOL_SIZE)
        log = apache.error_log()
        assert 'tracwsgiauth:' not in log and 'Traceback' not in log
    finally:
        apache.stop()
    assert wait_for(lambda: app_connections(pg) == 0)


def _alice_behind_apache(path, *options):
    """alice (alice-pw, developers) of the environment `path` behind
    auth_apache, deployed with `options`; she is let in."""
    add_user(path, 'alice', 'alice-pw', 'developers')
    script = deploy(path, *options).script
    open_up(os.path.dirname(path))
    apache = auth_apache([script])
    try:
        assert basic_get(apache.port, '/e0/f.txt', 'alice', 'alice-pw')[0] \
            == 200
    except BaseException:
        apache.stop()
        raise
    return apache


@pytest.fixture(scope='module')
def own_server():
    """A PostgreSQL of its own, to be stopped and broken."""
    server = Postgres().start()
    yield server
    server.stop()


@pytest.mark.apache
@pytest.mark.parametrize('mode', ['pooled', 'non-pooled'])
def test_server_restart_fails_closed_then_recovers(own_server, mode):
    pg = own_server
    parent = public_dir()
    path = make_pg_env(pg, parent, 'proj', 'restart_' + mode.replace('-', ''),
                       'proj', '\n[wsgiauth]\nhash_scheme = sha512\n')
    apache = _alice_behind_apache(
        path, *(['--no-pooling'] if mode == 'non-pooled' else []))
    try:
        pg.stop()
        during = [basic_get(apache.port, '/e0/f.txt', 'alice',
                            'alice-pw')[0] for _ in range(6)]
        # refused while the server is down: never let in, never a 500
        assert during == [401] * 6
        log = apache.error_log()
        lines = [line for line in log.splitlines()
                 if 'tracwsgiauth: login refused for environment %s: '
                 % path in line]
        assert lines and all('Unavailable: cannot connect to PostgreSQL at '
                             '127.0.0.1:%d' % pg.port in line and
                             'Connection refused' in line for line in lines)
        assert 'Traceback' not in log and 'alice-pw' not in log
        pg.start()
        assert wait_for(lambda: basic_get(
            apache.port, '/e0/f.txt', 'alice', 'alice-pw')[0] == 200)
        assert basic_get(apache.port, '/e0/f.txt', 'alice', 'wrong')[0] \
            == 401
        limit = 0 if mode == 'non-pooled' else 5 + 5 + TRAC_POOL_SIZE
        assert wait_for(lambda: pg.connections() <= limit)
    finally:
        apache.stop()


@pytest.mark.apache
def test_failing_query_fails_closed_and_leaks_nothing(own_server):
    pg = own_server
    parent = public_dir()
    path = make_pg_env(pg, parent, 'proj', 'failing', 'proj')
    apache = _alice_behind_apache(path, '--no-pooling')
    try:
        pg.sql('ALTER TABLE proj.session_attribute RENAME TO moved',
               database='failing')
        assert [basic_get(apache.port, '/e0/f.txt', 'alice', 'alice-pw')[0]
                for _ in range(3)] == [401] * 3
        assert 'UndefinedTable: relation "session_attribute" does not exist' \
            in apache.error_log()
        # a closed connection's backend leaves pg_stat_activity a moment
        # after the client closed it: wait for it, bounded
        assert wait_for(lambda: pg.connections('failing') == 0)
        pg.sql('ALTER TABLE proj.moved RENAME TO session_attribute',
               database='failing')
        assert basic_get(apache.port, '/e0/f.txt', 'alice', 'alice-pw')[0] \
            == 200
        assert wait_for(lambda: pg.connections('failing') == 0)
    finally:
        apache.stop()


def test_a_moved_pooled_session_never_answers_for_another_schema(pg):
    """A pooled Trac session whose search_path moved to another schema
    (what a pooler in transaction mode does): logins still read their own
    schema (each read pins it for its transaction); a write through
    Trac's connection is refused, never made in the other schema."""
    parent = public_dir()
    mine = make_pg_env(pg, parent, 'mine', 'twa_drift', 'mine')
    theirs = make_pg_env(pg, parent, 'theirs', 'twa_drift', 'theirs')
    for path in (mine, theirs):
        set_password(path, 'alice', 'pw-' + os.path.basename(path))
    with trac_env(mine) as env:
        store = AuthStore(env)
        assert rules(store).authenticate('alice', 'pw-mine') is True
        with env.db_transaction as db:   # leave the pooled session moved
            db("SET search_path TO theirs")
        assert rules(store).authenticate('alice', 'pw-theirs') is False
        assert rules(store).authenticate('alice', 'pw-mine') is True
        assert rules(store).realm_hash('alice', 'trac') is None
        assert 'authenticated' in store.groups('alice')
        with pytest.raises(SchemaDrift, match="schema 'theirs'"):
            store.set_password('alice', 'x')
    with trac_env(theirs) as env:
        assert rules(AuthStore(env)).authenticate('alice', 'pw-theirs') is True
