"""What a login reads of a Trac environment's tables, and the account
lock it writes, with no Trac import: the SQL, and the reader that runs it
on the environment's database.

Every read here depends on stored data alone (no clock, no session
setting), which is what lets `sqlite.SQLiteReader` reuse a connection's
rows while the database says nothing was committed.
"""

import os
import threading

from . import apptokens

#: The session attributes one check reads, and a ``known`` row when the
#: user has an authenticated session (AccountManager locks only those).
ATTRIBUTES = ('password', 'approval', 'email_verification_token',
              'failed_logins_count', 'failed_logins', 'lock_count')
ACCOUNT = """
    SELECT name, value FROM session_attribute
     WHERE sid=%%s AND authenticated=1 AND name IN (%s)
    UNION ALL
    SELECT 'known', '1' FROM session WHERE sid=%%s AND authenticated=1
    """ % ','.join("'%s'" % a for a in ATTRIBUTES)
PERMISSIONS = "SELECT username, action FROM permission"
STORED_PASSWORDS = """
    SELECT value FROM session_attribute
     WHERE authenticated=1 AND name='password' LIMIT 1000"""
SESSION_USER = "SELECT name FROM auth_cookie WHERE cookie=%s"


HOLD_SESSION = """
    SELECT 1 FROM session WHERE sid=%s AND authenticated=1 FOR UPDATE"""
DELETE_ATTRIBUTE = """
    DELETE FROM session_attribute
     WHERE sid=%s AND authenticated=1 AND name=%s"""
INSERT_ATTRIBUTE = """
    INSERT INTO session_attribute (sid, authenticated, name, value)
    VALUES (%s, 1, %s, %s)"""

_QMARK = {sql: sql.replace('%s', '?') for sql in (ACCOUNT, SESSION_USER,
                                                  apptokens.FIND)}


def _sql(reader, sql):
    """`sql` in the reader's placeholder style."""
    return sql if reader.paramstyle == '%s' else _QMARK[sql]


def account(reader, name):
    """A user's session attributes, plus ``known`` when the user has an
    authenticated session, read in one query."""
    return dict(reader.rows(_sql(reader, ACCOUNT), (name, name)))


def permissions(reader):
    """All (subject, action) rows of the permission table."""
    return reader.rows(PERMISSIONS)


def for_login(reader, name, token_id=None, permissions=False):
    """(`account` of a user, `app_token` of `token_id` or None, with
    `permissions` the permission rows or None), read together: one look
    at whether the database changed, one transaction."""
    queries = [(_sql(reader, ACCOUNT), (name, name))]
    if token_id is not None:
        queries.append((_sql(reader, apptokens.FIND), (token_id,)))
    if permissions:
        queries.append((PERMISSIONS, ()))
    found = list(reader.rows_many(queries))
    attrs = dict(found.pop(0))
    token = _token(found.pop(0)) if token_id is not None else None
    return attrs, token, found[0] if permissions else None


def update_account(reader, name, compute):
    """Change a user's session attributes by `compute(attrs)` -> {name:
    text, or None to delete}, given the account as it is inside one
    write transaction that holds the user's session (so that updates of
    one account from any process follow one another). Returns (attrs,
    what compute returned)."""
    def work(run):
        if reader.paramstyle == '%s':
            run(HOLD_SESSION, (name,))
        attrs = dict(run(ACCOUNT, (name, name)))
        changes = compute(attrs)
        for key, value in changes.items():
            run(DELETE_ATTRIBUTE, (name, key))
            if value is not None:
                run(INSERT_ATTRIBUTE, (name, key, value))
        return attrs, changes
    return reader.write(work)


def app_token(reader, token_id):
    """The row of an app password (`apptokens.FIND`) as a dict, or
    None."""
    return _token(reader.rows(_sql(reader, apptokens.FIND), (token_id,)))


def _token(rows):
    names = ('username', 'scope', 'hash', 'expires', 'last_used')
    return {name: rows[0][i] for i, name in enumerate(names)} \
        if rows else None


def stored_passwords(reader):
    """Up to 1000 stored password values."""
    return [row[0] for row in reader.rows(STORED_PASSWORDS)]


def session_user(reader, cookie):
    """The user a Trac auth cookie logs in, or None."""
    rows = reader.rows(_sql(reader, SESSION_USER), (cookie,))
    return rows[0][0] if rows else None


def open_reader(env_path, database, pooled=True, timeout=5.0):
    """A reader of the database of the environment at `env_path`, whose
    ``[trac] database`` is `database`: plain `sqlite3` or `psycopg2`
    connections, never Trac's. `pooled`: keep PostgreSQL connections for
    reuse; `timeout`: seconds to wait for PostgreSQL to connect or
    answer."""
    from .pgread import parse_database_uri
    scheme, args = parse_database_uri(database)
    if scheme == 'sqlite':
        from .sqlite import SQLiteReader
        path = args['path']
        if path == ':memory:':
            raise ValueError('an in-memory SQLite database cannot be read '
                             'from another process')
        if not os.path.isabs(path):
            path = os.path.join(env_path, path)
        return SQLiteReader(path, float(args.get('params', {})
                                        .get('timeout', 10)))
    if scheme == 'postgres':
        from .pgread import PostgresReader
        return PostgresReader(database, connect_timeout=timeout,
                              statement_timeout=timeout,
                              keep=5 if pooled else 0)
    raise ValueError('database %r is not supported (SQLite and PostgreSQL '
                     'are)' % scheme)


_readers = {}
_readers_lock = threading.Lock()


def shared_reader(env_path, database, pooled=True, timeout=5.0):
    """The one reader of this process for an environment's database; a
    reader of a database the environment no longer names is closed."""
    wanted = (database, pooled, timeout)
    with _readers_lock:
        known = _readers.get(env_path)
        if known is not None and known[0] == wanted:
            return known[1]
        reader = open_reader(env_path, database, pooled, timeout)
        _readers[env_path] = (wanted, reader)
    if known is not None:
        known[1].close()
    return reader
