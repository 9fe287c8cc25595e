"""SQLiteReader on real SQLite files, next to Trac's own connections."""

import os
import sqlite3
import struct
import threading

import pytest
from trac.env import Environment

from tests.harness import make_env, public_dir
from tracwsgiauth import tables
from tracwsgiauth.accounts import AuthStore
from tracwsgiauth.sqlite import SQLiteReader, _Kept
from tests.users import populate


def make_db(path):
    cnx = sqlite3.connect(path)
    cnx.execute('CREATE TABLE t (k TEXT PRIMARY KEY, v TEXT)')
    cnx.execute("INSERT INTO t VALUES ('a', '1')")
    cnx.commit()
    return cnx


@pytest.mark.parametrize('name', ['plain.db', 'sp ace?x=1#f%20.db',
                                  'jürgen.db'])
def test_reads_files_with_any_name(name):
    path = os.path.join(public_dir(), name)
    make_db(path).close()
    assert SQLiteReader(path).rows('SELECT v FROM t WHERE k=?',
                                   ('a',)) == (('1',),)


def test_missing_file_is_an_error_and_is_not_created():
    path = os.path.join(public_dir(), 'missing.db')
    with pytest.raises(sqlite3.OperationalError):
        SQLiteReader(path).rows('SELECT 1')
    assert not os.path.exists(path)


@pytest.mark.parametrize('journal_mode', ['delete', 'wal'])
def test_a_commit_by_another_connection_counts_on_the_next_read(
        journal_mode):
    path = os.path.join(public_dir(), 'w.db')
    writer = make_db(path)
    writer.execute('PRAGMA journal_mode=%s' % journal_mode)
    reader = SQLiteReader(path)
    assert reader.rows('SELECT v FROM t') == (('1',),)
    writer.execute("UPDATE t SET v='2'")
    writer.commit()
    assert reader.rows('SELECT v FROM t') == (('2',),)


def test_a_long_writer_times_out_and_the_connection_is_dropped():
    path = os.path.join(public_dir(), 'l.db')
    writer = make_db(path)
    reader = SQLiteReader(path, timeout=0)
    assert reader.rows('SELECT v FROM t') == (('1',),)
    assert len(reader._idle) == 1
    writer.execute('BEGIN EXCLUSIVE')
    # rows already read are the last committed ones: no wait for them
    assert reader.rows('SELECT v FROM t') == (('1',),)
    with pytest.raises(sqlite3.OperationalError, match='locked'):
        reader.rows('SELECT v, v FROM t')
    assert reader._idle == []
    writer.rollback()
    assert reader.rows('SELECT v FROM t') == (('1',),)


def test_threads_share_a_few_connections():
    path = os.path.join(public_dir(), 't.db')
    make_db(path).close()
    reader = SQLiteReader(path)
    made = []
    connect = sqlite3.connect

    def counting(*args, **kwargs):
        made.append(1)
        return connect(*args, **kwargs)
    answers = []

    def work():
        for _ in range(200):
            answers.append(reader.rows('SELECT v FROM t WHERE k=?', ('a',)))
    sqlite3.connect = counting
    try:
        threads = [threading.Thread(target=work) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sqlite3.connect = connect
    assert answers == [(('1',),)] * 1600
    assert len(made) >= 1
    assert len(reader._idle) == min(len(made), reader.keep)
    reader.close()
    assert reader._idle == []


def test_account_reads_agree_with_tracs_own_connection():
    """The plain sqlite3 reader and Trac's DB API return the same
    account."""
    path = make_env(public_dir(),
                    extra_ini='\n[account-manager]\n'
                              'login_attempt_max_count = 3\n')
    env = Environment(path)
    try:
        populate(env)
        reader = AuthStore(env)._reader
        assert isinstance(reader, SQLiteReader)
        fast = {n: tables.account(reader, n)
                for n in ('alice', 'carol', 'eve', 'frank', 'nobody')}
        slow = {n: dict(env.db_query(tables.ACCOUNT, (n, n))) for n in fast}
        assert fast == slow
        assert fast['carol']['known'] == '1'
        assert fast['nobody'] == {}
    finally:
        env.shutdown()


def test_relative_and_absolute_database_paths():
    parent = public_dir()
    path = make_env(parent)
    reader = tables.open_reader(path, 'sqlite:db/trac.db')
    assert reader._uri.startswith('file:' + path)
    assert reader._uri.endswith('/db/trac.db?mode=rw')
    elsewhere = os.path.join(parent, 'moved.db')
    reader = tables.open_reader(path, 'sqlite:%s?timeout=3' % elsewhere)
    assert reader._uri == 'file:%s?mode=rw' % elsewhere
    assert reader._timeout == 3


def test_no_more_than_keep_connections_wait():
    path = os.path.join(public_dir(), 'k.db')
    make_db(path).close()
    reader = SQLiteReader(path)
    file = reader._identity()
    held = [reader._connect() for _ in range(reader.keep + 1)]
    reader._idle.extend(_Kept(cnx, file) for cnx in held[:reader.keep])
    extra = held[reader.keep]
    reader._idle.append(_Kept(extra, file))   # a burst left one more behind
    assert reader.rows('SELECT v FROM t') == (('1',),)
    assert len(reader._idle) == reader.keep
    with pytest.raises(sqlite3.ProgrammingError):   # closed, not kept
        extra.execute('SELECT 1')


def test_a_replaced_file_is_read_at_once_and_a_removed_one_refuses():
    parent = public_dir()
    path = os.path.join(parent, 'r.db')
    make_db(path).close()
    reader = SQLiteReader(path)
    assert reader.rows('SELECT v FROM t') == (('1',),)
    kept = reader._idle[0].cnx
    restored = make_db(os.path.join(parent, 'backup.db'))
    restored.execute("UPDATE t SET v='restored'")
    restored.commit()
    restored.close()
    os.rename(os.path.join(parent, 'backup.db'), path)   # restore a backup
    assert reader.rows('SELECT v FROM t') == (('restored',),)
    with pytest.raises(sqlite3.ProgrammingError):        # closed, not kept
        kept.execute('SELECT 1')
    os.unlink(path)
    with pytest.raises(sqlite3.OperationalError, match='r.db'):
        reader.rows('SELECT v FROM t')
    assert not os.path.exists(path)


def counting_reader(path):
    """A reader whose connections record the SELECTs on table t they
    run."""
    reader = SQLiteReader(path)
    ran = []
    connect = reader._connect

    def traced():
        cnx = connect()
        cnx.set_trace_callback(
            lambda sql: ran.append(sql) if 'FROM t' in sql else None)
        return cnx
    reader._connect = traced
    return reader, ran


@pytest.mark.parametrize('journal_mode', ['delete', 'wal'])
def test_rows_are_read_again_after_any_commit_and_only_then(journal_mode):
    path = os.path.join(public_dir(), 'm.db')
    writer = make_db(path)
    writer.execute('PRAGMA journal_mode=%s' % journal_mode)
    writer.execute('CREATE TABLE other (x)')
    writer.commit()
    reader, ran = counting_reader(path)
    query = 'SELECT v FROM t WHERE k=?'
    for _ in range(3):
        assert reader.rows(query, ('a',)) == (('1',),)
    assert len(ran) == 1                   # unchanged: remembered
    assert reader.rows(query, ('b',)) == ()
    assert reader.rows(query, ('b',)) == ()
    assert len(ran) == 2                   # "no rows" is remembered too
    writer.execute("UPDATE t SET v='2'")   # the row itself
    writer.commit()
    assert reader.rows(query, ('a',)) == (('2',),)
    assert len(ran) == 3
    writer.execute('INSERT INTO other VALUES (1)')   # any other table
    writer.commit()
    assert reader.rows(query, ('a',)) == (('2',),)
    assert len(ran) == 4
    writer.execute("UPDATE t SET v='3'")
    writer.rollback()                      # nothing committed
    assert reader.rows(query, ('a',)) == (('2',),)
    assert len(ran) == 4
    writer.execute("DELETE FROM t")        # a removed row
    writer.commit()
    assert reader.rows(query, ('a',)) == ()


def test_a_commit_by_trac_itself_is_seen_at_once():
    """Trac's own connection pool (here, in the same process) writes; the
    reader's next query reads the new password."""
    path = make_env(public_dir())
    env = Environment(path)
    try:
        populate(env)
        store = AuthStore(env)
        reader = store._reader
        before = tables.account(reader, 'alice')['password']
        assert tables.account(reader, 'alice')['password'] == before
        store.set_password('alice', 'a new one')
        assert tables.account(reader, 'alice')['password'] != before
        with env.db_transaction as db:
            db("DELETE FROM session_attribute WHERE sid='alice'")
        assert 'password' not in tables.account(reader, 'alice')
    finally:
        env.shutdown()


def test_at_most_remember_results_are_kept():
    path = os.path.join(public_dir(), 'b.db')
    make_db(path).close()
    reader, ran = counting_reader(path)
    reader.remember = 3
    for key in 'abcd':
        reader.rows('SELECT v FROM t WHERE k=?', (key,))
    assert len(reader._memo[1]) <= 3
    reader.rows('SELECT v FROM t WHERE k=?', ('d',))
    assert len(ran) == 4                   # d is still remembered


def test_every_kept_connection_sees_a_commit():
    """Each kept connection checks the database for itself: a commit made
    while several had rows remembered is seen by each of them."""
    path = os.path.join(public_dir(), 'e.db')
    writer = make_db(path)
    reader = SQLiteReader(path)
    query = 'SELECT v FROM t WHERE k=?'
    kept = [_Kept(reader._connect(), reader._identity()) for _ in range(3)]
    for each in kept:
        assert reader._read(each, [(query, ('a',))]) == [(('1',),)]
    writer.execute("UPDATE t SET v='2'")
    writer.commit()
    reader._idle.extend(kept)
    for _ in kept:
        assert reader.rows(query, ('a',)) == (('2',),)
        reader._idle.insert(0, reader._idle.pop())   # the next one
    assert all(reader._read(each, [(query, ('a',))]) == [(('2',),)]
               for each in kept)


@pytest.mark.parametrize('journal_mode', ['delete', 'wal'])
def test_what_one_connection_read_another_uses_until_a_commit(
        journal_mode):
    """Under the header's counter, which every connection to the file
    sees, rows are the reader's: a second connection (another thread's)
    uses what the first read. A WAL connection's data_version is its
    own: each reads for itself."""
    path = os.path.join(public_dir(), 's.db')
    writer = make_db(path)
    writer.execute('PRAGMA journal_mode=%s' % journal_mode)
    reader, ran = counting_reader(path)
    query = [('SELECT v FROM t WHERE k=?', ('a',))]
    kept = [_Kept(reader._connect(), reader._identity()) for _ in range(2)]
    assert [reader._read(each, query) for each in kept] == [[(('1',),)]] * 2
    assert len(ran) == (1 if journal_mode == 'delete' else 2)
    writer.execute("UPDATE t SET v='2'")
    writer.commit()
    assert [reader._read(each, query) for each in kept] == [[(('2',),)]] * 2
    assert len(ran) == (2 if journal_mode == 'delete' else 4)


def test_rows_read_before_a_commit_never_pass_for_rows_after_it():
    """Two threads read around a commit: the one that read before it
    finishes last. Its rows stay labelled with the old counter, so the
    next read after the commit reads again instead of using them."""
    path = os.path.join(public_dir(), 'r.db')
    writer = make_db(path)
    reader, ran = counting_reader(path)
    query = [('SELECT v FROM t WHERE k=?', ('a',))]
    old, new = (_Kept(reader._connect(), reader._identity())
                for _ in range(2))
    stale = reader._fresh(old, query)       # read, not yet remembered
    writer.execute("UPDATE t SET v='2'")
    writer.commit()
    assert reader._read(new, query) == [(('2',),)]
    reader._remember(old, stale[1], dict(zip(query, stale[0], strict=True)))
    assert reader._read(new, query) == [(('2',),)]
    assert reader._read(old, query) == [(('2',),)]


def test_rows_many_reads_every_query_after_one_look_at_the_database():
    """Queries read together see the database as it is now, each one: a
    commit between two calls is seen by every query of the next."""
    path = os.path.join(public_dir(), 'm.db')
    writer = make_db(path)
    reader, ran = counting_reader(path)
    both = [('SELECT v FROM t WHERE k=?', ('a',)), ('SELECT k FROM t', ())]
    assert reader.rows_many(both) == [(('1',),), (('a',),)]
    assert reader.rows_many(both) == [(('1',),), (('a',),)]
    assert len(ran) == 2
    writer.execute("INSERT INTO t VALUES ('b', '2')")
    writer.commit()
    assert reader.rows_many(both) == [(('1',),), (('a',), ('b',))]
    assert len(ran) == 4


def _counter(path):
    with open(path, 'rb') as f:
        return int.from_bytes(f.read(28)[24:28], 'big')


def _hot_journal(path, original, page_size=4096, sector=512):
    """Write the rollback journal a writer that crashed after writing the
    database file, before deleting its journal, leaves behind: every page
    of `original` (the file before the commit)."""
    pages = [original[i:i + page_size]
             for i in range(0, len(original), page_size)]
    nonce = 0x1234567
    head = (bytes([0xd9, 0xd5, 0x05, 0xf9, 0x20, 0xa1, 0x63, 0xd7]) +
            struct.pack('>IIIII', len(pages), nonce, len(pages), sector,
                        page_size))
    out = head.ljust(sector, b'\0')
    for number, data in enumerate(pages, 1):
        cksum = nonce
        i = page_size - 200
        while i > 0:
            cksum = (cksum + data[i]) & 0xffffffff
            i -= 200
        out += struct.pack('>I', number) + data + struct.pack('>I', cksum)
    with open(path + '-journal', 'wb') as f:
        f.write(out)
        f.flush()
        os.fsync(f.fileno())


def test_a_commit_a_hot_journal_undid_hides_no_later_one():
    """The header's counter, read without SQLite's locks, shows a commit
    that crashed (a hot journal); the read that follows rolls it back.
    What it read is remembered under the counter seen under SQLite's
    lock, so the next real commit, which brings the counter to the value
    the crashed one had, is seen (here: a permission revoked after the
    crash)."""
    path = os.path.join(public_dir(), 'hot.db')
    cnx = sqlite3.connect(path, isolation_level=None)
    cnx.execute('PRAGMA page_size=4096')
    cnx.execute('CREATE TABLE permission (username, action)')
    cnx.execute("INSERT INTO permission VALUES ('alice', 'TRAC_ADMIN')")
    cnx.close()
    reader = SQLiteReader(path)
    query = 'SELECT action FROM permission WHERE username=?'
    assert reader.rows(query, ('alice',)) == (('TRAC_ADMIN',),)
    before = _counter(path)

    # a writer (Trac, trac-admin) commits something and is killed (OOM,
    # power loss, kill -9) after writing the file, before removing its
    # journal: the journal is hot and the commit will be rolled back
    with open(path, 'rb') as f:
        original = f.read()
    cnx = sqlite3.connect(path, isolation_level=None)
    cnx.execute("INSERT INTO permission VALUES ('mallory', 'WIKI_VIEW')")
    cnx.close()
    _hot_journal(path, original)
    assert _counter(path) == before + 1

    # a login: its query rolls the hot journal back -- right rows
    assert reader.rows(query, ('alice',)) == (('TRAC_ADMIN',),)
    assert _counter(path) == before             # rolled back
    assert not os.path.exists(path + '-journal')

    # the admin now revokes alice's TRAC_ADMIN: committed
    cnx = sqlite3.connect(path, isolation_level=None)
    cnx.execute("DELETE FROM permission WHERE username='alice'")
    cnx.close()
    assert _counter(path) == before + 1
    fresh = sqlite3.connect(path)
    assert fresh.execute(query, ('alice',)).fetchall() == []
    fresh.close()
    # ... and every later login still sees it granted, until some other
    # commit happens
    assert reader.rows(query, ('alice',)) == ()
