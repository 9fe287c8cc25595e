"""An outside review's attacks on SQLite reads that wait for a writer in
Python instead of SQLite's busy handler, and on the ASCII fast path of
names and the group check's request tuple. The WAL tests found a read
that did not wait (the version check before the read transaction)."""

import io
import os
import sqlite3
import subprocess
import sys
import threading
import time

import pytest
from trac.env import Environment

from tests.harness import make_env, public_dir
from tests.users import populate
from tracwsgiauth.modwsgi import for_environment, provider_for
from tracwsgiauth.names import from_wire, to_wire
from tracwsgiauth.serve import answer_policy
from tracwsgiauth import sqlite as sqlite_module
from tracwsgiauth.sqlite import SQLiteReader


def make_db(path, journal_mode='delete'):
    cnx = sqlite3.connect(path, isolation_level=None,
                          check_same_thread=False)
    cnx.execute('PRAGMA journal_mode=%s' % journal_mode)
    cnx.execute('CREATE TABLE t (k TEXT PRIMARY KEY, v TEXT)')
    cnx.execute("INSERT INTO t VALUES ('a', '1')")
    return cnx


def exclusive_holder(path, journal_mode):
    """A connection in ``locking_mode=EXCLUSIVE`` (as trac-admin or a
    maintenance script may set) that has committed v='2' and still holds
    the database's lock until it is closed."""
    cnx = make_db(path, journal_mode)
    cnx.execute('PRAGMA locking_mode=EXCLUSIVE')
    cnx.execute('BEGIN EXCLUSIVE')
    cnx.execute("UPDATE t SET v='2'")
    cnx.execute('COMMIT')
    return cnx


# --- waiting for a writer ---------------------------------------------

@pytest.mark.parametrize('journal_mode', ['wal', 'delete'])
def test_a_read_waits_for_a_writer_holding_the_lock(journal_mode):
    """A writer in exclusive locking mode holds the lock for 0.3 s; a
    reader with a 10 s timeout waits and reads its commit, in WAL mode
    also when the lock meets `_read`'s look at ``PRAGMA data_version``
    (a read transaction of its own there), before `_fresh`."""
    path = os.path.join(public_dir(), '%s-exclusive.db' % journal_mode)
    holder = exclusive_holder(path, journal_mode)
    reader = SQLiteReader(path, timeout=10)
    later = threading.Timer(0.3, holder.close)
    later.start()
    try:
        assert reader.rows('SELECT v FROM t') == (('2',),)
    finally:
        later.join()


def wal_env():
    parent = public_dir()
    path = make_env(parent)
    env = Environment(path)
    populate(env)
    env.shutdown()
    db = os.path.join(path, 'db', 'trac.db')
    cnx = sqlite3.connect(db)
    assert cnx.execute('PRAGMA journal_mode=WAL').fetchone()[0] == 'wal'
    cnx.close()
    return path, db


def test_a_wal_login_waits_while_trac_admin_holds_the_lock_briefly():
    """End to end, WAL: a fresh Apache child (no kept connection) checks
    alice's password while another process holds the database for
    0.3 s (timeout: Trac's default 10 s). The login waits and is
    accepted, with nothing in the error log."""
    path, db = wal_env()
    holder = sqlite3.connect(db, isolation_level=None,
                             check_same_thread=False)
    holder.execute('PRAGMA locking_mode=EXCLUSIVE')
    holder.execute('BEGIN EXCLUSIVE')
    holder.execute("UPDATE system SET value=value WHERE name='x'")
    holder.execute('COMMIT')
    entry = for_environment(path)
    later = threading.Timer(0.3, holder.close)
    later.start()
    try:
        errors = io.StringIO()
        answer = entry.check_password({'wsgi.errors': errors}, 'alice',
                                      'secret')
        assert (answer, errors.getvalue()) == (True, '')
    finally:
        later.join()


WRITER = r'''
import sqlite3, sys, time
path, seconds = sys.argv[1], float(sys.argv[2])
end, i = time.monotonic() + seconds, 0
print('ready', flush=True)
while time.monotonic() < end:
    # what each trac-admin run (or a tracd restart) does: open, commit,
    # close -- the last connection checkpoints and removes the WAL
    # under an exclusive lock
    cnx = sqlite3.connect(path, timeout=10, isolation_level=None)
    cnx.execute("INSERT OR REPLACE INTO system VALUES ('review', ?)",
                (str(i),))
    cnx.close()
    i += 1
'''


def fresh_reader_failures(db, seconds=2.0):
    writer = subprocess.Popen([sys.executable, '-c', WRITER, db,
                               str(seconds)], stdout=subprocess.PIPE,
                              text=True)
    try:
        assert writer.stdout.readline().strip() == 'ready'
        reads, failures = 0, []
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            # a new Apache child, or a reader opened again after a
            # trac.ini change: no connection kept yet
            reader = SQLiteReader(db, timeout=10)
            try:
                reader.rows("SELECT value FROM system WHERE name='review'")
                reads += 1
            except sqlite3.OperationalError as e:
                failures.append(str(e))
            finally:
                reader.close()
    finally:
        writer.wait(timeout=30)
    return reads, failures


def test_wal_fresh_readers_hold_while_trac_admin_runs():
    """WAL: while another process opens, commits and closes (trac-admin
    in a loop), fresh readers with a 10 s timeout never fail (the
    closing connection's exclusive checkpoint lock meets their look at
    ``PRAGMA data_version``: they wait)."""
    path, db = wal_env()
    reads, failures = fresh_reader_failures(db)
    assert reads > 50
    assert failures == [], '%d of %d reads failed: %s' % (
        len(failures), len(failures) + reads, failures[0])


def test_rollback_fresh_readers_hold_while_trac_admin_runs():
    path = make_env(public_dir())
    db = os.path.join(path, 'db', 'trac.db')
    reads, failures = fresh_reader_failures(db)
    assert reads > 50 and failures == []


def test_a_wait_ends_with_the_timeout_and_drops_the_connection():
    """Rollback journal, a writer in exclusive locking mode that never
    lets go: the read fails closed after about the timeout (not at once,
    not never), its connection is closed, and once the writer is gone
    the reader reads what it committed (exclusive mode increments the
    header counter once for several commits)."""
    path = os.path.join(public_dir(), 'forever.db')
    make_db(path).close()
    reader = SQLiteReader(path, timeout=0.5)
    assert reader.rows('SELECT v FROM t') == (('1',),)
    assert len(reader._idle) == 1
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute('PRAGMA locking_mode=EXCLUSIVE')
    holder.execute("UPDATE t SET v='2'")
    holder.execute("UPDATE t SET v='3'")
    started = time.monotonic()
    with pytest.raises(sqlite3.OperationalError, match='locked'):
        reader.rows('SELECT v FROM t')
    waited = time.monotonic() - started
    assert 0.4 < waited < 5
    assert reader._idle == []
    holder.close()
    assert reader.rows('SELECT v FROM t') == (('3',),)


def test_an_error_other_than_busy_is_not_retried():
    path = os.path.join(public_dir(), 'other.db')
    make_db(path).close()
    reader = SQLiteReader(path, timeout=30)
    started = time.monotonic()
    with pytest.raises(sqlite3.OperationalError, match='no such table'):
        reader.rows('SELECT v FROM missing')
    with open(os.path.join(public_dir(), 'junk.db'), 'wb') as f:
        f.write(b'not a database' * 100)
    with pytest.raises(sqlite3.DatabaseError):
        SQLiteReader(f.name, timeout=30).rows('SELECT 1 FROM t')
    assert time.monotonic() - started < 5


class _Coded(sqlite3.OperationalError):
    pass


@pytest.mark.parametrize('code, busy', [
    (5, True),          # SQLITE_BUSY
    (261, True),        # SQLITE_BUSY_RECOVERY
    (517, True),        # SQLITE_BUSY_SNAPSHOT
    (773, True),        # SQLITE_BUSY_TIMEOUT
    (6, False),         # SQLITE_LOCKED
    (262, False),       # SQLITE_LOCKED_SHAREDCACHE
    (1, False), (10, False), (11, False), (14, False)])
def test_busy_is_told_by_the_primary_code(code, busy):
    error = _Coded('whatever')
    error.sqlite_errorcode = code
    assert sqlite_module._busy(error) is busy


HOT = r'''
import os, sqlite3, sys
cnx = sqlite3.connect(sys.argv[1], isolation_level=None)
cnx.execute('PRAGMA cache_size=2')
cnx.execute('BEGIN')
cnx.execute("UPDATE t SET v='crashed'")
cnx.execute("UPDATE big SET x=x||'y'")   # spills pages to the file
os._exit(0)                              # a crash: a hot journal stays
'''


def test_many_fresh_readers_meet_a_hot_journal():
    """A writer crashed mid-transaction (its pages in the file, a hot
    journal next to it): readers that meet it at once get SQLITE_BUSY
    from the one rolling it back, wait, and all read the committed
    state; the next real commit counts."""
    path = os.path.join(public_dir(), 'hot.db')
    cnx = make_db(path)
    cnx.execute('CREATE TABLE big (x TEXT)')
    cnx.execute('BEGIN')
    cnx.executemany('INSERT INTO big VALUES (?)',
                    [('%04d' % i * 50,) for i in range(3000)])
    cnx.execute('COMMIT')
    cnx.close()
    reader = SQLiteReader(path, timeout=10)
    assert reader.rows('SELECT v FROM t') == (('1',),)
    subprocess.run([sys.executable, '-c', HOT, path], check=True)
    assert os.path.getsize(path + '-journal') > 0
    results, errors = [], []

    def read():
        try:
            results.append(SQLiteReader(path, timeout=10).rows(
                'SELECT v FROM t'))
        except Exception as e:      # noqa: BLE001
            errors.append(e)
    threads = [threading.Thread(target=read) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == [] and results == [(('1',),)] * 8
    assert reader.rows('SELECT v FROM t') == (('1',),)
    writer = sqlite3.connect(path)
    writer.execute("UPDATE t SET v='2'")
    writer.commit()
    assert reader.rows('SELECT v FROM t') == (('2',),)


def test_logins_while_trac_commits():
    """Rollback journal: Trac commits in a loop (85/s and more) while
    logins and group checks run on four threads: none refused."""
    path = make_env(public_dir())
    env = Environment(path)
    populate(env)
    answer_policy(path)
    entry = for_environment(path)
    stop = threading.Event()

    def trac_writes():
        i = 0
        while not stop.is_set():
            with env.db_transaction as db:
                db("INSERT OR REPLACE INTO system VALUES ('review', %s)",
                   (str(i),))
            i += 1
    writer = threading.Thread(target=trac_writes)
    writer.start()
    bad = []

    def logins(n):
        for i in range(60):
            errors = io.StringIO()
            environ = {'wsgi.errors': errors, 'REMOTE_ADDR': '10.0.0.%d' % n,
                       'REMOTE_PORT': str(i), 'REQUEST_METHOD': 'GET',
                       'REQUEST_URI': '/'}
            if entry.check_password(environ, 'bob', 'hunter2') is not True \
                    or 'BOB' in entry.groups_for_user(environ, 'bob') \
                    or errors.getvalue():
                bad.append(errors.getvalue())
    try:
        threads = [threading.Thread(target=logins, args=(n,))
                   for n in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        stop.set()
        writer.join()
        env.shutdown()
    assert bad == []


# --- names and the group check of one request --------------------------

def test_from_wire_reads_utf8_and_leaves_anything_else():
    """What mod_wsgi hands over (the bytes sent, Latin-1 decoded) is read
    as UTF-8 where it is UTF-8; Latin-1 text that is not, and text that
    is no Latin-1 decoding at all, come back unchanged."""
    texts = ['', 'alice', 'CORP\\bob', 'a\x00b', '\x7f', 'jürgen',
             'CORP\\Jürgen', '\u20ac']
    texts += [chr(i) for i in range(0x800)]
    for text in texts:
        assert from_wire(to_wire(text)) == text, repr(text)
    for sent in ['j\xfcrgen', '\xc3', '\xc3(', '\xff\xfe', 'x\udcff',
                 '\u20ac']:
        assert from_wire(sent) == sent, repr(sent)


@pytest.fixture
def site():
    path = make_env(public_dir())
    env = Environment(path)
    populate(env)
    env.shutdown()
    answer_policy(path)
    return path


def environ(port='5000', uri='/svn/x'):
    return {'wsgi.errors': io.StringIO(), 'REMOTE_ADDR': '10.1.2.3',
            'REMOTE_PORT': port, 'REQUEST_METHOD': 'PROPFIND',
            'REQUEST_URI': uri}


@pytest.mark.parametrize('sent, answer', [
    (to_wire('CORP\\jürgen'), 'jürgen'),     # UTF-8
    ('CORP\\j\xfcrgen', 'jürgen'),           # Latin-1
    (to_wire('jürgen'), True)])
def test_non_ascii_names_get_their_groups(site, sent, answer):
    entry = for_environment(site)
    request = environ()
    assert entry.check_password(request, sent, to_wire('pässword')) == \
        answer
    # mod_wsgi passes the name returned as UTF-8 bytes, Latin-1 decoded
    assert 'developers' in entry.groups_for_user(request, to_wire('jürgen'))
    assert 'developers' in entry.groups_for_user(request, to_wire('jürgen'))
    assert request['wsgi.errors'].getvalue() == ''


def test_latin1_password_is_taken_as_latin1(site):
    entry = for_environment(site)
    request = environ()
    assert entry.check_password(request, 'j\xfcrgen', 'p\xe4ssword') == \
        'jürgen'


def revoke(path, subject, action):
    env = Environment(path)
    with env.db_transaction as db:
        db('DELETE FROM permission WHERE username=%s AND action=%s',
           (subject, action))
    env.shutdown()


def test_two_require_lines_read_the_permissions_again(site):
    entry = for_environment(site)
    request = environ()
    assert entry.check_password(request, 'alice', 'secret') is True
    assert 'developers' in entry.groups_for_user(request, 'alice')
    revoke(site, 'alice', 'developers')
    assert 'developers' not in entry.groups_for_user(request, 'alice')


def test_kept_alive_connection_next_request_counts_a_change(site):
    """The same client port, method and URI (a kept-alive svn
    connection): the next request's group check sees a change made
    between the two requests."""
    entry = for_environment(site)
    first = environ()
    assert entry.check_password(first, 'alice', 'secret') is True
    assert 'developers' in entry.groups_for_user(first, 'alice')
    revoke(site, 'alice', 'developers')
    second = environ()
    assert entry.check_password(second, 'alice', 'secret') is True
    assert 'developers' not in entry.groups_for_user(second, 'alice')
    # a group check without a login before it (another module
    # authenticated) on the same connection reads too
    third = environ()
    assert 'developers' not in entry.groups_for_user(third, 'alice')


def test_a_group_check_for_another_user_is_not_the_login_of_this_one(
        site):
    entry = for_environment(site)
    request = environ()
    assert entry.check_password(request, 'alice', 'secret') is True
    # bob is locked out of no group; 'BOB' is a user of its own
    assert 'developers' not in entry.groups_for_user(request, 'bob')
    assert entry.check_password(request, 'carol', 'carol-pw') is False
    assert entry.groups_for_user(request, 'carol') == []
    checked = provider_for(site)._checked
    assert getattr(checked, 'last', None) is None


@pytest.mark.parametrize('message, busy', [
    ('database is locked', True),
    ('database table is locked', False),            # SQLITE_LOCKED
    ('database table is locked: t', False),
    ('database schema is locked: main', False),
    ('no such table: t', False)])
def test_busy_without_an_error_code_is_told_by_its_message(message,
                                                              busy):
    """Python < 3.11 (no sqlite_errorcode): the message decides."""
    error = sqlite3.OperationalError(message)
    assert getattr(error, 'sqlite_errorcode', None) is None
    assert sqlite_module._busy(error) is busy
