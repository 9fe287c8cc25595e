"""Does this environment's PostgreSQL session reliably stay in its schema?

Trac sets ``search_path`` once per new connection, a session setting.
Behind a pooler in transaction mode (PgBouncer's ``pool_mode =
transaction``) each transaction may run on another server session, so
that setting sticks to whichever session ran it and the next query may
read another environment's tables.  `diagnose` looks for that: it asks
whether transactions are pooled, whether the schema is pinned for the
login role, whether other Trac schemas share the database, and runs many
short transactions the way Trac does, counting those that were not in the
environment's schema.

Logins through Apache are not at risk any more: their reads pin the
schema for each transaction (`pgread`). Trac's own pages, and writes of
trac-admin, still use Trac's connections, so the check stays.
"""

import threading

from trac.db.api import DatabaseManager

from .pgread import SCHEMA_QUERY, postgres_schema

SAFE_CONFIGURATIONS = """\
Safe configurations (see contrib/pgbouncer/README.rst):
  1. one database per environment, without ?schema= in [trac] database:
     each database gets its own PgBouncer pool;
  2. one login role per environment, its schema pinned for that role:
       ALTER ROLE trac_x IN DATABASE trac SET search_path = x;
     connect as trac_x (keep ?schema=x) and run RECONNECT in PgBouncer's
     console;
  3. PgBouncer in session mode with [wsgiauth] postgres_pooling = false."""


def _raw_connect(args):
    import psycopg2
    from trac.db.postgres_backend import assemble_pg_dsn
    params = args.get('params') or {}
    return psycopg2.connect(assemble_pg_dsn(
        args['path'].lstrip('/'), args.get('user'), args.get('password'),
        params.get('host', args.get('host')), args.get('port')),
        connect_timeout=10)


def _transactions_pooled(args):
    """Whether consecutive transactions of one client connection may run
    on different server sessions (a pooler in transaction mode)."""
    first, second = _raw_connect(args), _raw_connect(args)
    try:
        with first.cursor() as cursor:
            cursor.execute('SELECT pg_backend_pid()')
            pid = cursor.fetchone()[0]
        first.rollback()
        with second.cursor() as cursor:   # keep a transaction open
            cursor.execute('SELECT pg_backend_pid()')
        answer = []

        def again():
            try:
                with first.cursor() as cursor:
                    cursor.execute('SELECT pg_backend_pid()')
                    answer.append(cursor.fetchone()[0])
            except Exception as e:  # reported as pooled: fail safe
                answer.append(e)
        thread = threading.Thread(target=again, daemon=True)
        thread.start()
        thread.join(3)
        waited = thread.is_alive()   # only a pooler makes a client wait
        second.rollback()
        thread.join(10)
        return waited or answer[:1] != [pid]
    finally:
        first.close()
        second.close()


def _pinned_schema(cnx):
    """The first schema of the search_path set for this role and database
    (ALTER ROLE/DATABASE ... SET search_path), or None."""
    with cnx.cursor() as cursor:
        cursor.execute("""
            SELECT s.setdatabase <> 0, s.setrole <> 0, c.config
              FROM pg_db_role_setting s, unnest(s.setconfig) AS c(config)
             WHERE s.setdatabase IN (0, (SELECT oid FROM pg_database
                                         WHERE datname=current_database()))
               AND s.setrole IN (0, (SELECT oid FROM pg_roles
                                     WHERE rolname=current_user))
               AND c.config LIKE 'search\\_path=%'
            """)
        # PostgreSQL's precedence: role in database, role, database
        rows = sorted(cursor.fetchall(), reverse=True,
                      key=lambda row: (row[0] and row[1], row[1], row[0]))
    cnx.rollback()
    if not rows:
        return None
    first = rows[0][2].split('=', 1)[1].split(',')[0].strip()
    return first.strip('"')


def _trac_schemas(cnx):
    with cnx.cursor() as cursor:
        cursor.execute("SELECT DISTINCT table_schema "
                       "FROM information_schema.tables "
                       "WHERE table_name='system'")
        schemas = sorted(row[0] for row in cursor.fetchall())
    cnx.rollback()
    return schemas


def _sample(connector, args, count, seen, errors):
    """`count` short transactions on Trac connections, a new connection
    every ten, like Trac with and without its pooling."""
    cnx = None
    try:
        for i in range(count):
            if i % 10 == 0:
                if cnx is not None:
                    cnx.close()
                cnx = connector.get_connection(**args)
            seen.append(tuple(cnx.execute(SCHEMA_QUERY)[0]))
            cnx.rollback()
    except Exception as e:
        errors.append(e)
    finally:
        if cnx is not None:
            cnx.close()


def _sample_all(connector, args, transactions, threads):
    """What schema each of `transactions` short transactions ran in,
    from `threads` threads at once."""
    seen, errors = [], []
    workers = [threading.Thread(target=_sample, args=(
        connector, args, transactions // threads, seen, errors))
        for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    if errors:
        raise errors[0]
    return seen


def _problem(schema, wrong, pooled, pinned, others):
    """What is unsafe, as a sentence, or None."""
    if wrong:
        return ("Trac's transactions ran with another environment's "
                "search_path: its pages can read and write another "
                "environment's data (logins through Apache pin their "
                "schema per transaction and are not affected)")
    if pooled and pinned not in (None, schema):
        return ("the search_path pinned for this role (%s) is not the "
                "environment's schema" % pinned)
    if pooled and pinned is None and (schema != 'public' or others):
        return ("transactions are pooled but the schema is not pinned: "
                "Trac's per-connection SET search_path does not stick, "
                "so its queries can reach %s" % (
                    'the public schema' if schema != 'public'
                    else 'other environments\' schemas (%s)'
                    % ', '.join(others)))
    return None


def diagnose(env, transactions=200, threads=4):
    """(ok, lines): whether the environment's database connections
    reliably stay in its schema, and what was found."""
    schema = postgres_schema(env.config.get('trac', 'database'))
    if schema is None:
        return True, ['The database is not PostgreSQL: nothing to check.']
    connector, args = DatabaseManager(env).get_connector()
    cnx = _raw_connect(args)
    try:
        pinned = _pinned_schema(cnx)
        others = [s for s in _trac_schemas(cnx) if s != schema]
    finally:
        cnx.close()
    pooled = _transactions_pooled(args)
    seen = _sample_all(connector, args, transactions, threads)
    wrong = [s for s in seen if s[0] != schema]
    lines = [
        "Environment schema: %s" % schema,
        "Transactions pooled across server sessions: %s" % (
            'yes (a pooler in transaction mode)' if pooled else 'no'),
        "search_path pinned for this role/database: %s" % (pinned or 'no'),
        "Other Trac schemas in this database: %s" % (
            ', '.join(others) or 'none'),
        "%d transactions checked, %d not in schema %s%s" % (
            len(seen), len(wrong), schema,
            ' (seen: %s)' % ', '.join(sorted({repr(s[1]) for s in wrong}))
            if wrong else '')]
    problem = _problem(schema, wrong, pooled, pinned, others)
    if problem:
        return False, lines + ['', 'UNSAFE: ' + problem + '.', '',
                               SAFE_CONFIGURATIONS]
    return True, lines + ['', 'OK: every transaction stays in schema %s.'
                          % schema]
