"""An outside review's attacks on the accepted-login memo
(`tracwsgiauth.outcomes`, wired in `modwsgi._Provider.check_password`).
It found three wrong answers, fixed since (the first three tests): a
login whose rows were read after a commit was labelled with the version
before it, an app password's expiry was turned into a monotonic
deadline, and ``cache_size = 0`` did not stop the memo."""

import io
import os
import shutil
import threading
import time


from tests.harness import edit_ini, make_env, public_dir, set_password, \
    trac_env
from tracwsgiauth import policy, tables
from tracwsgiauth.addresses import write_throttled
from tracwsgiauth.apppasswords import AppPasswords
from tracwsgiauth.guard import writer
from tracwsgiauth.modwsgi import for_environment, provider_for
from tracwsgiauth.repoauth import for_repositories


def environ(port=4000, address='192.0.2.7'):
    return {'REMOTE_ADDR': address, 'REMOTE_PORT': str(port),
            'REQUEST_METHOD': 'GET', 'SCRIPT_NAME': '/svn/code',
            'PATH_INFO': '/trunk/', 'QUERY_STRING': '',
            'REQUEST_URI': '/svn/code/trunk/', 'wsgi.errors': io.StringIO()}


def site(extra_ini='', database=None, name='review'):
    path = make_env(public_dir(), name, extra_ini=extra_ini,
                    database=database)
    set_password(path, 'alice', 'alice-pw')
    set_password(path, 'bob', 'bob-pw')
    return path


def logins(entry, password, n=1, user='alice', address='192.0.2.7'):
    return [entry.check_password(environ(5000 + i, address), user, password)
            for i in range(n)]


def db_file(path):
    return os.path.join(path, 'db', 'trac.db')


def sql(path, statement, args=()):
    with trac_env(path) as env:
        env.db_transaction(statement, args)


def account(path, user='alice'):
    with trac_env(path) as env:
        return dict(env.db_query("SELECT name, value FROM session_attribute "
                                 "WHERE sid=%s", (user,)))


def login_groups(entry, port):
    """alice's groups as Apache decides them after her login."""
    env = environ(port)
    assert entry.check_password(env, 'alice', 'alice-pw') is True
    return entry.groups_for_user(env, 'alice')


def used_app_password(path, scope='commit', expires=None):
    """An app password of alice's, used once at a repository location and
    its "last used" written (until then it is not remembered)."""
    with trac_env(path) as env:
        _, password = AppPasswords(env).create('alice', 'ci', scope,
                                               expires=expires)
    assert logins(for_repositories(path), password) == [True]
    assert writer.flush()
    with trac_env(path) as env:
        assert env.db_query("SELECT last_used FROM wsgiauth_app_password "
                            "WHERE last_used IS NOT NULL")
    return password


# --- wrong answers, fixed -------------------------------------------

def test_a_commit_while_rows_are_read_is_not_filed_under_the_version_before(
        monkeypatch):
    """The memo was labelled with the header read BEFORE the rows. A commit
    that landed in between (alice's password changed) got its rows filed
    under the version before it. A nightly backup of that earlier state,
    copied back in place with ``cp -p`` (same inode, its own mtime, i.e.
    exactly the labelled version), then made the memo accept the new
    password, which the restored database refuses."""
    path = site()
    entry = for_environment(path)
    assert logins(entry, 'alice-pw') == [True]
    backup = db_file(path) + '.bak'
    shutil.copy2(db_file(path), backup)         # cp -p trac.db backup
    real = tables.for_login

    def commit_first(*args, **kwargs):          # the race, made certain
        monkeypatch.setattr(tables, 'for_login', real)
        set_password(path, 'alice', 'new-pw')
        return real(*args, **kwargs)
    monkeypatch.setattr(tables, 'for_login', commit_first)
    assert logins(entry, 'new-pw') == [True]
    shutil.copy2(backup, db_file(path))         # cp -p backup trac.db
    assert logins(entry, 'alice-pw') == [True]  # the restored password
    assert logins(entry, 'new-pw') == [False]


def test_an_app_password_expires_by_the_wall_clock(
        monkeypatch):
    """An app password's expiry is wall-clock time, but the memo's
    deadline was converted to time.monotonic() when it is put. After the
    wall clock steps forward (NTP step, or a VM paused/suspended: the
    monotonic clock does not advance meanwhile) the app password is
    expired, yet the memo accepted it until its monotonic deadline."""
    monkeypatch.setattr(policy, 'ask', lambda *a, **q: {'allowed': True})
    path = site()
    password = used_app_password(path, expires=time.time() + 50)
    gate = for_repositories(path)
    assert logins(gate, password, 2) == [True] * 2      # now remembered
    real = time.time
    monkeypatch.setattr(time, 'time', lambda: real() + 3600)
    assert logins(gate, password) == [False]


def test_cache_size_0_stops_the_memo_at_once(counted):
    """The module promises nothing is remembered where ``cache_size`` is
    below 1. `Login.remembered_for` asked the process-wide VerifiedCache
    how long an entry is left, and found the one added while the cache
    was still on: after ``cache_size = 0`` logins were still answered
    from memory (no read, no hash) for the rest of the old entry's ttl."""
    path = site()
    entry = for_environment(path)
    assert logins(entry, 'alice-pw') == [True]
    edit_ini(path, 'wsgiauth', 'cache_size', '0')
    before = dict(counted)
    assert logins(entry, 'alice-pw', 3) == [True] * 3
    assert counted['reads'] - before['reads'] == 3
    assert counted['hashes'] - before['hashes'] == 3


# --- attacks that hold ----------------------------------------------------

def test_backup_restored_in_place_without_a_race():
    """``cp -p`` of a backup over the file, with no commit inside a
    login's read: the memo's version is the backup's state, and the
    password changed since the backup is refused again."""
    path = site()
    entry = for_environment(path)
    backup = db_file(path) + '.bak'
    shutil.copy2(db_file(path), backup)
    assert logins(entry, 'alice-pw', 2) == [True] * 2
    set_password(path, 'alice', 'new-pw')
    assert logins(entry, 'new-pw', 2) == [True] * 2
    shutil.copy2(backup, db_file(path))
    assert logins(entry, 'new-pw') == [False]
    assert logins(entry, 'alice-pw') == [True]


def test_backup_moved_into_place_with_its_old_mtime():
    """A restore by rename (new inode) of a ``cp -p`` backup."""
    path = site()
    entry = for_environment(path)
    backup = db_file(path) + '.bak'
    shutil.copy2(db_file(path), backup)
    set_password(path, 'alice', 'new-pw')
    assert logins(entry, 'new-pw', 2) == [True] * 2
    os.replace(backup, db_file(path))
    assert logins(entry, 'new-pw') == [False]


def test_switch_to_wal_then_password_change():
    """Remembered in rollback mode, then the file is switched to WAL and
    the password changed there (the header no longer counts commits)."""
    path = site()
    entry = for_environment(path)
    assert logins(entry, 'alice-pw', 2) == [True] * 2
    import sqlite3
    cnx = sqlite3.connect(db_file(path), isolation_level=None)
    assert cnx.execute('PRAGMA journal_mode=wal').fetchone()[0] == 'wal'
    cnx.close()
    set_password(path, 'alice', 'new-pw')
    assert logins(entry, 'alice-pw', 2) == [False] * 2
    assert logins(entry, 'new-pw', 2) == [True] * 2


def test_failed_login_count_is_still_ended_by_a_right_login():
    """alice remembered; a guesser's wrong password is counted (written
    by the guard's writer: a commit); alice's next right login must end
    the count (AccountManager's write), not be answered from memory."""
    path = site('[account-manager]\nlogin_attempt_max_count = 3\n')
    entry = for_environment(path)
    assert logins(entry, 'alice-pw', 2) == [True] * 2
    assert logins(entry, 'guess', address='198.51.100.9') == [False]
    assert writer.flush()
    assert account(path)['failed_logins_count'] == '1'
    assert logins(entry, 'alice-pw', 2) == [True] * 2
    assert writer.flush()
    assert 'failed_logins_count' not in account(path)


def test_lock_by_another_process_counts_next_request():
    path = site('[account-manager]\nlogin_attempt_max_count = 2\n'
                'user_lock_time = 0\n')
    entry = for_environment(path)
    assert logins(entry, 'alice-pw', 2) == [True] * 2
    for name, value in (('failed_logins_count', '2'), ('lock_count', '1')):
        sql(path, "INSERT INTO session_attribute VALUES "
            "('alice', 1, %s, %s)", (name, value))
    assert logins(entry, 'alice-pw', 2) == [False] * 2


def test_throttled_address_is_refused_despite_the_memo():
    path = site('[wsgiauth]\naddress_failures = 3\n')
    entry = for_environment(path)
    assert logins(entry, 'alice-pw', 2) == [True] * 2
    write_throttled(path, {'192.0.2.7': time.time() + 600})
    assert logins(entry, 'alice-pw') == [False]
    assert logins(entry, 'alice-pw', address='192.0.2.8') == [True]


def test_ignore_auth_case_and_domain_rule_turned_off():
    path = site('[wsgiauth]\nstrip_domains = CORP\n')
    edit_ini(path, 'trac', 'ignore_auth_case', 'true')
    entry = for_environment(path)
    assert logins(entry, 'alice-pw', 2, 'ALICE') == ['alice'] * 2
    assert logins(entry, 'alice-pw', 2, 'CORP\\alice') == ['alice'] * 2
    edit_ini(path, 'trac', 'ignore_auth_case', 'false')
    assert logins(entry, 'alice-pw', 1, 'ALICE') == [None]
    edit_ini(path, 'wsgiauth', 'strip_domains', '')
    assert logins(entry, 'alice-pw', 1, 'CORP\\alice') == [None]


def test_latin1_and_utf8_wire_names_and_passwords():
    """The same name and password sent UTF-8 and Latin-1 encoded: each
    answered as a fresh check would (the name as mod_wsgi wants it)."""
    path = site()
    set_password(path, 'jürgen', 'pä-pw')
    entry = for_environment(path)
    utf8 = 'jürgen'.encode('utf-8').decode('latin-1')
    pw8 = 'pä-pw'.encode('utf-8').decode('latin-1')
    for _ in range(2):
        assert logins(entry, pw8, 2, utf8) == [True] * 2
        assert logins(entry, 'pä-pw', 2, 'jürgen') == ['jürgen'] * 2
        assert logins(entry, 'pä-pw', 1, utf8) == [True]
        assert logins(entry, pw8, 1, 'jürgen') == ['jürgen']


def test_same_credential_at_two_environments():
    one, two = site(name='one'), site(name='two')
    set_password(two, 'alice', 'other-pw')
    a, b = for_environment(one), for_environment(two)
    assert logins(a, 'alice-pw', 3) == [True] * 3
    assert logins(b, 'alice-pw', 2) == [False] * 2
    sql(two, "DELETE FROM session_attribute WHERE sid='alice'")
    assert logins(b, 'alice-pw', 2) == [None] * 2
    assert logins(a, 'alice-pw', 2) == [True] * 2


def test_removed_then_readded_with_the_same_password():
    path = site()
    entry = for_environment(path)
    assert logins(entry, 'bob-pw', 2, 'bob') == [True] * 2
    sql(path, "DELETE FROM session_attribute WHERE sid='bob'")
    sql(path, "DELETE FROM session WHERE sid='bob'")
    assert logins(entry, 'bob-pw', 2, 'bob') == [None] * 2
    set_password(path, 'bob', 'bob-pw')
    assert logins(entry, 'bob-pw', 2, 'bob') == [True] * 2


def test_email_verification_and_group_refusal(monkeypatch):
    """The group refusal kept with the outcome follows the account: an
    unverified address gets no group, and a verified one gets them on
    the next request (and back)."""
    monkeypatch.setattr(policy, 'ask',
                        lambda *a, **q: {'groups': ['devs']})
    path = site()
    entry = for_environment(path)

    def groups():
        return login_groups(entry, 7000)
    assert groups() == groups() == ['devs']
    sql(path, "INSERT INTO session_attribute VALUES "
        "('alice', 1, 'email_verification_token', 'x')")
    assert groups() == groups() == []
    sql(path, "DELETE FROM session_attribute WHERE sid='alice' AND "
        "name='email_verification_token'")
    assert groups() == groups() == ['devs']


def test_read_only_app_password_not_used_for_trac_wsgi_memo(monkeypatch):
    """An app password remembered at the repository location is not
    accepted at trac.wsgi, even where trac.wsgi takes app passwords it
    is checked (and then accepted) on its own."""
    monkeypatch.setattr(policy, 'ask', lambda *a, **q: {'allowed': True})
    path = site()
    password = used_app_password(path, 'read')
    gate = for_repositories(path)
    assert logins(gate, password, 3) == [True] * 3
    entry = for_environment(path)
    assert logins(entry, password, 2) == [False] * 2
    edit_ini(path, 'wsgiauth', 'app_passwords_everywhere', 'true')
    assert logins(entry, password, 2) == [True] * 2
    edit_ini(path, 'wsgiauth', 'repository_passwords', 'account')
    assert logins(gate, password, 2) == [False] * 2


def test_threads_never_accept_the_old_password_after_the_commit():
    """8 threads log in with alice's password while it is changed: no
    check that starts after the change has committed accepts it."""
    path = site()
    entry = for_environment(path)
    changed, stop = threading.Event(), threading.Event()
    bad = []

    def run(n):
        i = 0
        while not stop.is_set():
            after = changed.is_set()
            i += 1
            ok = entry.check_password(environ(10000 + n * 1000 + i % 1000),
                                      'alice', 'alice-pw')
            if after and ok:
                bad.append(ok)

    threads = [threading.Thread(target=run, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    try:
        time.sleep(0.3)
        set_password(path, 'alice', 'new-pw')
        changed.set()
        time.sleep(0.5)
    finally:
        stop.set()
        for t in threads:
            t.join(20)
    assert bad == []


def _remembered_keys(outcomes):
    """The keys the memo holds (its layout differs between versions)."""
    if hasattr(outcomes, '_entries'):
        return list(outcomes._entries)
    return list(outcomes._memo[1])


def test_memo_keeps_no_password():
    path = site()
    entry = for_environment(path)
    assert logins(entry, 'alice-pw', 2) == [True] * 2
    outcomes = provider_for(path)._current().outcomes
    keys = _remembered_keys(outcomes)
    assert len(keys) == 1
    assert 'alice-pw' not in repr(vars(outcomes))
    assert b'alice-pw' not in b''.join(keys)


def test_permission_change_reaches_the_group_check(monkeypatch):
    """A remembered login's permission rows are those of the version it
    is answered at: a grant (a commit) is seen by the next group check."""
    answers = {'groups': ['devs']}
    monkeypatch.setattr(policy, 'ask', lambda *a, **q: dict(answers))
    path = site()
    entry = for_environment(path)

    def groups():
        return login_groups(entry, 7100)
    assert groups() == groups() == ['devs']
    answers['groups'] = ['devs', 'admins']      # what Trac answers now
    assert groups() == ['devs']                 # same rows: remembered
    with trac_env(path) as env:
        from trac.perm import PermissionSystem
        PermissionSystem(env).grant_permission('alice', 'TRAC_ADMIN')
    assert groups() == ['devs', 'admins']

