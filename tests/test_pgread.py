"""tracwsgiauth.pgread against a real PostgreSQL and a real PgBouncer:
Trac's URI parsing, the same answers as Trac's own queries, no answer
from another environment behind a shared transaction-mode pool, bounded
waits on a server that never answers, a restart, no connection kept with
keep=0, and no Trac module imported."""

import os
import socket
import subprocess
import sys
import threading
import time

import psycopg2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from trac.config import ConfigurationError
from trac.db.api import parse_connection_uri
from trac.env import Environment
from trac.perm import PermissionSystem

from tests.harness import SilentServer, public_dir, trac_env, wait_for
from tests.pg import PgBouncer, Postgres, make_pg_env
from tracwsgiauth.pgread import (PostgresReader, SchemaDrift, Unavailable,
                                 check_schema, parse_database_uri,
                                 postgres_schema)

INI = '\n[wsgiauth]\nhash_scheme = sha\ncache_size = 0\n'
PASSWORD_QUERY = ("SELECT value FROM session_attribute WHERE sid=%s "
                  "AND authenticated=1 AND name='password'")
#: (name, schema) of three environments sharing the database twa_read
SHARED = [('rpub', None), ('ra', 'ra'), ('rb', 'rb')]


# --- parsing: exactly Trac's parse_connection_uri

def trac_parse(uri):
    try:
        return parse_connection_uri(uri)
    except ConfigurationError:
        return 'refused'


def our_parse(uri):
    try:
        return parse_database_uri(uri)
    except ValueError:
        return 'refused'


URIS = [
    'sqlite:db/trac.db', 'sqlite:/srv/trac/db/trac.db', 'sqlite::memory:',
    'sqlite:db/trac.db?timeout=10000', 'sqlite:///abs/trac.db',
    'sqlite:', 'sqlite', '', ':', 'mysql://u:p@h:3306/trac?read_default_'
    'group=x&init_command=SET%20x', 'postgres://u@h/db',
    'postgres://u:p%40ss%3Aw@h:5432/db?schema=s', 'postgres://h/db',
    'postgres://u:p@h:/db', 'postgres://u:p@h:x/db', 'postgres://u:p@h: 5/d',
    'postgres://trac@/db?host=/var/run/postgresql',
    'postgres://trac@/db?host=%2Fvar%2Frun%2Fpg&schema=a%20b',
    'postgres://%C3%A9t%C3%A9:%25@h/db', 'postgres://:pw@h/db',
    'postgres://u:@h/db', 'postgres://u@h/db?schema', 'postgres://u@h/db?',
    'postgres://u@h/db?a=1&&b=2', 'postgres:///db', 'postgres:/db',
    'postgres:db', 'postgres://h', 'postgres://u@h:5432', 'postgres://a@b@c/d',
    'postgres://u:p:q@h/d?x=a=b', 'postgres://u@h/d/e?schema=s?t',
    'mysql://h:0/db', 'x:/c|/path', 'postgres://[::1]:5432/db',
]


@pytest.mark.parametrize('uri', URIS)
def test_parse_as_trac(uri):
    assert our_parse(uri) == trac_parse(uri)


PART = st.text(st.sampled_from('ab:@/?&=%|+ 3_-C9\u00e9\u0663'), max_size=8)


@settings(max_examples=500, deadline=None)
@given(st.sampled_from(['sqlite:', 'postgres:', 'postgres://', 'mysql://',
                        'sqlite:///', 'x:/', 'x', '']),
       PART, PART, PART, PART)
def test_parse_as_trac_generated(start, a, b, c, d):
    uri = start + a + b + c + d
    assert our_parse(uri) == trac_parse(uri)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=40))
def test_parse_as_trac_any_text(uri):
    assert our_parse(uri) == trac_parse(uri)


@pytest.mark.parametrize('uri', [u for u in URIS if u.startswith(
    'postgres://') and trac_parse(u) != 'refused'] + [
    "postgres://o'b\\x:p'w@h:1/d'b?host=/s'k"])
def test_dsn_as_trac(uri):
    """Trac's connection string, then only our additions."""
    from trac.db.postgres_backend import assemble_pg_dsn
    from tracwsgiauth.pgread import _dsn
    _, args = parse_database_uri(uri)
    path = args['path']
    trac = assemble_pg_dsn(path[1:] if path.startswith('/') else path,
                           args.get('user'), args.get('password'),
                           args.get('params', {}).get('host',
                                                      args.get('host')),
                           args.get('port'))
    assert _dsn(args) == (trac + " client_encoding='UTF8' "
                          "application_name='tracwsgiauth'").lstrip()


def test_password_hidden_and_schema():
    uri = 'postgres://u:s3cret@h/db?schema=x'
    assert 's3cret' not in repr(parse_database_uri(uri))
    assert 's3cret' not in str(pytest.raises(
        ValueError, parse_database_uri, 'postgres://u:s3cret@h:x/db').value)
    assert postgres_schema(uri) == 'x'
    assert postgres_schema('postgres://u@h/db') == 'public'
    assert postgres_schema('sqlite:db/trac.db') is None


def test_check_schema_fails_closed():
    check_schema(lambda sql: [('sa', 'sa')], 'sa')
    check_schema(None, None)   # not PostgreSQL: nothing asked
    with pytest.raises(SchemaDrift, match="schema 'sb'.*schema 'sa'"):
        check_schema(lambda sql: [('sb', '"$user", sb')], 'sa')


def test_no_trac_module_imported():
    out = subprocess.run(
        [sys.executable, '-c', 'import sys, tracwsgiauth.pgread\n'
         'print(sorted(m for m in sys.modules if m.split(".")[0] in '
         '("trac", "psycopg2")))'],
        capture_output=True, text=True, check=True).stdout
    assert out.strip() == '[]'


# --- real environments on PostgreSQL

def set_up(path, name):
    """alice, with a stored password of this environment, in developers;
    written through Trac."""
    stored = '{SHA}hash-of-' + name
    with trac_env(path) as env:
        with env.db_transaction as db:
            db("INSERT INTO session (sid, authenticated, last_visit) "
               "VALUES ('alice', 1, 0)")
            db("INSERT INTO session_attribute (sid, authenticated, name, "
               "value) VALUES ('alice', 1, 'password', %s)", (stored,))
        PermissionSystem(env).grant_permission('alice', 'developers')
    return stored


@pytest.fixture(scope='module')
def envs(pg):
    """name -> (path, URI, alice's stored hash): a public-schema
    environment with a database of its own, and SHARED."""
    parent, found = public_dir(), {}
    for name, database, schema in [('own', 'twa_read_own', None)] + [
            (name, 'twa_read', schema) for name, schema in SHARED]:
        path = make_pg_env(pg, parent, name, database, schema, INI)
        found[name] = (path, pg.url(database, schema), set_up(path, name))
    return found


def test_same_rows_as_trac(envs):
    queries = [(PASSWORD_QUERY, ('alice',)),
               ("SELECT username, action FROM permission "
                "ORDER BY username, action", ()),
               ("SELECT name, value FROM system WHERE name LIKE 'data%%' "
                "ORDER BY name", ()),
               ("SELECT sid, name FROM session_attribute ORDER BY sid", ())]
    for path, uri, _ in envs.values():
        reader = PostgresReader(uri)
        env = Environment(path)
        try:
            for sql, args in queries:
                trac = [tuple(row) for row in env.db_query(sql, args)]
                assert trac and list(reader.rows(sql, args)) == trac, sql
        finally:
            env.shutdown()
            reader.close()
    assert len({stored for _, _, stored in envs.values()}) == 4


def test_unix_socket_folder(pg, envs):
    sock = os.path.join(pg.dir, 'sock')
    reader = PostgresReader('postgres://postgres@:%d/twa_read?schema=ra&host='
                            % pg.port + sock.replace('/', '%2F'))
    assert reader.rows(PASSWORD_QUERY, ('alice',)) == ((envs['ra'][2],),)
    reader.close()


def test_reads_only_and_a_missing_schema_fails_closed(pg, envs):
    reader = PostgresReader(envs['ra'][1])
    for sql in ('CREATE TABLE t (a int)', 'DELETE FROM session_attribute'):
        with pytest.raises(psycopg2.errors.ReadOnlySqlTransaction):
            reader.rows(sql)
    assert reader.rows(PASSWORD_QUERY, ('alice',)) == ((envs['ra'][2],),)
    missing = PostgresReader(pg.url('twa_read', 'nosuch'))
    with pytest.raises(SchemaDrift, match="schema 'nosuch'"):
        missing.rows('SELECT 1')


def test_statement_timeout(envs):
    reader = PostgresReader(envs['own'][1], statement_timeout=0.2)
    started = time.monotonic()
    with pytest.raises(psycopg2.errors.QueryCanceled):
        reader.rows('SELECT pg_sleep(5)')
    assert time.monotonic() - started < 1.5
    assert reader.rows('SELECT 1') == ((1,),)


def backends(pg, database):
    return pg.sql("SELECT count(*) FROM pg_stat_activity WHERE datname=%s "
                  "AND application_name='tracwsgiauth'", (database,))[0][0]


def settles(probe, want, timeout=5):
    return wait_for(lambda: probe() == want, timeout, 0.05)


@pytest.mark.parametrize('keep', [0, 2])
def test_connections_kept(pg, keep):
    database = 'twa_read_keep%d' % keep
    pg.create_database(database)
    reader = PostgresReader(pg.url(database), keep=keep)
    pids = {reader.rows('SELECT pg_backend_pid()')[0][0] for _ in range(5)}
    assert len(pids) == (5 if keep == 0 else 1)
    assert settles(lambda: backends(pg, database), min(keep, 1))
    reader.close()
    assert settles(lambda: backends(pg, database), 0)


# --- waits that must end

@pytest.fixture
def silent_port():
    """A port that accepts connections and never answers."""
    server = SilentServer()
    yield server.port, server.held
    server.close()


@pytest.mark.parametrize('timeout', [0.3, 1.0])
def test_a_server_that_never_answers(silent_port, timeout):
    port, held = silent_port
    reader = PostgresReader('postgres://bob:s3cret@127.0.0.1:%d/db' % port,
                            connect_timeout=timeout)
    started = time.monotonic()
    with pytest.raises(Unavailable) as caught:
        reader.rows('SELECT 1')
    took = time.monotonic() - started
    assert timeout <= took < timeout + 1
    assert held, 'the connection was not even accepted'
    message = str(caught.value)
    assert '127.0.0.1:%d' % port in message and '%g s' % timeout in message
    assert 's3cret' not in message
    print('never answers, connect_timeout %g: failed after %.3f s'
          % (timeout, took))


def test_a_silent_server_stalls_no_other_reader(silent_port, envs):
    port, _ = silent_port
    silent = PostgresReader('postgres://u@127.0.0.1:%d/db' % port,
                            connect_timeout=2)
    thread = threading.Thread(target=pytest.raises, args=(
        Unavailable, silent.rows, 'SELECT 1'))
    thread.start()
    reader = PostgresReader(envs['ra'][1])
    started = time.monotonic()
    assert reader.rows(PASSWORD_QUERY, ('alice',)) == ((envs['ra'][2],),)
    assert time.monotonic() - started < 0.5 and thread.is_alive()
    thread.join()
    reader.close()


def test_nothing_listening():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    reader = PostgresReader('postgres://u:s3cret@127.0.0.1:%d/db' % port)
    with pytest.raises(Unavailable, match='127.0.0.1:%d' % port) as caught:
        reader.rows('SELECT 1')
    assert 's3cret' not in str(caught.value)


@pytest.mark.postgres
def test_server_restart():
    server = Postgres().start()
    try:
        reader = PostgresReader(server.url('postgres'), keep=5)
        assert reader.rows('SELECT 1') == ((1,),)
        server.stop()
        server.start()      # the kept connection died: one new one
        assert reader.rows('SELECT 1') == ((1,),)
        server.stop()
        with pytest.raises(Unavailable, match='127.0.0.1:%d' % server.port):
            reader.rows('SELECT 1')
        server.start()
        assert reader.rows('SELECT 1') == ((1,),)
        reader.close()
    finally:
        server.stop()


# --- a transaction-mode PgBouncer pool shared by three environments

@pytest.fixture(scope='module')
def bouncer(pg, envs):
    server = PgBouncer(pg, databases={'twa_read': 'dbname=twa_read'},
                       pool_size=4).start()
    yield server
    server.stop()


def test_the_shared_pool_does_move_sessions(bouncer):
    """Control: a session-level search_path (as Trac sets it) leaks."""
    schemas = ['public', 'ra', 'rb'] * 2
    cnxs = [psycopg2.connect(bouncer.url('twa_read').replace(
        'postgres://', 'postgresql://')) for _ in schemas]
    seen = set()
    try:
        for schema, cnx in zip(schemas, cnxs, strict=True):
            with cnx.cursor() as cursor:
                cursor.execute('SET search_path TO %s', (schema,))
            cnx.commit()
        for _ in range(5):
            for schema, cnx in zip(schemas, cnxs, strict=True):
                with cnx.cursor() as cursor:
                    cursor.execute('SELECT current_schema()')
                    seen.add((schema, cursor.fetchone()[0]))
                cnx.rollback()
    finally:
        for cnx in cnxs:
            cnx.close()
    assert {(mine, got) for mine, got in seen if mine != got}, seen


@pytest.mark.parametrize('keep', [5, 0])
def test_shared_pool_never_answers_for_another(envs, bouncer, keep):
    readers = {name: PostgresReader(bouncer.url('twa_read', schema),
                                    keep=keep)
               for name, schema in SHARED}
    tally = {'right': 0, 'wrong': 0, 'drift': 0}

    def work(name, count=250):
        mine = ((envs[name][2],),)
        for _ in range(count):
            try:
                right = readers[name].rows(PASSWORD_QUERY, ('alice',)) == mine
                tally['right' if right else 'wrong'] += 1
            except SchemaDrift:
                tally['drift'] += 1
    threads = [threading.Thread(target=work, args=(name,))
               for name, _ in SHARED for _ in range(4)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    took = time.monotonic() - started
    for reader in readers.values():
        reader.close()
    assert tally == {'right': 3 * 4 * 250, 'wrong': 0, 'drift': 0}
    print('shared pool, keep=%d: %s in %.2f s' % (keep, tally, took))


def test_a_full_pool_queue_ends_at_the_deadline(envs, bouncer):
    """PgBouncer queues a transaction while its pool is busy; the reader
    gives up at statement_timeout + connect_timeout, then works again."""
    holders = [psycopg2.connect(bouncer.url('twa_read').replace(
        'postgres://', 'postgresql://')) for _ in range(4)]
    reader = PostgresReader(bouncer.url('twa_read', 'ra'),
                            connect_timeout=0.5, statement_timeout=0.5)
    try:
        for cnx in holders:     # four open transactions: the pool is full
            cnx.cursor().execute('SELECT 1')
        started = time.monotonic()
        with pytest.raises(Unavailable, match='did not answer within 1 s'):
            reader.rows(PASSWORD_QUERY, ('alice',))
        assert time.monotonic() - started < 2
    finally:
        for cnx in holders:
            cnx.close()
    assert reader.rows(PASSWORD_QUERY, ('alice',)) == ((envs['ra'][2],),)
    reader.close()
