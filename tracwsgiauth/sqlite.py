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

import os
import sqlite3
from urllib.parse import quote


class SQLiteReader(object):
    """Runs SELECTs (``?`` placeholders) on the database at `path`.

    Before each query the file at `path` is looked at (one stat): a kept
    connection to a file that has since been replaced (a restored backup)
    or removed would go on reading the old one, so it is closed instead.

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
        self._idle = []    # (connection, file identity); list.append and
                           # list.pop are atomic: no lock needed

    def rows(self, sql, args=()):
        """All rows of one query, read in one transaction."""
        file = self._identity()
        while True:
            try:
                cnx, of = self._idle.pop()
            except IndexError:
                cnx, of = self._connect(), file
                break
            if of == file:
                break
            cnx.close()    # reads a file no longer at `path`
        try:
            rows = cnx.execute(sql, args).fetchall()
        except BaseException:
            cnx.close()    # a connection that failed is never reused
            raise
        if len(self._idle) < self.keep:
            self._idle.append((cnx, of))
        else:
            cnx.close()
        return rows

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
            self._idle.pop()[0].close()
