"""An outside review's attacks on the rows an SQLiteReader remembers for
all its connections, the request's `Checked` built once in
check_password and a busy ``PRAGMA data_version`` look. It found that a
backup copied over the file in place could be answered for from rows
(and SQLite's own page cache) of the state before the restore."""

import io
import os
import shutil
import sqlite3
import threading
import time

import pytest

from tests.harness import make_env, public_dir, set_password, trac_env
from tracwsgiauth import policy
from tracwsgiauth.apppasswords import AppPasswords
from tracwsgiauth.modwsgi import for_environment
from tracwsgiauth.repoauth import for_repositories
from tracwsgiauth.sqlite import SQLiteReader

Q = 'SELECT v FROM t WHERE k=?'


def make_db(path, journal_mode='delete', value='1'):
    cnx = sqlite3.connect(path, isolation_level=None,
                          check_same_thread=False)
    cnx.execute('PRAGMA journal_mode=%s' % journal_mode)
    cnx.execute('CREATE TABLE t (k TEXT PRIMARY KEY, v TEXT)')
    cnx.execute("INSERT INTO t VALUES ('a', ?)", (value,))
    return cnx


def counter(path):
    with open(path, 'rb') as f:
        return int.from_bytes(f.read(28)[24:28], 'big')


def value(reader):
    return reader.rows(Q, ('a',))[0][0]


# --- races between threads ---------------------------------------------

class _Paused(SQLiteReader):
    """A reader whose fresh read, on the thread named 'slow', stops after
    its read transaction ended and before it remembers the rows."""

    def __init__(self, *a, **k):
        super().__init__(*a, **k)
        self.read_done = threading.Event()
        self.go_on = threading.Event()

    def _fresh(self, kept, queries):
        found = super()._fresh(kept, queries)
        if threading.current_thread().name == 'slow':
            self.read_done.set()
            assert self.go_on.wait(10)
        return found


@pytest.mark.parametrize('journal_mode', ['delete', 'wal'])
def test_a_slow_thread_remembering_old_rows_after_a_commit(journal_mode):
    """Thread 'slow' reads v=1, a commit makes v=2, another thread reads
    v=2, then 'slow' remembers v=1 (swapping the old holder back): no
    read after the commit is answered v=1."""
    path = os.path.join(public_dir(), 'slow.db')
    writer = make_db(path, journal_mode)
    reader = _Paused(path)
    got = []
    slow = threading.Thread(target=lambda: got.append(value(reader)),
                            name='slow')
    slow.start()
    assert reader.read_done.wait(10)
    writer.execute("UPDATE t SET v='2'")
    assert value(reader) == '2'
    reader.go_on.set()
    slow.join(10)
    assert got == ['1']
    for _ in range(3):
        assert value(reader) == '2'
    # every kept connection, one by one
    kept = list(reader._idle)
    for k in kept:
        reader._idle[:] = [k]
        assert value(reader) == '2'


@pytest.mark.parametrize('journal_mode', ['delete', 'wal'])
def test_many_threads_never_read_below_a_finished_commit(journal_mode):
    """8 threads read while a writer commits v=1,2,3...: a read that
    starts after commit n has returned never answers less than n."""
    path = os.path.join(public_dir(), 'many.db')
    writer = make_db(path, journal_mode, value='0')
    reader = SQLiteReader(path, timeout=10)
    reader.keep = 3         # connections closed and opened too
    committed = [0]
    stop = threading.Event()
    bad, errors = [], []

    def read():
        while not stop.is_set():
            floor = committed[0]
            try:
                got = int(value(reader))
            except Exception as e:      # noqa: BLE001
                errors.append(repr(e))
                continue
            if got < floor:
                bad.append((floor, got))

    threads = [threading.Thread(target=read) for _ in range(8)]
    for t in threads:
        t.start()
    try:
        for n in range(1, 200):
            writer.execute("UPDATE t SET v=?", (str(n),))
            committed[0] = n
            time.sleep(0.003)
    finally:
        stop.set()
        for t in threads:
            t.join(10)
    assert bad == [] and errors == []
    assert value(reader) == '199'


# --- other files, the same counter ------------------------------------

def test_two_files_with_the_same_counter_are_not_mixed():
    """Two environments' databases in one process, both at the same
    change counter; and a file moved into place (a restore by rename)
    whose counter is the very one remembered."""
    parent = public_dir()
    one, two = (os.path.join(parent, n) for n in ('one.db', 'two.db'))
    make_db(one, value='one').close()
    make_db(two, value='two').close()
    assert counter(one) == counter(two)
    first, second = SQLiteReader(one), SQLiteReader(two)
    assert (value(first), value(second)) == ('one', 'two')
    assert (value(first), value(second)) == ('one', 'two')
    spare = os.path.join(parent, 'spare.db')
    make_db(spare, value='spare').close()
    assert counter(spare) == counter(one)
    os.rename(spare, one)
    assert value(first) == 'spare'


def test_a_backup_copied_over_the_file_is_read_again():
    """A backup copied over the live file in place (``cp backup trac.db``,
    ``rsync --inplace``, a filesystem snapshot rolled back: the same
    inode) takes the counter back; one commit later the counter is the
    one the reader remembered rows at, but the database is another one.
    The file's modification time tells them apart (the header alone,
    which is all SQLite compares before it reuses its own cache, does
    not), when the restore comes later than the kernel's timestamp tick
    (a few ms) after the last commit the reader saw."""
    parent = public_dir()
    path = os.path.join(parent, 'live.db')
    writer = make_db(path, value='old-hash')
    writer.close()
    backup = os.path.join(parent, 'backup.db')
    shutil.copyfile(path, backup)                   # nightly backup
    cnx = sqlite3.connect(path, isolation_level=None)
    cnx.execute("UPDATE t SET v='stolen-hash'")     # the change to undo
    cnx.close()
    reader = SQLiteReader(path)
    assert value(reader) == 'stolen-hash'           # remembered at n+1
    time.sleep(0.05)                # an administrator's restore: later
    # an idle Apache child meanwhile: restore, then one more commit
    shutil.copyfile(backup, path)                   # in place, same inode
    cnx = sqlite3.connect(path, isolation_level=None)
    cnx.execute("INSERT INTO t VALUES ('b', 'x')")   # any Trac write
    cnx.close()
    plain = sqlite3.connect(path)
    assert plain.execute(Q, ('a',)).fetchone()[0] == 'old-hash'
    plain.close()
    assert value(reader) == 'old-hash'


def test_sqlite_backup_api_restore_counts():
    """``sqlite3 trac.db '.restore backup.db'`` (the backup API into the
    live file) increments the live file's counter."""
    parent = public_dir()
    path = os.path.join(parent, 'live2.db')
    make_db(path, value='v1').close()
    backup = os.path.join(parent, 'backup2.db')
    shutil.copyfile(path, backup)
    cnx = sqlite3.connect(path, isolation_level=None)
    cnx.execute("UPDATE t SET v='v2'")
    reader = SQLiteReader(path)
    assert value(reader) == 'v2'
    source = sqlite3.connect(backup)
    source.backup(cnx)
    source.close()
    cnx.close()
    assert value(reader) == 'v1'


# --- journal modes, VACUUM, exclusive locking -------------------------

def test_delete_to_wal_to_delete_while_rows_are_remembered():
    path = os.path.join(public_dir(), 'switch.db')
    writer = make_db(path)
    reader = SQLiteReader(path)
    assert value(reader) == '1'
    writer.execute('PRAGMA journal_mode=wal')
    writer.execute("UPDATE t SET v='2'")
    assert value(reader) == '2'
    writer.execute("UPDATE t SET v='3'")
    assert value(reader) == '3'
    # leaving WAL needs every other connection closed (SQLite: an idle
    # connection in WAL mode holds a shared lock): the reader's too
    reader.close()
    assert writer.execute('PRAGMA journal_mode=delete').fetchone()[0] == \
        'delete'
    writer.execute("UPDATE t SET v='4'")
    assert value(reader) == '4'
    writer.execute('PRAGMA journal_mode=wal')
    writer.execute("UPDATE t SET v='5'")
    assert value(reader) == '5'


@pytest.mark.parametrize('journal_mode', ['delete', 'wal'])
def test_vacuum_and_rows_written_by_vacuum(journal_mode):
    path = os.path.join(public_dir(), 'vac.db')
    writer = make_db(path, journal_mode)
    reader = SQLiteReader(path)
    assert value(reader) == '1'
    writer.execute('BEGIN')
    writer.execute("UPDATE t SET v='2'")
    writer.execute('COMMIT')
    writer.execute('VACUUM')
    assert value(reader) == '2'
    writer.execute("DELETE FROM t")
    writer.execute('VACUUM')
    assert reader.rows(Q, ('a',)) == ()


def test_exclusive_locking_mode_counts_only_once_but_locks_readers():
    """In locking_mode=EXCLUSIVE SQLite increments the counter on the
    first commit only; readers cannot read between its commits, so
    nothing is labelled with a counter a later commit keeps."""
    path = os.path.join(public_dir(), 'excl.db')
    writer = make_db(path)
    reader = SQLiteReader(path, timeout=0.2)
    assert value(reader) == '1'
    writer.execute('PRAGMA locking_mode=EXCLUSIVE')
    writer.execute("UPDATE t SET v='2'")
    first = counter(path)
    with pytest.raises(sqlite3.OperationalError, match='locked'):
        value(reader)
    writer.execute("UPDATE t SET v='3'")
    assert counter(path) == first           # counted once
    writer.execute('PRAGMA locking_mode=NORMAL')
    writer.execute('SELECT 1 FROM t').fetchall()    # lets the lock go
    assert value(reader) == '3'
    writer.execute("UPDATE t SET v='4'")
    assert value(reader) == '4'


# --- the memo's bounds --------------------------------------------------

@pytest.mark.parametrize('journal_mode', ['delete', 'wal'])
def test_the_memo_is_bounded(journal_mode):
    path = os.path.join(public_dir(), 'bound.db')
    make_db(path, journal_mode).close()
    reader = SQLiteReader(path)
    barrier = threading.Barrier(8)

    def many(offset):
        barrier.wait()
        for i in range(400):
            assert reader.rows(Q, ('k%d-%d' % (offset, i),)) == ()

    threads = [threading.Thread(target=many, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert len(reader._memo[1]) <= reader.remember
    assert len(reader._idle) <= reader.keep
    assert all(len(k.memo[1]) <= reader.remember for k in reader._idle)


# --- through the entry points, on real Trac environments -------------

def _environ(method='GET', script='/svn/code', path_info='/', port='4000',
             query=''):
    return {'REMOTE_ADDR': '192.0.2.1', 'REMOTE_PORT': port,
            'REQUEST_METHOD': method, 'SCRIPT_NAME': script,
            'PATH_INFO': path_info, 'QUERY_STRING': query,
            'REQUEST_URI': script + path_info + ('?' + query if query
                                                 else ''),
            'wsgi.errors': io.StringIO()}


@pytest.fixture(params=['delete', 'wal'])
def tokens(request, monkeypatch):
    """alice with a password and a commit app password, the environment
    in the given journal mode; Trac's policy process lets alice commit."""
    database = 'sqlite:db/trac.db'
    if request.param == 'wal':
        database += '?journal_mode=WAL'
    path = make_env(public_dir(), 'memo', database=database)
    set_password(path, 'alice', 'alice-pw')
    with trac_env(path) as env:
        token_id, password = AppPasswords(env).create('alice', 'ci',
                                                      'commit')
    monkeypatch.setattr(policy, 'ask', lambda *a, **q: {'allowed': True})
    return path, token_id, password


WRITES = [('DELETE', '/svn/code', '/trunk/file', ''),
          ('POST', '/git/code', '/git-receive-pack', ''),
          ('GET', '/git/code', '/info/refs', 'service=git-receive-pack')]


def _burst(gate, password, method, script, path_info, query, n=6):
    """n logins with their group check at once, each on a thread of its
    own (kept connections of their own in WAL mode)."""
    out = [None] * n
    barrier = threading.Barrier(n)

    def one(i):
        environ = _environ(method, script, path_info, str(5000 + i), query)
        barrier.wait()
        ok = gate.check_password(environ, 'alice', password)
        out[i] = (ok, gate.groups_for_user(environ, 'alice') if ok
                  else None)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    return out


@pytest.mark.parametrize('write', WRITES)
def test_app_password_made_read_only_or_revoked_counts_next_request(
        tokens, write):
    path, token_id, password = tokens
    gate = for_repositories(path)
    allowed = _burst(gate, password, *write)
    assert all(ok is True and groups for ok, groups in allowed), allowed
    with trac_env(path) as env:
        env.db_transaction("UPDATE wsgiauth_app_password SET scope='read' "
                           "WHERE id=%s", (token_id,))
    for ok, groups in _burst(gate, password, *write):
        assert ok is True and groups == []      # the write is refused
    # a read still passes
    assert all(groups for _, groups in
               _burst(gate, password, 'GET', '/svn/code', '/trunk/', ''))
    with trac_env(path) as env:
        AppPasswords(env).revoke(token_id, 'alice')
    assert all(ok is False for ok, _ in
               _burst(gate, password, 'GET', '/svn/code', '/trunk/', ''))


def test_password_lock_and_removal_count_next_request(tokens):
    path, _, _ = tokens
    entry = for_environment(path)

    def logins(password):
        return {entry.check_password(_environ(port=str(6000 + i)),
                                     'alice', password)
                for i in range(6)}

    def burst(password):
        out = []
        threads = [threading.Thread(target=lambda: out.append(
            logins(password))) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(20)
        return set().union(*out)

    assert burst('alice-pw') == {True}
    set_password(path, 'alice', 'new-pw')
    assert burst('alice-pw') == {False}
    assert burst('new-pw') == {True}
    with trac_env(path) as env:
        env.db_transaction("INSERT INTO session_attribute VALUES "
                           "('alice', 1, 'approval', 'revoked')")
    assert burst('new-pw') == {False}
    with trac_env(path) as env:
        env.db_transaction("DELETE FROM session_attribute WHERE sid='alice'")
        env.db_transaction("DELETE FROM session WHERE sid='alice'")
    assert burst('new-pw') == {None}


def test_trac_ini_pointing_the_database_elsewhere():
    """[trac] database changed to a copy whose counter is the same as
    the remembered one, with another password in it (rollback journal:
    a copy of a WAL database would need its -wal file)."""
    path = make_env(public_dir(), 'memo')
    set_password(path, 'alice', 'alice-pw')
    entry = for_environment(path)
    assert entry.check_password(_environ(), 'alice', 'alice-pw') is True
    db = os.path.join(path, 'db')
    shutil.copyfile(os.path.join(db, 'trac.db'), os.path.join(db, 'o.db'))
    set_password(path, 'alice', 'other-pw')          # into trac.db
    shutil.move(os.path.join(db, 'trac.db'), os.path.join(db, 'x.db'))
    shutil.move(os.path.join(db, 'o.db'), os.path.join(db, 'trac.db'))
    shutil.move(os.path.join(db, 'x.db'), os.path.join(db, 'o.db'))
    # trac.db: alice-pw (old counter); o.db: other-pw
    from tests.harness import edit_ini
    edit_ini(path, 'trac', 'database', 'sqlite:db/o.db')
    assert entry.check_password(_environ(port='1'), 'alice',
                                'alice-pw') is False
    assert entry.check_password(_environ(port='2'), 'alice',
                                'other-pw') is True
