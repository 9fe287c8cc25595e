"""Read-only queries on a Trac SQLite database, without Trac's wrappers.

A credential check is one small SELECT, made on every request Apache
authenticates.  Inside an Apache child each request arrives on another
thread with cold CPU caches, and there Trac's connection pool, cursor
wrappers and parameter rewriting cost about twice the query itself.
This runs the same SELECT on plain `sqlite3` connections to the same
file, kept for reuse by whichever thread comes next.  Each statement is
its own read transaction, as with Trac's connections; writers are never
blocked beyond one statement.

Each kept connection also remembers the rows of the queries it ran, for
as long as the database is unchanged.  Before answering from them it
asks SQLite, in a read transaction of its own, whether anything was
committed since (``PRAGMA data_version``: the same file change counter
SQLite checks before it reuses its own page cache).  Any commit by any
connection -- a new password, a lock, a removed user, or any other
write to the database -- makes the next query read the tables again.
"""

import os
import sqlite3
from urllib.parse import quote


class _Kept(object):
    """A connection waiting for reuse, with what it read."""

    __slots__ = ('cnx', 'file', 'version', 'memo')

    def __init__(self, cnx, file):
        self.cnx = cnx
        self.file = file        # (st_dev, st_ino) when it was opened
        self.version = None     # PRAGMA data_version when memo was valid
        self.memo = {}          # (sql, args) -> rows


class SQLiteReader(object):
    """Runs SELECTs (``?`` placeholders) on the database at `path`.

    Before each query the file at `path` is looked at (one stat): a kept
    connection to a file that has since been replaced (a restored backup)
    or removed would go on reading the old one, so it is closed instead.

    At most `keep` connections wait for reuse: each holds a file
    descriptor and its own copy of the schema (about 200 KB), and one
    Apache process may serve many environments with dozens of threads.
    A connection a burst of concurrent checks needed beyond that is
    closed when it is done.  Each remembers the rows of at most
    `remember` distinct queries (the accounts of that many users), and
    forgets them all when the database changes.
    """

    keep = 5
    remember = 256
    paramstyle = '?'

    def __init__(self, path, timeout=10.0):
        # mode=rw: a missing file is an error, never an empty new database
        self.path = path
        self._uri = 'file:%s?mode=rw' % quote(path)
        self._timeout = timeout
        self._idle = []    # of _Kept; list.append and list.pop are
                           # atomic: no lock needed

    def rows(self, sql, args=()):
        """All rows of one query (a tuple), as the database is now."""
        return self.rows_many(((sql, args),))[0]

    def rows_many(self, queries):
        """The rows of each (sql, args) of `queries`, all as the database
        is now: one look at whether it changed for all of them."""
        file = self._identity()
        while True:
            try:
                kept = self._idle.pop()
            except IndexError:
                kept = _Kept(self._connect(), file)
                break
            if kept.file == file:
                break
            kept.cnx.close()    # reads a file no longer at `path`
        try:
            rows = self._read(kept, queries)
        except BaseException:
            kept.cnx.close()    # a connection that failed is never reused
            raise
        if len(self._idle) < self.keep:
            self._idle.append(kept)
        else:
            kept.cnx.close()
        return rows

    def write(self, work):
        """`work(run)` in one write transaction that waits for every
        other writer (``BEGIN IMMEDIATE``), committed when it returns:
        ``run(sql, args)`` -> rows, ``%s`` placeholders. Its result."""
        file = self._identity()
        kept = _Kept(self._connect(), file)
        cnx = kept.cnx
        try:
            cnx.execute('BEGIN IMMEDIATE')
            try:
                result = work(lambda sql, args=(): tuple(cnx.execute(
                    sql.replace('%s', '?'), args).fetchall()))
                cnx.execute('COMMIT')
            except BaseException:
                cnx.execute('ROLLBACK')
                raise
        finally:
            cnx.close()
        return result

    def _read(self, kept, queries):
        cnx = kept.cnx
        version = cnx.execute('PRAGMA data_version').fetchone()[0]
        memo = kept.memo
        if version != kept.version:
            memo.clear()        # something was committed: read again
            kept.version = version
        found = []
        for key in queries:
            rows = memo.get(key)
            if rows is None:
                # a commit after data_version was read only makes the
                # next call read again: data_version will differ
                rows = tuple(cnx.execute(*key).fetchall())
                if len(memo) >= self.remember:
                    memo.clear()
                memo[key] = rows
            found.append(rows)
        return found

    def _identity(self):
        try:
            found = os.stat(self.path)
        except OSError as e:
            raise sqlite3.OperationalError('cannot read the database: %s: %s'
                                           % (e.strerror, self.path)) \
                from None
        return found.st_dev, found.st_ino

    def _connect(self):
        try:
            return sqlite3.connect(self._uri, uri=True, timeout=self._timeout,
                                   isolation_level=None,
                                   check_same_thread=False)
        except sqlite3.Error as e:
            raise sqlite3.OperationalError('%s: %s' % (e, self.path)) \
                from None

    def close(self):
        while self._idle:
            self._idle.pop().cnx.close()
