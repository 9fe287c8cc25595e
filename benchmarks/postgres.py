"""Many Trac environments on one small PostgreSQL server, behind one Apache,
under concurrent authenticated load, in each connection mode side by side:
connections kept for reuse (the default: at most 5 per environment and
Apache process), none kept (deploy --no-pooling), and none kept behind
PgBouncer in its two safe configurations (contrib/pgbouncer).

    python -m benchmarks.postgres [N] [REQUESTS] [OUT.md]

(from the checkout's top folder).

N environments (default 50) on a throwaway PostgreSQL with
max_connections = 20; REQUESTS (default 4000) Basic-auth requests at
concurrency 32 (more clients than the server takes) spread over the
environments, one in five with another environment's password (which
must be refused). Writes a markdown table to OUT.md (default
benchmarks/results-postgres.md) and prints it.
"""

import datetime
import os
import platform
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor

from benchmarks import HERE, publish
from tests.harness import (Apache, auth_location, auth_script, basic_get,
                           docs_folder, edit_ini, make_env, open_up,
                           public_dir, set_password)
from tests.pg import Peak, PgBouncer, Postgres, recipe

MAX_CONNECTIONS = 20
CONCURRENCY = 32


def create_envs(pg, parent, n, layout):
    """N environments: a database each ('database'), or a schema and a
    login role each in database trac ('role'). Each has alice with
    password pw-<i>. Returns (path, url options) pairs."""
    ini = '\n[wsgiauth]\nhash_scheme = sha\n'
    envs = []
    if layout == 'role':
        pg.create_database('trac')
    for i in range(n):
        if layout == 'database':
            database = 'trac_b%d' % i
            pg.sql('CREATE DATABASE %s OWNER trac' % database)
            path = make_env(parent, 'd%d' % i, ini, pg.url(
                database, user='trac', password='trac-secret'))
            where = (database, None, 'trac', 'trac-secret')
        else:
            where = pg.role_per_environment('r%d' % i)
            path = make_env(parent, 'r%d' % i, ini,
                            pg.url(*where[:3], password=where[3]))
        set_password(path, 'alice', 'pw-%d' % i)
        envs.append((path, where))
    return envs


def point_at(envs, url_for):
    for path, where in envs:
        edit_ini(path, 'trac', 'database', url_for(*where))


def load(apache, n_envs, requests):
    cases = []
    for k in range(requests):
        i = k % n_envs
        if k % 5 == 4:   # another environment's password: must be refused
            cases.append((i, 'pw-%d' % ((i + 1) % n_envs), 401))
        else:
            cases.append((i, 'pw-%d' % i, 200))

    def one(case):
        i, password, want = case
        t = time.perf_counter()
        try:
            status = basic_get(apache.port, '/e%d/f.txt' % i, 'alice',
                               password)[0]
        except Exception:
            status = 0
        return status, want, time.perf_counter() - t

    # warm up: every environment once
    with ThreadPoolExecutor(CONCURRENCY) as pool:
        list(pool.map(one, [(i, 'pw-%d' % i, 200) for i in range(n_envs)]))
        start = time.perf_counter()
        results = list(pool.map(one, cases))
        elapsed = time.perf_counter() - start
    wrong = sum(1 for status, want, _ in results
                if status == 200 and want != 200)
    errors = sum(1 for status, want, _ in results
                 if want == 200 and status != 200)
    times = sorted(t for _, _, t in results)
    return {'rate': len(results) / elapsed, 'errors': errors,
            'wrong': wrong, 'median': statistics.median(times) * 1e3,
            'p99': times[int(len(times) * .99) - 1] * 1e3}


def serve(parent, envs, pooled, tag):
    docs = docs_folder(parent, 'docs-' + tag)
    body = 'AliasMatch "^/e[0-9]+/(.*)" "%s/$1"\n' % docs
    for i, (path, _) in enumerate(envs):
        script = auth_script(os.path.join(parent, '%s-%d.wsgi' % (tag, i)),
                             path, pooled)
        body += auth_location('/e%d' % i, script)
    open_up(parent)
    return Apache(body).start()


def main(n=50, requests=4000, out=None):
    out = out or os.path.join(HERE, 'results-postgres.md')
    pg = Postgres(max_connections=MAX_CONNECTIONS).start()
    bouncers = []
    rows = []
    try:
        pg.sql("CREATE ROLE trac LOGIN PASSWORD 'trac-secret'")
        parent = public_dir('twa-pgbench-')
        print('creating %d + %d environments...' % (n, n), file=sys.stderr)
        by_database = create_envs(pg, parent, n, 'database')
        by_role = create_envs(pg, parent, n, 'role')
        # below max_connections - superuser_reserved_connections (3), with
        # room for backends still exiting after PgBouncer closed them
        budget = MAX_CONNECTIONS - 8

        def run(label, envs, pooled, tag):
            apache = serve(parent, envs, pooled, tag)
            try:
                with Peak(pg, full=MAX_CONNECTIONS) as peak:
                    result = load(apache, len(envs), requests)
                refusals = apache.error_log().count('tracwsgiauth:')
            finally:
                apache.stop()
            result.update(label=label, peak=peak.most, logged=refusals)
            rows.append(result)
            print(result, file=sys.stderr)
            time.sleep(1)

        direct = lambda db, schema, user, pw: pg.url(db, schema, user,  # noqa
                                                     password=pw)
        point_at(by_database, direct)
        run('connections kept (default), direct', by_database, True,
            'pooled')
        run('no pooling, direct', by_database, False, 'direct')

        def behind_bouncer(label, envs, tag, ini, limit, **options):
            """`envs` without pooling behind PgBouncer's recipe `ini`,
            at most `budget` server connections by its `limit`."""
            bouncer = PgBouncer(pg, recipe(ini), settings={
                'default_pool_size': 1, 'server_idle_timeout': 1,
                'server_login_retry': 1, limit: budget}, **options).start()
            bouncers.append(bouncer)
            point_at(envs, bouncer.url)
            run(label, envs, False, tag)
            bouncer.stop()

        behind_bouncer(
            'no pooling, PgBouncer, a database per environment',
            by_database, 'bydb', 'database-per-environment.ini',
            'max_user_connections',
            databases={'trac_b%d' % i: 'dbname=trac_b%d' % i
                       for i in range(n)},
            users={'trac': 'trac-secret'})
        behind_bouncer(
            'no pooling, PgBouncer, a login role per environment',
            by_role, 'byrole', 'role-per-environment.ini',
            'max_db_connections',
            users={'trac_r%d' % i: 'r%d-secret' % i for i in range(n)})
    finally:
        for bouncer in bouncers:
            bouncer.stop()
        pg.stop()

    lines = [
        '# Many environments on one PostgreSQL', '',
        '%s, Python %s, %s, %d cores; PostgreSQL with max_connections = %d; '
        'Apache event MPM (default process/thread settings), mod_wsgi '
        'embedded auth; %d environments, %d Basic-auth requests at '
        'concurrency %d (one in five with another environment\'s password, '
        'which must be refused), a new HTTP connection each; PgBouncer '
        'capped at %d server connections (default_pool_size = 1, '
        'server_idle_timeout = 1, server_login_retry = 1).' % (
            datetime.date.today(), platform.python_version(),
            platform.machine(), os.cpu_count(), MAX_CONNECTIONS, n,
            requests, CONCURRENCY, MAX_CONNECTIONS - 8), '',
        '| mode | req/s | errors | wrong | peak server connections | '
        'median ms | p99 ms | refusal lines logged |',
        '|---|---:|---:|---:|---:|---:|---:|---:|']
    for r in rows:
        lines.append('| %s | %.0f | %d | %d | %d | %.1f | %.1f | %d |' % (
            r['label'], r['rate'], r['errors'], r['wrong'], r['peak'],
            r['median'], r['p99'], r['logged']))
    lines += ['', 'errors = right passwords not let in (the server out of '
              'connections: refused, one line in the error log each); '
              'wrong = another environment\'s password let in (must be 0).']
    publish(out, lines)


if __name__ == '__main__':
    import tempfile
    tempfile.tempdir = '/tmp'
    main(*(int(a) if a.isdigit() else a for a in sys.argv[1:]))
