"""Faults under a real Apache: an unreadable or locked SQLite database, an
unreadable or changed trac.ini, an environment needing an upgrade, and
changes made by another process, with and without the credential cache.
Every fault refuses (401) with one clear line in the error log, never lets
anybody in, and heals by itself once the cause is gone."""

import os
import sqlite3
import subprocess
import sys
import time

import pytest
from trac.perm import PermissionSystem

from tests.harness import (Apache, auth_location, auth_script, basic_get,
                           docs_folder, edit_ini, make_env, open_up,
                           public_dir, secret, set_password, trac_env)
from tracwsgiauth.accounts import AuthStore

pytestmark = pytest.mark.apache

NAMES = ['unreadable_db', 'unreadable_ini', 'upgrade', 'ini_change',
         'locked', 'cached', 'uncached']


@pytest.fixture(scope='module')
def site():
    parent = public_dir()
    paths = {}
    docs = docs_folder(parent)
    body = 'AliasMatch "^/([a-z_]+)/f.txt" "%s/f.txt"\n' % docs
    for name in NAMES:
        extra = '\n[wsgiauth]\nhash_scheme = sha512\n'
        if name == 'uncached':
            extra += 'cache_size = 0\n'
        database = 'sqlite:db/trac.db?timeout=1' if name == 'locked' \
            else None
        path = make_env(parent, name, extra_ini=extra, database=database)
        set_password(path, 'alice', 'alice-pw', 'developers')
        set_password(path, 'bob', 'bob-pw', 'developers')
        paths[name] = path
        script = auth_script(os.path.join(parent, name + '.wsgi'), path)
        body += auth_location('/' + name, script, group='developers')
    open_up(parent)
    # faults present before Apache first opens these environments
    os.chmod(os.path.join(paths['unreadable_db'], 'db', 'trac.db'), 0)
    os.chmod(os.path.join(paths['unreadable_ini'], 'conf', 'trac.ini'), 0)
    with sqlite3.connect(os.path.join(paths['upgrade'], 'db',
                                      'trac.db')) as db:
        db.execute("UPDATE system SET value=CAST(value AS INTEGER) - 1 "
                   "WHERE name='database_version'")
    apache = Apache(body).start()
    apache.paths = paths
    yield apache
    apache.stop()


def login(site, name, password='alice-pw', user='alice'):
    return basic_get(site.port, '/%s/f.txt' % name, user, password)[0]


def refusal_lines(site, name, what='login'):
    return [line for line in site.error_log().splitlines()
            if 'tracwsgiauth: %s refused for environment %s:'
            % (what, site.paths[name]) in line]


@pytest.mark.parametrize('name, path, mode, cause', [
    ('unreadable_db', ('db', 'trac.db'), 0o666,
     'unable to open database file: %s/db/trac.db'),
    ('unreadable_ini', ('conf', 'trac.ini'), 0o666,
     "Permission denied: '%s/conf/trac.ini'"),
])
def test_unreadable_file_refuses_then_heals(site, name, path, mode, cause):
    assert [login(site, name) for _ in range(3)] == [401] * 3
    lines = refusal_lines(site, name)
    cause = cause % site.paths[name]
    assert len(lines) == 3 and all(cause in line for line in lines), lines
    os.chmod(os.path.join(site.paths[name], *path), mode)
    assert login(site, name) == 200
    assert login(site, name, 'wrong') == 401


def test_environment_needing_upgrade_refuses_then_heals(site):
    # Apache's children read the account tables, which an upgrade leaves
    # alone; Trac's own process, which answers group checks, refuses
    assert login(site, 'upgrade') == 401
    assert not refusal_lines(site, 'upgrade')
    [line] = refusal_lines(site, 'upgrade', 'group check')
    assert 'needs to be upgraded' in line
    with sqlite3.connect(os.path.join(site.paths['upgrade'], 'db',
                                      'trac.db')) as db:
        db.execute("UPDATE system SET value=CAST(value AS INTEGER) + 1 "
                   "WHERE name='database_version'")
    assert login(site, 'upgrade') == 200


def test_trac_ini_changes_count_on_the_next_request(site):
    path = site.paths['ini_change']
    assert login(site, 'ini_change', user='CORP\\alice') == 401
    edit_ini(path, 'wsgiauth', 'strip_domains', 'CORP')
    assert login(site, 'ini_change', user='CORP\\alice') == 200
    edit_ini(path, 'components', 'tracwsgiauth.*', 'disabled')
    assert login(site, 'ini_change') == 401
    assert 'NotEnabled: tracwsgiauth is not enabled' in \
        refusal_lines(site, 'ini_change')[-1]
    edit_ini(path, 'components', 'tracwsgiauth.*', 'enabled')
    assert login(site, 'ini_change') == 200


LOCKER = '''
import sqlite3, sys, time
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute('BEGIN EXCLUSIVE')
db.execute("UPDATE session_attribute SET value='{SHA}changed' "
           "WHERE sid='alice' AND name='password'")
print('locked', flush=True)
time.sleep(float(sys.argv[2]))
db.execute('ROLLBACK')
'''


def test_database_locked_by_a_long_writer(site):
    # bob's rows were never read; alice's were, before the writer began,
    # and a child that kept them may answer from them: they are the last
    # committed ones (the writer has committed nothing)
    db = os.path.join(site.paths['locked'], 'db', 'trac.db')
    assert login(site, 'locked') == 200
    locker = subprocess.Popen([sys.executable, '-c', LOCKER, db, '4'],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert locker.stdout.readline().strip() == 'locked'
        started = time.time()
        during = [login(site, 'locked', 'bob-pw', 'bob') for _ in range(2)]
        assert time.time() - started < 4   # waited about 1 s each
        assert during == [401, 401]
        alice = login(site, 'locked')
        assert alice in (200, 401)
        lines = refusal_lines(site, 'locked')
        assert len(lines) == 2 + (alice == 401)
        assert all('database is locked' in line for line in lines)
    finally:
        locker.wait(10)
    assert login(site, 'locked') == 200
    assert login(site, 'locked', 'bob-pw', 'bob') == 200


@pytest.mark.parametrize('name', ['cached', 'uncached'])
def test_changes_by_another_process_count_at_once(site, name):
    path = site.paths[name]

    def change(fn):
        with trac_env(path) as env:
            fn(env)

    assert login(site, name) == 200
    assert login(site, name) == 200       # now cached where the cache is on
    change(lambda env: AuthStore(env).set_password('alice',
                                                        secret('new-pw')))
    assert login(site, name) == 401
    assert login(site, name, 'new-pw') == 200
    change(lambda env: PermissionSystem(env).revoke_permission(
        'alice', 'developers'))
    assert login(site, name, 'new-pw') == 401
    change(lambda env: PermissionSystem(env).grant_permission(
        'alice', 'developers'))
    assert login(site, name, 'new-pw') == 200
    change(lambda env: env.db_transaction(
        "INSERT INTO session_attribute VALUES "
        "('alice', 1, 'approval', 'revoked')"))
    assert login(site, name, 'new-pw') == 401
    change(lambda env: env.db_transaction(
        "DELETE FROM session_attribute WHERE name='approval'"))
    assert login(site, name, 'new-pw') == 200
    change(lambda env: env.db_transaction(
        "INSERT INTO session_attribute VALUES "
        "('alice', 1, 'failed_logins_count', '9')"))
    edit_ini(path, 'account-manager', 'login_attempt_max_count', '3')
    assert login(site, name, 'new-pw') == 401          # locked
    change(lambda env: AuthStore(env).delete_password('alice'))
    assert login(site, name, 'new-pw') == 401
    assert not refusal_lines(site, name)
