"""Read-only queries on a Trac SQLite database, without Trac's wrappers.

A credential check is one small SELECT, made on every request Apache
authenticates.  Inside an Apache child each request arrives on another
thread with cold CPU caches, and there Trac's connection pool, cursor
wrappers and parameter rewriting cost about twice the query itself.
This runs the same SELECT on plain `sqlite3` connections to the same
file, kept for reuse by whichever thread comes next.  The queries of one
check are one read transaction; writers are never blocked beyond it.

The reader also remembers the rows of the queries it ran, for as long
as the database is unchanged.  Before answering from them it reads the
file change counter of the database header (offset 24), which
every commit in SQLite's rollback-journal modes increments, and which
SQLite itself checks before it reuses its own page cache, with the file's
modification time (`change_counter`): one ``pread`` and one ``fstat``
instead of a read transaction.  Rows read afresh are read in one read
transaction and remembered under the counter read again while it holds
SQLite's lock (the counter seen without it may belong to a commit that
a hot journal undoes).  A database in WAL mode (header byte 18
is 2) does not count commits there; SQLite is asked in a read
transaction of its own instead (``PRAGMA data_version``), and each
connection remembers for itself.  Any commit by any connection -- a new
password, a lock, a removed user, or any other write to the database --
makes the next query read the tables again.  While a writer holds
SQLite's lock, that read waits in steps of 0.1 ms and more (`_fresh`).
"""

import os
import sqlite3
import threading
import time
from urllib.parse import quote

#: (st_dev, st_ino) -> a read-only descriptor of that database file, for
#: its header: one per file for the life of the process, never closed,
#: because closing any descriptor of a file drops every POSIX lock this
#: process holds on it (SQLite's, of other connections) -- see
#: sqlite.org/howtocorrupt.html, 2.2.
_headers = {}
_headers_lock = threading.Lock()


def _header_fd(path, file):
    """The descriptor of `_headers` for the database at `path`, which
    `file` identifies; None when the file there is no longer `file`."""
    fd = _headers.get(file)
    if fd is not None:
        return fd
    with _headers_lock:
        fd = _headers.get(file)
        if fd is None:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            found = os.fstat(fd)
            if (found.st_dev, found.st_ino) != file:
                # replaced meanwhile: keep it, under its own identity
                _headers.setdefault((found.st_dev, found.st_ino), fd)
                return None
            _headers[file] = fd
    return fd


def change_counter(path, file, stat=None):
    """('counter', ...) of the file `file` at `path` when its header
    counts commits (rollback journal), else None (WAL, an empty file, a
    file replaced meanwhile): the 16 bytes SQLite compares before it
    reuses its page cache (the change counter, the page count, the
    freelist), and the file's modification time and size. A backup
    copied over the file in place takes the counter back; one commit
    later it may read as before the restore, but the time does not.
    `stat`: of `file`, taken just before, else it is taken now."""
    fd = _header_fd(path, file)
    if fd is None:
        return None
    head = os.pread(fd, 40, 0)
    if len(head) < 40 or head[18] != 1:
        return None
    found = stat or os.fstat(fd)
    return 'counter', file, head[24:40], found.st_mtime_ns, found.st_size


def _busy(error):
    """Whether an sqlite3 error is SQLITE_BUSY: another connection holds
    the lock it needed."""
    code = getattr(error, 'sqlite_errorcode', None)     # Python >= 3.11
    if code is not None:
        return code & 0xff == 5
    return str(error).startswith('database is locked')


#: Rows remembered: (version of the database they were read at,
#: {(sql, args): rows}); replaced, never changed, for another version.
NOTHING = (None, {})


def _stale_cache(before, now):
    """Whether SQLite may have answered a read at version `now` from
    pages it cached at `before`, the connection's previous read: the
    header reads the same (all SQLite compares), but the file was
    written since (a backup copied over it in place, then as many
    commits as it undid)."""
    return before is not None and before[0] == 'counter' and \
        before[:3] == now[:3] and before != now


class _Kept(object):
    """A connection waiting for reuse, with what it read in WAL mode."""

    __slots__ = ('cnx', 'file', 'memo', 'read_at')

    def __init__(self, cnx, file):
        self.cnx = cnx
        self.file = file        # (st_dev, st_ino) when it was opened
        self.memo = NOTHING
        self.read_at = None     # the version of its last read


class SQLiteReader(object):
    """Runs SELECTs (``?`` placeholders) on the database at `path`.

    Before each query the file at `path` is looked at (one stat): a kept
    connection to a file that has since been replaced (a restored backup)
    or removed would go on reading the old one, so it is closed instead.

    At most `keep` connections wait for reuse: each holds a file
    descriptor and its own copy of the schema (about 200 KB), and one
    Apache process may serve many environments with dozens of threads.
    A connection a burst of concurrent checks needed beyond that is
    closed when it is done.  The rows of at most `remember` distinct
    queries (the accounts of that many users) are remembered, and all
    forgotten when the database changes: by the reader for all its
    connections (the header's counter is the same for each), or in WAL
    mode by each connection (its ``data_version`` is its own).
    """

    keep = 5
    remember = 256
    paramstyle = '?'
    #: rows of an unchanged database cost no query: a login reads the
    #: permission table along for the group check that may follow
    remembers = True

    def __init__(self, path, timeout=10.0):
        # mode=rw: a missing file is an error, never an empty new database
        self.path = path
        self._uri = 'file:%s?mode=rw' % quote(path)
        self._timeout = timeout
        self._idle = []    # of _Kept; list.append and list.pop are
                           # atomic: no lock needed
        self._memo = NOTHING    # for every connection (see `_remember`)

    def rows(self, sql, args=()):
        """All rows of one query (a tuple), as the database is now."""
        return self.rows_many(((sql, args),))[0]

    def rows_many(self, queries):
        """The rows of each (sql, args) of `queries`, all as the database
        is now: one look at whether it changed for all of them."""
        found = self._stat()
        file = found.st_dev, found.st_ino
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
            rows = self._read(kept, queries, found)
        except BaseException:
            kept.cnx.close()    # a connection that failed is never reused
            raise
        if len(self._idle) < self.keep:
            self._idle.append(kept)
        else:
            kept.cnx.close()
        return rows

    def version(self):
        """What changes with every commit to the database, read without
        SQLite's lock, for what is remembered of its rows (`outcomes`):
        the header's version (`change_counter`), or None where it does
        not count commits (WAL mode). A caller takes it before and after
        it reads the rows, and keeps what it made of them only when the
        two are the same: nothing was committed in between."""
        found = self._stat()
        try:
            return change_counter(self.path, (found.st_dev, found.st_ino),
                                  found)
        except OSError:
            return None     # the read that follows says what is wrong

    def write(self, work):
        """`work(run)` in one write transaction that waits for every
        other writer (``BEGIN IMMEDIATE``), committed when it returns:
        ``run(sql, args)`` -> rows, ``%s`` placeholders. Its result."""
        file = self._identity()
        kept = _Kept(self._connect(self._timeout), file)
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

    def _version(self, kept, stat=None):
        """What changes with every commit: the header's counter, or in
        WAL mode the connection's ``PRAGMA data_version``."""
        return change_counter(self.path, kept.file, stat) or (
            'data_version',
            kept.cnx.execute('PRAGMA data_version').fetchone()[0])

    def _read(self, kept, queries, stat=None):
        # a look without SQLite's locks: it may show a commit still being
        # written, or one a hot journal will undo, so it only tells
        # whether the remembered rows may still be used (`stat`: the
        # file's, which rows_many has just taken to tell it is the same)
        try:
            version = self._version(kept, stat)
        except sqlite3.OperationalError as e:
            if not _busy(e):
                raise
            version = ('busy',)     # WAL, locked: read afresh, which waits
        seen, memo = self._memo if version[0] == 'counter' else kept.memo
        if version == seen:
            try:
                return [memo[key] for key in queries]
            except KeyError:
                pass            # a query not read since
        found, version = self._fresh(kept, queries)
        if _stale_cache(kept.read_at, version):
            kept.cnx.close()        # its cache is of another file's state
            kept.cnx = self._connect()
            found, version = self._fresh(kept, queries)
        kept.read_at = version
        self._remember(kept, version,
                       {key: found[i] for i, key in enumerate(queries)})
        return found

    def _remember(self, kept, version, rows):
        """Keep `rows`, read at `version`, for reads at that version: for
        every connection under a header counter, else for `kept`'s. A
        version's rows are only ever added to; another version gets a
        holder of its own, swapped in whole, so that a thread that read
        an older version meanwhile never labels its rows with a newer
        one (it may swap the older one back: the next read reads
        again)."""
        shared = version[0] == 'counter'
        seen, memo = self._memo if shared else kept.memo
        if version == seen and len(memo) + len(rows) <= self.remember:
            memo.update(rows)
        elif shared:
            self._memo = (version, rows)
        else:
            kept.memo = (version, rows)

    def _fresh(self, kept, queries):
        """(rows of `queries`, the version they are of), read in one read
        transaction; while a writer holds SQLite's lock, tried again
        after a pause that grows from 0.1 ms, until `timeout` has
        passed. (SQLite's own busy handler would sleep 1 ms at once,
        and a commit shows its new counter before it lets readers in.)"""
        deadline, pause = None, 0.0001
        while True:
            try:
                return self._transaction(kept, queries)
            except sqlite3.OperationalError as e:
                if not _busy(e):
                    raise
                now = time.monotonic()
                if deadline is None:
                    deadline = now + self._timeout
                if now >= deadline:
                    raise
                time.sleep(min(pause, deadline - now))
                pause = min(pause * 1.2, 0.01)

    def _transaction(self, kept, queries):
        # the version seen while the read transaction holds SQLite's
        # lock is of a committed state
        cnx = kept.cnx
        cnx.execute('BEGIN')
        try:
            found = [tuple(cnx.execute(*key).fetchall()) for key in queries]
            return found, self._version(kept)
        finally:
            if cnx.in_transaction:
                cnx.execute('ROLLBACK')     # a read: nothing to keep

    def _stat(self):
        try:
            return os.stat(self.path)
        except OSError as e:
            raise sqlite3.OperationalError('cannot read the database: %s: %s'
                                           % (e.strerror, self.path)) \
                from None

    def _identity(self):
        found = self._stat()
        return found.st_dev, found.st_ino

    def _connect(self, timeout=0):
        """A connection; SQLite's busy handler waits up to `timeout`
        seconds (reads wait in `_fresh` instead)."""
        try:
            return sqlite3.connect(self._uri, uri=True, timeout=timeout,
                                   isolation_level=None,
                                   check_same_thread=False)
        except sqlite3.Error as e:
            raise sqlite3.OperationalError('%s: %s' % (e, self.path)) \
                from None

    def close(self):
        while self._idle:
            self._idle.pop().cnx.close()
