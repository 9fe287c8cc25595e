"""Read-only queries on a Trac PostgreSQL database, with psycopg2 alone
(no Trac: its import, pool and environment lock cost Apache children).

Each query runs in a transaction of its own that first pins the
environment's schema (``SET LOCAL search_path``, ``public`` too) and checks
it, so a pooler handing each transaction another server session (PgBouncer
in transaction mode) cannot make it read another environment's tables.
Connections are asynchronous, so every wait (connecting, a pooler's queue,
a server that accepts and never answers) ends at a deadline of our own.
"""

import os
import select
import time
import urllib.parse

#: What PostgreSQL says a transaction's schema is.
SCHEMA_QUERY = "SELECT current_schema(), current_setting('search_path')"


class SchemaDrift(Exception):
    """The database session is not in the environment's schema (a
    connection pooler shares PostgreSQL sessions between environments)."""


class Unavailable(Exception):
    """The server could not be reached, or did not answer in time."""


class Disconnected(Unavailable):
    """The server closed a connection (it went down or restarted)."""


class _Password(str):
    """A password, hidden from `repr` (as Trac's ``unicode_passwd``)."""

    def __repr__(self):
        return '*******'


def _invalid(scheme):
    # nothing of the string itself: it may hold a password
    return ValueError('invalid database connection string (see Trac\'s '
                      'TracIni#DatabaseConnectionStrings)')


def _location(scheme, rest):
    """(host, path, rest) as Trac's parse_connection_uri splits them."""
    if not rest.startswith('/'):
        if scheme == 'sqlite' and rest:   # relative or :memory:
            return None, rest, rest
        raise _invalid(scheme)
    if not rest.startswith('//'):
        return None, None, rest[1:]
    if rest.startswith('///'):
        return None, None, rest[3:]
    host, _, rest = rest[2:].partition('/')
    return host, None, rest


def _credentials(host):
    """(user, password, host) of ``user:password@host``."""
    if not (host and '@' in host):
        return None, None, host
    user, host = host.split('@', 1)
    password = None
    if ':' in user:
        user, password = user.split(':', 1)
    if user:
        user = urllib.parse.unquote(user)
    if password:
        password = _Password(urllib.parse.unquote(password))
    return user, password, host


def _port(host, scheme):
    if not (host and ':' in host):
        return host, None
    host, port = host.split(':', 1)
    try:
        return host, int(port)     # as Trac: int() with its leniency
    except ValueError:
        raise _invalid(scheme) from None


def _params(path, scheme):
    params = {}
    if '?' in path:
        path, query = path.split('?', 1)
        for param in query.split('&'):
            if '=' not in param:
                raise _invalid(scheme)
            name, value = param.split('=', 1)
            params[name] = urllib.parse.unquote(value)
    return path, params


def parse_database_uri(uri):
    """(scheme, args) exactly as Trac's ``parse_connection_uri`` gives
    them; ValueError for what it refuses."""
    if not uri:
        raise ValueError('the database connection string is empty')
    scheme, colon, rest = uri.partition(':')
    if not colon:
        raise _invalid(scheme)
    host, path, rest = _location(scheme, rest)
    user, password, host = _credentials(host)
    host, port = _port(host, scheme)
    path = path or '/' + rest
    if os.name == 'nt' and len(rest) > 1 and rest[1] == '|':
        path = '%s:%s' % (rest[0], rest[2:])
    path, params = _params(path, scheme)
    args = {'user': user, 'password': password, 'host': host,
            'port': port, 'path': path, 'params': params}
    return scheme, {key: value for key, value in args.items() if value}


def postgres_schema(uri):
    """The schema of a ``postgres://`` database URI (``public`` when none
    is given), or None for other databases."""
    scheme, args = parse_database_uri(uri)
    if scheme != 'postgres':
        return None
    return args.get('params', {}).get('schema') or 'public'


def check_schema(execute, schema):
    """Fail closed unless the transaction that `execute(sql) -> rows`
    runs in reads `schema` (None: not PostgreSQL, nothing to check)."""
    if schema is None:
        return
    current, search_path = execute(SCHEMA_QUERY)[0]
    if current != schema:
        raise SchemaDrift(
            'the database session is in schema %r (search_path %s), '
            'not in this environment\'s schema %r: a connection '
            'pooler (PgBouncer in transaction mode?) is sharing '
            'sessions between environments; run "trac-admin ENV '
            'wsgiauth doctor"' % (current, search_path[:80], schema))


def _dsn(args):
    """Trac's DSN for `args` (``assemble_pg_dsn``, the ``host=`` param
    for a socket folder), plus the client encoding Trac sets."""
    def quote(value):
        return "'%s'" % str(value).replace('\\', r'\\').replace("'", r"\'")
    params = args.get('params', {})
    path = args['path']
    dsn = {'dbname': path[1:] if path.startswith('/') else path,
           'user': args.get('user'), 'password': args.get('password'),
           'host': params.get('host', args.get('host')),
           'port': args.get('port'), 'client_encoding': 'UTF8',
           'application_name': 'tracwsgiauth'}
    return ' '.join('%s=%s' % (name, quote(value))
                    for name, value in dsn.items() if value)


class PostgresReader(object):
    """SELECTs (``%s`` placeholders) on a ``postgres://`` database, each
    in a read-only transaction pinned to the environment's schema.
    Connecting ends within `connect_timeout` s, a transaction within
    `statement_timeout` (server side) + `connect_timeout` (network, pooler
    queue).  At most `keep` connections wait for reuse by any thread; 0:
    a connection per call (behind PgBouncer)."""

    paramstyle = '%s'
    #: rows are never reused: a login reads the permission table only
    #: where a group check always follows (a repository location)
    remembers = False

    def __init__(self, uri, connect_timeout=5.0, statement_timeout=5.0,
                 keep=5):
        scheme, args = parse_database_uri(uri)
        if scheme != 'postgres':
            raise ValueError('not a postgres:// database: %r' % scheme)
        self.schema = args.get('params', {}).get('schema') or 'public'
        self.keep, self.connect_timeout = keep, connect_timeout
        self.statement_timeout = statement_timeout
        self._dsn, self._password = _dsn(args), args.get('password')
        host = args.get('params', {}).get('host', args.get('host'))
        self.where = '%s:%s' % (host or 'localhost', args.get('port', 5432))
        self._begin = ('BEGIN READ ONLY; SET LOCAL search_path TO "%s"; '
                       'SET LOCAL statement_timeout = %d; ' % (
                           self.schema.replace('"', '""'),
                           max(1, int(statement_timeout * 1000))))
        self._begin_write = self._begin.replace('BEGIN READ ONLY;', 'BEGIN;')
        self._idle = []    # list.append and list.pop are atomic: no lock

    def version(self):
        """None: PostgreSQL's commits cannot be told without a query, so
        nothing read is remembered (see `sqlite.SQLiteReader.version`)."""
        return None

    def rows(self, sql, args=()):
        """All rows of one query (a tuple of tuples), as the database is
        now, read in the environment's schema."""
        return self.rows_many(((sql, args),))[0]

    def rows_many(self, queries):
        """The rows of each (sql, args) of `queries`, read in one
        transaction."""
        try:
            cnx = self._idle.pop()
        except IndexError:
            return self._transaction(self._connect(), queries)
        try:
            return self._transaction(cnx, queries)
        except Disconnected:
            self.close()    # the server went away: the others are dead too
            return self._transaction(self._connect(), queries)

    def write(self, work):
        """`work(run)` in one read-write transaction in the environment's
        schema, committed when it returns: ``run(sql, args)`` -> rows.
        Its result."""
        try:
            cnx = self._idle.pop()
        except IndexError:
            cnx = self._connect()

        def commit(run):
            try:
                result = work(run)
            except BaseException:
                run('ROLLBACK')
                raise
            run('COMMIT')
            return result
        return self._in_transaction(cnx, self._begin_write, commit)

    def _transaction(self, cnx, queries):
        def read(run):
            rows = [run(sql, args) for sql, args in queries]
            run('ROLLBACK')
            return rows
        return self._in_transaction(cnx, self._begin, read)

    def _in_transaction(self, cnx, begin, body):
        """`body(run)` in a transaction on `cnx` that `begin` opens
        (pinned to the schema); its result. The connection is kept for
        reuse unless it failed."""
        limit = self.statement_timeout + self.connect_timeout
        deadline = time.monotonic() + limit
        try:
            with cnx.cursor() as cursor:
                def run(query, args=()):
                    self._run(cursor, query, args, deadline, limit)
                    if cursor.description is None:
                        return ()
                    return tuple(cursor.fetchall())
                check_schema(lambda query: run(begin + query), self.schema)
                result = body(run)
        except BaseException:
            cnx.close()     # a connection that failed is never reused
            raise
        if len(self._idle) < self.keep:
            self._idle.append(cnx)
        else:
            cnx.close()
        return result

    def _run(self, cursor, sql, args, deadline, limit):
        import psycopg2
        try:
            cursor.execute(sql, args or None)
            self._wait(cursor.connection, deadline, 'answer', limit)
        except psycopg2.Error as e:
            if not cursor.connection.closed:
                raise   # an SQL error, or statement_timeout: not the link
            raise Disconnected('PostgreSQL at %s: %s' % (
                self.where, self._first_line(e))) from None

    def _connect(self):
        import psycopg2
        deadline = time.monotonic() + self.connect_timeout
        cnx = None
        try:
            cnx = psycopg2.connect(self._dsn, async_=True)
            self._wait(cnx, deadline, 'complete a connection',
                       self.connect_timeout)
        except psycopg2.Error as e:
            if cnx is not None:
                cnx.close()
            raise Unavailable('cannot connect to PostgreSQL at %s: %s' % (
                self.where, self._first_line(e))) from None
        return cnx

    def _wait(self, cnx, deadline, what, limit):
        """Poll an asynchronous connection until it is ready; close it and
        raise Unavailable at `deadline`."""
        from psycopg2.extensions import POLL_OK, POLL_READ
        while True:
            state = cnx.poll()
            if state == POLL_OK:
                return
            poller = select.poll()   # not select.select: any fd number
            poller.register(cnx.fileno(), select.POLLIN
                            if state == POLL_READ else select.POLLOUT)
            left = deadline - time.monotonic()
            if left <= 0 or not poller.poll(left * 1000 + 1):
                cnx.close()
                raise Unavailable('PostgreSQL at %s did not %s within %g s'
                                  % (self.where, what, limit))

    def _first_line(self, error):
        """The first line of a driver's error, never the password."""
        line = (str(error).strip().splitlines() or [''])[0].strip()
        if self._password:
            line = line.replace(self._password, '*******')
        return line or type(error).__name__

    def close(self):
        """Close the connections waiting for reuse."""
        while True:
            try:
                self._idle.pop().close()
            except IndexError:
                return
