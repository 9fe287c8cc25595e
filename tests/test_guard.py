"""Brute-force protection, in-process on real Trac environments (SQLite;
PostgreSQL where marked): the failed logins counted exactly as
AccountManager's AccountGuard counts them, one lock with it, the address
throttle, the audit log, and the admin commands. Through Apache:
tests/test_guard_apache.py."""

import json
import os
import threading
import time

import pytest
from trac.env import Environment

from tests.harness import make_env, public_dir, trac_admin, set_password
from tracwsgiauth import guard, hashes, tables
from tracwsgiauth.lockout import LockPolicy, attempts, attempts_text
from tracwsgiauth.modwsgi import provider_for
from tracwsgiauth.throttle import Throttle, client_address

LOCK = ('\n[account-manager]\nlogin_attempt_max_count = 3\n'
        'user_lock_time = 60\n')


def lock_env(extra=''):
    """An environment whose accounts lock after 3 failed logins, with
    alice (password alice-pw)."""
    path = make_env(public_dir(), 'g', extra_ini=LOCK + extra)
    set_password(path, 'alice', 'alice-pw')
    return path


def login(path, user, password, address='192.0.2.1'):
    """check_password as Apache calls it, then the writes it queued."""
    environ = {'REMOTE_ADDR': address, 'REQUEST_URI': '/login?x=1',
               'wsgi.errors': _Errors()}
    answer = provider_for(path).check_password(environ, user, password)
    assert guard.writer.flush()
    return answer


class _Errors(list):
    write = list.append

    def flush(self):
        pass


def account(path, name='alice'):
    return tables.account(provider_for(path).reader(), name)


def am_guard(path):
    env = Environment(path)
    env.config.set('components', 'acct_mgr.*', 'enabled')
    from acct_mgr.guard import AccountGuard
    return env, AccountGuard(env)


def test_failures_are_written_as_accountguard_writes_them():
    """Ours and AccountGuard's own, for the same failures, side by side:
    the same attributes (the times aside)."""
    ours, theirs = lock_env(), lock_env()
    env, am = am_guard(theirs)
    try:
        for _ in range(5):
            assert login(ours, 'alice', 'wrong') is False
            am.failed_count('alice', '192.0.2.1')
            if am.user_locked('alice'):
                am.lock_count('alice', 'up')
        mine, its = account(ours), account(theirs)
        for attrs in (mine, its):
            attrs['failed_logins'] = [a for a, _ in attempts(
                attrs['failed_logins'])]
            del attrs['password']
        assert mine == its
        assert its['failed_logins_count'] == '5' and its['lock_count'] == '3'
    finally:
        env.shutdown()


def test_a_lock_reached_here_is_accountmanagers_and_its_unlock_ends_it():
    path = lock_env()
    for _ in range(3):
        login(path, 'alice', 'wrong')
    assert login(path, 'alice', 'alice-pw') is False
    env, am = am_guard(path)
    try:
        assert am.user_locked('alice')
        am.failed_count('alice', reset=True)        # AccountManager's unlock
    finally:
        env.shutdown()
    assert login(path, 'alice', 'alice-pw') is True


def test_a_right_login_ends_the_count_and_writes_only_then():
    path = lock_env()
    login(path, 'alice', 'wrong')
    assert account(path)['failed_logins_count'] == '1'
    writes = _count_writes(path)
    assert login(path, 'alice', 'alice-pw') is True
    assert not {'failed_logins', 'failed_logins_count',
                'lock_count'} & set(account(path))
    assert writes() == 1
    for _ in range(5):
        assert login(path, 'alice', 'alice-pw') is True
    assert writes() == 1        # right logins write nothing


def _count_writes(path):
    """How many transactions changed the database since."""
    import sqlite3
    cnx = sqlite3.connect(os.path.join(path, 'db', 'trac.db'))
    start = cnx.execute('PRAGMA data_version').fetchone()[0]
    seen = []

    def writes():
        version = cnx.execute('PRAGMA data_version').fetchone()[0]
        if not seen or seen[-1] != version:
            seen.append(version)
        return len(set(seen) - {start})
    return writes


def test_while_locked_right_and_wrong_passwords_are_one_answer(monkeypatch):
    """Refused alike, each verified for real (the verified-credential
    cache, warm, is not asked)."""
    path = lock_env()
    assert login(path, 'alice', 'alice-pw') is True      # warm cache
    for _ in range(3):
        login(path, 'alice', 'wrong')
    verified = []
    real = hashes.verify
    monkeypatch.setattr(hashes, 'verify', lambda *args: (
        verified.append(args[2]) or real(*args)))
    assert login(path, 'alice', 'alice-pw') is False
    assert login(path, 'alice', 'wrong') is False
    assert verified == ['alice-pw', 'wrong']


def test_concurrent_failures_are_each_counted():
    path = lock_env('\n[wsgiauth]\ncache_size = 0\n')
    trac_admin(path, 'config', 'set', 'account-manager',
               'login_attempt_max_count', '1000')

    def fail():
        for _ in range(10):
            login(path, 'alice', 'wrong')
    threads = [threading.Thread(target=fail) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert guard.writer.flush()
    assert account(path)['failed_logins_count'] == '60'


def test_nothing_is_counted_while_the_guard_is_off():
    path = make_env(public_dir(), 'off')
    set_password(path, 'bob', 'bob-pw')
    writes = _count_writes(path)
    for _ in range(5):
        assert login(path, 'bob', 'wrong') is False
    assert writes() == 0 and 'failed_logins_count' not in account(path, 'bob')


def test_hostile_attempt_logs_are_read_without_evaluation():
    text = ("[{'ipnr': '1.2.3.4', 'time': 5}, __import__('os'), "
            "{'ipnr': None, 'time': 7}, {'ipnr': 'x', 'time': 'y'}]")
    assert attempts(text) == [('1.2.3.4', 5), (None, 7)]
    assert attempts(attempts_text([('::1', 9)])) == [('::1', 9)]
    policy = LockPolicy(3, 60, 86400, 1)
    assert policy.failure({'known': '1', 'failed_logins_count': 'x'}, 1,
                          'a') == {}        # unreadable: stays locked


# -- the address throttle

@pytest.mark.parametrize('sent, seen', [
    ('192.0.2.1', '192.0.2.1'), ('::ffff:192.0.2.1', '192.0.2.1'),
    ('2001:DB8:0:0::1', '2001:db8::1'), ('garbage', 'garbage'), ('', '')])
def test_one_address_per_client(sent, seen):
    assert client_address(sent) == seen


def test_throttle_window_and_duration():
    throttle = Throttle(3, 10, 100)
    assert throttle.failed('a', 0) is None
    assert throttle.failed('a', 11) is None          # the first expired
    assert throttle.failed('a', 12) is None
    assert throttle.failed('a', 13) == 113
    assert throttle.refused('a', 50) and not throttle.refused('b', 50)
    assert not throttle.refused('a', 114)
    assert Throttle(0, 10, 100).failed('a', 0, 99) is None     # off


def test_an_address_is_throttled_for_every_user_and_a_success_does_not_end_it(
        tmp_path):
    audit_log = str(tmp_path / 'audit.jsonl')
    path = lock_env('\n[wsgiauth]\naddress_failures = 4\naddress_window = '
                    '60\naddress_block_time = 60\naudit_log = %s\n'
                    % audit_log)
    set_password(path, 'bob', 'bob-pw')
    for user in ('nobody', 'ghost', 'alice', 'nobody'):
        login(path, user, 'wrong', '::ffff:198.51.100.7')
    _wait(lambda: login(path, 'bob', 'bob-pw', '198.51.100.7') is False)
    assert login(path, 'bob', 'bob-pw', '198.51.100.8') is True
    lines = [json.loads(line) for line in open(audit_log)]
    assert {'refused', 'throttled'} <= {line['event'] for line in lines}
    refused = [line for line in lines if line['event'] == 'refused']
    assert refused[0]['address'] == '198.51.100.7'
    assert refused[0]['location'] == '/login'
    assert {line['reason'] for line in refused} >= {
        'unknown user', 'wrong password', 'address throttled'}
    text = open(audit_log).read()
    assert 'bob-pw' not in text and 'wrong' not in text.replace(
        'wrong password', '')


def _wait(predicate, timeout=10):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, 'never'
        time.sleep(0.05)


# -- the admin commands

def test_status_and_unlock_commands():
    path = lock_env()
    for _ in range(3):
        login(path, 'alice', 'wrong', '203.0.113.9')
    status = trac_admin(path, 'wsgiauth', 'status', 'alice').stdout
    assert 'failed logins: 3' in status and '203.0.113.9' in status
    assert 'locked: yes, until' in status
    assert 'Unlocked alice.' in trac_admin(path, 'wsgiauth', 'unlock',
                                           'alice').stdout
    assert 'locked: no' in trac_admin(path, 'wsgiauth', 'status',
                                      'alice').stdout
    assert login(path, 'alice', 'alice-pw') is True
    assert trac_admin(path, 'wsgiauth', 'unlock', 'alice',
                      check=False).returncode != 0


# -- PostgreSQL, in its schema (the write transaction pins it too)

def test_failures_counted_on_postgresql_in_the_schema(pg):
    from tests.pg import make_pg_env
    parent = public_dir()
    path = make_pg_env(pg, parent, 'gpg', 'twa_guard', 'gs', LOCK)
    other = make_pg_env(pg, parent, 'gpub', 'twa_guard', None, LOCK)
    for env_path in (path, other):
        set_password(env_path, 'alice', 'alice-pw')
    trac_admin(path, 'config', 'set', 'account-manager',
               'login_attempt_max_count', '1000')

    def fail():
        for _ in range(5):
            login(path, 'alice', 'wrong')
    threads = [threading.Thread(target=fail) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert guard.writer.flush()
    assert account(path)['failed_logins_count'] == '20'
    assert 'failed_logins_count' not in account(other)
    assert login(path, 'alice', 'alice-pw') is True
    assert 'failed_logins_count' not in account(path)


def test_a_flood_beyond_the_queue_is_counted_in_full():
    """More failures than the writer queues per account (a flood while
    the account is locked) are all counted, the extra ones without an
    entry each in the attempt log."""
    path = lock_env()
    record = provider_for(path).login()._record
    for _ in range(guard.PENDING_PER_ACCOUNT * 3):
        record('alice', ('192.0.2.1', time.time()))
    assert guard.writer.flush(30)
    attrs = account(path)
    assert attrs['failed_logins_count'] == str(guard.PENDING_PER_ACCOUNT * 3)
    assert len(attempts(attrs['failed_logins'])) <= 4


def test_failures_made_while_locked_do_not_outlive_an_unlock():
    """Failures while the account was locked, still queued when an
    administrator unlocks it, do not lock it again; failures that
    prolong a lock which ended by itself are counted."""
    lock = LockPolicy(3, 60, 86400, 1)
    now = time.time()
    locked = {'known': '1', 'failed_logins_count': '3',
              'failed_logins': attempts_text([('192.0.2.1', now - 10)])}
    later = [('192.0.2.1', now - 5, 'locked')] * 5 + [40]
    changes, _, after = guard._apply(lock, {'known': '1'}, later, now)
    assert changes == {} and not after          # unlocked meanwhile
    expired = dict(locked, failed_logins=attempts_text(
        [('192.0.2.1', now - 100)]))
    changes, _, after = guard._apply(
        lock, expired, [('192.0.2.1', now - 50, 'locked')], now)
    assert changes['failed_logins_count'] == '4' and after
    path = lock_env()
    for _ in range(3):
        login(path, 'alice', 'wrong')
    record = provider_for(path).login()._record
    for _ in range(5):      # queued, as a child does while it is locked
        record('alice', ('192.0.2.1', time.time(), 'locked'))
    trac_admin(path, 'wsgiauth', 'unlock', 'alice')
    assert guard.writer.flush()
    assert login(path, 'alice', 'alice-pw') is True


def test_a_digest_login_of_an_unknown_user_waits_the_failure_delay():
    """Digest: a refusal get_realm_hash makes (an unknown user) waits
    as check_password's do. (A wrong Digest password Apache compares
    itself, unseen: README, Brute force.)"""
    from tracwsgiauth.modwsgi import for_environment

    path = make_env(public_dir(), 'digest',
                    extra_ini='\n[wsgiauth]\nfailure_delay = 1\n'
                              'hash_scheme = htdigest\n')
    get_realm_hash = for_environment(path).get_realm_hash
    environ = {'REMOTE_ADDR': '192.0.2.9', 'REMOTE_PORT': '4000',
               'REQUEST_METHOD': 'GET', 'REQUEST_URI': '/login',
               'wsgi.errors': _Errors()}
    began = time.monotonic()
    assert get_realm_hash(environ, 'no-such-user', 'trac') is None
    assert time.monotonic() - began >= 1
