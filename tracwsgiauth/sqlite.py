"""Read-only queries on a Trac SQLite database, without Trac's wrappers.

A credential check is one small SELECT, made on every request Apache
authenticates.  Inside an Apache child each request arrives on another
thread with cold CPU caches, and there Trac's connection pool, cursor
wrappers and parameter rewriting cost about twice the query itself.
This runs the same SELECT on plain `sqlite3` connections to the same
file, kept for reuse by whichever thread comes next.  Each statement is
its own read transaction, as with Trac's connections; writers are never
blocked beyond one statement.
"""

import sqlite3
from urllib.parse import quote


class SQLiteReader(object):
    """Runs SELECTs (``?`` placeholders) on the database at `path`.

    At most `keep` connections wait for reuse: each holds a file
    descriptor and its own copy of the schema (about 200 KB), and one
    Apache process may serve many environments with dozens of threads.
    A connection a burst of concurrent checks needed beyond that is
    closed when it is done.
    """

    keep = 5

    def __init__(self, path, timeout=10.0):
        # mode=rw: a missing file is an error, never an empty new database
        self.path = path
        self._uri = 'file:%s?mode=rw' % quote(path)
        self._timeout = timeout
        self._idle = []    # list.append/pop are atomic: no lock needed

    def rows(self, sql, args=()):
        """All rows of one query, read in one transaction."""
        try:
            cnx = self._idle.pop()
        except IndexError:
            cnx = self._connect()
        try:
            rows = cnx.execute(sql, args).fetchall()
        except BaseException:
            cnx.close()    # a connection that failed is never reused
            raise
        if len(self._idle) < self.keep:
            self._idle.append(cnx)
        else:
            cnx.close()
        return rows

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
            self._idle.pop().close()
