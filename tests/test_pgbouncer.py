"""Environments behind a real PgBouncer: the unsafe shared pool never gives
one environment another's answers (it fails closed) and is reported by
`wsgiauth doctor` and `deploy`; the two safe recipes of contrib/pgbouncer
give only right answers with bounded server connections, and serve Trac's
own pages through Apache."""

import json
import os
import re
import subprocess
import sys

import pytest
from trac.env import Environment

from tests.harness import (Apache, curl, deploy, edit_ini, include, open_up,
                           public_dir, set_password, trac_admin)
from tests.pg import Peak, PgBouncer, make_pg_env, recipe
from tracwsgiauth.pgread import SCHEMA_QUERY

pytestmark = pytest.mark.postgres

WORKER = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                      'pg_worker.py')
INI = '\n[wsgiauth]\nhash_scheme = sha\ncache_size = 0\n'


def set_up_users(path, name, developer):
    """`alice` with a password of this environment; in developers only
    where `developer`. Returns her password."""
    password = 'pw-%s%s' % (name, '-dev' if developer else '')
    set_password(path, 'alice', password,
                 *(['developers'] if developer else []))
    return password


def run_workers(envs, mode, threads=4, count=100):
    """One process per environment, `threads` threads each, `count`
    rounds of three checks per thread; the summed tally."""
    procs = [subprocess.Popen(
        [sys.executable, WORKER, path, str(threads), str(count), mode,
         mine, ','.join(p for _, p in envs if p != mine)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for path, mine in envs]
    total = {'right': 0, 'refused': 0, 'wrong': 0}
    for proc in procs:
        out, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err[-3000:]
        for key, value in json.loads(out).items():
            total[key] += value
    return total


# --- the unsafe configuration: one shared pool in transaction mode

@pytest.fixture(scope='module')
def unsafe(pg):
    pg.create_database('twa_unsafe')
    bouncer = PgBouncer(pg, databases={'twa_unsafe': 'dbname=twa_unsafe'},
                        pool_size=4).start()
    parent = public_dir()
    envs = []
    for name, schema in [('upub', None), ('ua', 'ua'), ('ub', 'ub')]:
        # created straight on the server, then moved behind PgBouncer
        path = make_pg_env(pg, parent, name, 'twa_unsafe', schema, INI)
        envs.append((path, set_up_users(path, name, name == 'ua')))
        edit_ini(path, 'trac', 'database', bouncer.url('twa_unsafe', schema))
    open_up(parent)
    yield bouncer, envs
    bouncer.stop()


def test_unsafe_pool_really_moves_sessions_between_schemas(unsafe):
    """The setting under test does leak: Trac's own connections, used
    the way Trac uses them, see other schemas."""
    _, envs = unsafe
    from trac.db.api import DatabaseManager
    opened, cnxs = [], []
    try:
        for _ in range(3):   # interleaved, as concurrent requests come
            for path, _ in envs:
                env = Environment(path)
                opened.append(env)
                connector, args = DatabaseManager(env).get_connector()
                cnxs.append((os.path.basename(path),
                             connector.get_connection(**args)))
        seen = set()
        for _ in range(10):
            for name, cnx in cnxs:
                seen.add((name, cnx.execute(SCHEMA_QUERY)[0][0]))
                cnx.rollback()
    finally:
        for _, cnx in cnxs:
            cnx.close()
        for env in opened:
            env.shutdown()
    drifted = {(name, schema) for name, schema in seen
               if schema != {'upub': 'public'}.get(name, name)}
    assert drifted, seen


@pytest.mark.parametrize('mode', ['non-pooled', 'pooled'])
def test_unsafe_pool_never_answers_for_another_environment(unsafe, mode):
    _, envs = unsafe
    tally = run_workers(envs, mode)
    assert tally['wrong'] == 0, tally
    assert tally['right'] + tally['refused'] == 3 * 4 * 100 * 3
    print('unsafe pool, %s: %s' % (mode, tally))


def test_doctor_and_deploy_call_the_shared_pool_unsafe(unsafe):
    _, envs = unsafe
    for path, _ in envs:
        proc = trac_admin(path, 'wsgiauth', 'doctor', check=False)
        assert proc.returncode != 0, proc.stdout
        assert 'UNSAFE' in proc.stdout
        assert 'Transactions pooled across server sessions: yes' \
            in proc.stdout
        assert 'one login role per environment' in proc.stdout
    target, out, _ = deploy(envs[1][0], '--no-pooling')
    assert "WARNING: this environment can read ANOTHER environment's " \
        "users" in out
    with open(os.path.join(target, 'apache', 'trac.conf')) as f:
        conf = f.read()
    assert '# WARNING: when deployed' in conf and 'UNSAFE' in conf


# --- the safe recipes of contrib/pgbouncer

@pytest.fixture(scope='module')
def per_database(pg):
    """database-per-environment.ini: trac_proj1, trac_proj2."""
    pg.sql("CREATE ROLE trac LOGIN PASSWORD 'trac-secret'")
    bouncer = PgBouncer(pg, recipe('database-per-environment.ini'),
                        users={'trac': 'trac-secret'}).start()
    parent = public_dir()
    envs = []
    for name in ('proj1', 'proj2'):
        pg.sql('CREATE DATABASE trac_%s OWNER trac' % name)
        path = make_pg_env(pg, parent, name, 'trac_' + name, None, INI,
                           url=bouncer.url('trac_' + name, user='trac',
                                           password='trac-secret'))
        envs.append((path, set_up_users(path, name, name == 'proj1')))
    open_up(parent)
    yield bouncer, envs
    bouncer.stop()


@pytest.fixture(scope='module')
def per_role(pg):
    """role-per-environment.ini and .sql: schemas rp1, rp2 of `trac`."""
    pg.create_database('trac')
    bouncer = PgBouncer(pg, recipe('role-per-environment.ini'),
                        users={'trac_rp1': 'rp1-secret',
                               'trac_rp2': 'rp2-secret'}).start()
    parent = public_dir()
    envs = []
    for name in ('rp1', 'rp2'):
        path = make_pg_env(pg, parent, name, 'trac', None, INI,
                           url=bouncer.url(*pg.role_per_environment(name)))
        envs.append((path, set_up_users(path, name, name == 'rp1')))
    open_up(parent)
    yield bouncer, envs
    bouncer.stop()


@pytest.mark.parametrize('setup, per_pool, databases', [
    ('per_database', 4, ['trac_proj1', 'trac_proj2']),
    ('per_role', 4, ['trac'])])
def test_safe_recipe_right_answers_bounded_connections(request, pg, setup,
                                                      per_pool, databases):
    _, envs = request.getfixturevalue(setup)
    with Peak(pg, databases) as peak:
        tally = run_workers(envs, 'non-pooled')
    assert tally == {'right': 2 * 4 * 100 * 3, 'refused': 0, 'wrong': 0}
    # two environments, each its own pool of at most default_pool_size
    assert 1 <= peak.most <= 2 * per_pool
    print('%s: %s, peak server connections %d' % (setup, tally, peak.most))
    for path, _ in envs:
        proc = trac_admin(path, 'wsgiauth', 'doctor', check=False)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert 'OK: every transaction stays in schema' in proc.stdout


def test_role_recipe_pins_the_schema_and_grants_no_other(pg, per_role):
    _, envs = per_role
    proc = trac_admin(envs[0][0], 'wsgiauth', 'doctor')
    assert 'search_path pinned for this role/database: rp1' in proc.stdout
    cnx = pg.connect('trac', user='trac_rp1')
    try:
        with cnx.cursor() as cursor:
            with pytest.raises(Exception, match='permission denied'):
                cursor.execute('SELECT * FROM rp2.session_attribute')
    finally:
        cnx.close()


@pytest.mark.apache
def test_trac_pages_behind_pgbouncer_through_apache(per_role):
    _, envs = per_role
    targets = []
    for path, _ in envs:
        name = os.path.basename(path)
        page = os.path.join(os.path.dirname(path), 'marker-' + name)
        with open(page, 'w') as f:
            f.write('This is marker-%s.\n' % name)
        trac_admin(path, 'wiki', 'import', 'Marker', page)
        target, out, _ = deploy(path, '--no-pooling')
        assert 'WARNING' not in out
        targets.append(target)
    open_up(os.path.dirname(envs[0][0]))
    apache = Apache(include(*targets)).start()
    try:
        for (path, password), other in zip(envs, ('rp2', 'rp1'),
                                           strict=True):
            name = os.path.basename(path)
            status, body = curl('%s/%s/wiki/Marker' % (apache.url, name))
            assert status == 200
            assert 'marker-' + name in body and 'marker-' + other not in body
            status, body = curl('%s/%s/login' % (apache.url, name), 'alice',
                                password, extra=['-L', '-b', ''])
            assert status == 200
            assert re.search(r'logged in as\s*(<[^>]*>\s*)*alice', body)
            assert curl('%s/%s/login' % (apache.url, other), 'alice',
                        password)[0] == 401
        assert 'tracwsgiauth:' not in apache.error_log()
    finally:
        apache.stop()


def test_admin_commands_never_answer_for_another_environment(unsafe):
    _, envs = unsafe
    for i, (path, mine) in enumerate(envs):
        other = envs[(i + 1) % len(envs)][1]
        for password, may_accept in ((other, False), (mine, True)):
            for _ in range(2):
                proc = trac_admin(path, 'wsgiauth', 'check', 'alice',
                                  stdin=password + '\n', check=False)
                if 'Accepted as alice' in proc.stdout:
                    assert may_accept and proc.returncode == 0
                else:
                    # refused: a wrong password, or the drift seen
                    assert proc.returncode != 0
                    assert 'Refused' in proc.stderr + proc.stdout or \
                        'schema' in proc.stderr + proc.stdout, proc
