"""Brute-force protection through a real Apache (three child processes of
ten threads, mod_wsgi, the files `trac-admin ENV deploy` writes): one
account lock for Trac's /login, a Subversion repository of
repositories.conf, Basic, group and Digest locations, shared by every
child process and by AccountManager; the address throttle over IPv4,
IPv6 and mod_remoteip; what a locked account answers, and how fast; what
is written (the database, Apache's error log, the audit log). In-process
tests of the same parts: tests/test_guard.py.

One Apache serves two environments (module fixture `site`):

* ``a`` (/a, /svn/code, /git/tools, /static-a, /group-a, /digest-a):
  accounts lock after MAX failed logins for an hour; no address
  throttle; anonymous may read nothing, so the repositories ask every
  client for a password.
* ``b`` (/b, /static-b, /digest-b): no account lock; an address is
  throttled after THROTTLE failed logins.

Apache listens on 127.0.0.1 and [::1]; mod_remoteip trusts
X-Forwarded-For only from 127.0.0.2 (a "proxy": a client bound to that
source address), which lets a test name any client address, the
IPv4-mapped form too. (Apache -- APR -- already writes a mapped address
it sees as IPv4, from a socket or from mod_remoteip, so through Apache
the mapped form reaches tracwsgiauth only in name; its own folding is
tested in tests/test_guard.py.) Each test uses users of its own; the
throttle tests of b run in file order.
"""

import base64
import http.client
import json
import os
import random
import re
import sqlite3
import statistics
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.harness import (MODULES, Apache, auth_location, curl,
                           deploy_ours, docs_folder, edit_ini, include,
                           make_env,
                           mpm, open_up, public_dir, read_text, secret,
                           trac_admin, trac_env, wait_for)
from tests.repoapache import own, repo_env, send
from tests.repoclients import git, svn

pytestmark = pytest.mark.apache

#: Apache child processes
CHILDREN = 3

#: [account-manager] login_attempt_max_count of environment a
MAX = 8

#: [wsgiauth] address_failures of environment b
THROTTLE = 5

A_USERS = ('mixed', 'flood', 'amuser', 'formuser', 'timed', 'digesty',
           'quiet', 'cachey', 'gina', 'slowed')
B_USERS = ('bob', 'carol')
PW = {name: secret(name + '-Pw7') for name in A_USERS + B_USERS}

#: bcrypt cost of the user `timed` (cost 10 makes the test slow)
TIMED_COST = 8

A_INI = [('account-manager', 'login_attempt_max_count', str(MAX)),
         ('account-manager', 'user_lock_time', '3600'),
         ('wsgiauth', 'hash_scheme', 'htdigest'),
         ('wsgiauth', 'audit_log', 'log/audit.jsonl')]

B_INI = """
[wsgiauth]
hash_scheme = htdigest
address_failures = %d
address_window = 120
address_block_time = 600
audit_log = log/audit.jsonl
""" % THROTTLE

#: what a right login gets (Trac's /login redirects, PROPFIND 207)
ACCEPTED = (200, 207, 302, 303)

#: the fields of every audit line (tracwsgiauth/audit.py)
AUDIT_FIELDS = {'time', 'event', 'environment', 'user_sent', 'user',
                'address', 'location', 'reason'}


class Site(object):
    def __init__(self, apache, a, b, probe_log):
        self.apache, self.a, self.b = apache, a, b
        self.port, self.url = apache.port, apache.url
        self.url6 = 'http://[::1]:%d' % apache.port
        self.probe_log = probe_log


@pytest.fixture(scope='module')
def site():
    parent = public_dir()
    a = repo_env(parent, 'a', svn=['code'], git=['tools'], ini=A_INI,
                 users=[(user, PW[user]) for user in A_USERS])
    deploy_ours(a.path, '--url=/a')
    with trac_env(a.path) as env:
        from trac.perm import PermissionSystem
        perm = PermissionSystem(env)
        for action in ('BROWSER_VIEW', 'FILE_VIEW'):
            perm.revoke_permission('anonymous', action)
            perm.grant_permission('authenticated', action)
        for user in A_USERS:
            perm.grant_permission(user, 'staff')
        # `timed` verifies slowly, so that a cache would show in its time
        from tracwsgiauth import hashes
        cost, hashes.BCRYPT_COST = hashes.BCRYPT_COST, TIMED_COST
        try:
            stored = hashes.make('bcrypt', 'timed', PW['timed'])
        finally:
            hashes.BCRYPT_COST = cost
        with env.db_transaction as db:
            db("UPDATE session_attribute SET value=%s WHERE sid='timed' "
               "AND name='password'", (stored,))
    b_path = make_env(parent, 'b', extra_ini=B_INI)
    with trac_env(b_path) as env:
        from tracwsgiauth.accounts import AuthStore
        for user in B_USERS:
            AuthStore(env).set_password(user, PW[user])
    b_target = deploy_ours(b_path, '--url=/b').target
    docs = os.path.join(parent, 'docs')
    for location in ('static-a', 'group-a', 'digest-a', 'static-b',
                     'digest-b'):
        docs_folder(docs, location)
    for path in (a.path, b_path):
        os.makedirs(os.path.join(path, 'log'), exist_ok=True)
    open_up(parent)
    own(a)
    script_a = os.path.join(a.target, 'cgi-bin', 'trac.wsgi')
    script_b = os.path.join(b_target, 'cgi-bin', 'trac.wsgi')
    probe_log = os.path.join(parent, 'probes.log')
    body = include(a.target, b_target) + \
        'Include "%s/apache/repositories.conf"\n' % a.target + \
        mpm(CHILDREN, 10) + 'DocumentRoot "%s"\n' % docs + \
        auth_location('/static-a', script_a) + \
        auth_location('/group-a', script_a, group='staff') + \
        auth_location('/digest-a', script_a, kind='Digest') + \
        auth_location('/static-b', script_b) + \
        auth_location('/digest-b', script_b, kind='Digest') + \
        ('<IfModule !remoteip_module>\n'
         '    LoadModule remoteip_module %s/mod_remoteip.so\n'
         '</IfModule>\n'
         'RemoteIPHeader X-Forwarded-For\n'
         'RemoteIPInternalProxy 127.0.0.2\n' % MODULES) + \
        'CustomLog "%s" "%%P %%>s %%a %%{X-Twa-Probe}i"\n' % probe_log
    # trac.conf's daemons preload trac.wsgi: they answer group questions
    apache = Apache(body, policy=False)
    with open(apache.conf, 'a') as f:
        f.write('Listen [::1]:%d\n' % apache.port)
    apache.start()
    yield Site(apache, a.path, b_path, probe_log)
    apache.stop()


# -- clients ---------------------------------------------------------------

def ask(site, path, user=None, password=None, host='127.0.0.1', source=None,
        method='GET', headers=None):
    """The status of one request on a new connection to `host`, from
    `source` (a local address) when given."""
    sent = dict(headers or {})
    if method == 'PROPFIND':
        sent['Depth'] = '0'
    if host == '127.0.0.1' and source is None:
        return send(site.port, method, path, user, password,
                    headers=sent).status
    conn = http.client.HTTPConnection(
        host, site.port, timeout=30,
        source_address=(source, 0) if source else None)
    try:
        conn.putrequest(method, path, skip_accept_encoding=True)
        if user is not None:
            token = ('%s:%s' % (user, password)).encode('utf-8')
            sent['Authorization'] = 'Basic ' + \
                base64.b64encode(token).decode('ascii')
        for key, value in sent.items():
            conn.putheader(key, value)
        conn.endheaders()
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


def timed_ask(site, path, user, password):
    start = time.perf_counter()
    status = ask(site, path, user, password)
    return status, time.perf_counter() - start


def digest(url, user, password):
    """The status of a GET with HTTP Digest (curl)."""
    return curl(url, user, password, digest=True,
                extra=['-g'] if '[' in url else [])[0]


def probed(site, token):
    """(pid, status, address) of every logged request carrying `token`."""
    found = []
    for line in read_text(site.probe_log).splitlines():
        parts = line.split()
        if len(parts) == 4 and parts[3] == token:
            found.append((parts[0], int(parts[1]), parts[2]))
    return found


def spread(site, path, user, password, **kw):
    """The same request, on new connections six at a time, until every
    Apache child process has served it; the statuses it got."""
    token = uuid.uuid4().hex
    headers = dict(kw.pop('headers', {}), **{'X-Twa-Probe': token})
    statuses = []
    with ThreadPoolExecutor(6) as pool:
        for _ in range(30):
            statuses += pool.map(lambda _: ask(
                site, path, user, password, headers=headers, **kw), range(6))
            if len({pid for pid, _, _ in probed(site, token)}) >= CHILDREN:
                break
    pids = {pid for pid, _, _ in probed(site, token)}
    assert len(pids) == CHILDREN, 'served by %d children only' % len(pids)
    return statuses


#: where a Basic login of environment a can be sent: Trac's /login, the
#: Subversion repository, a static file, a group location
A_LOCATIONS = [('GET', '/a/login'), ('PROPFIND', '/svn/code/'),
               ('GET', '/static-a/f.txt'), ('GET', '/group-a/f.txt')]


# -- the database and the logs ----------------------------------------------

def account(env_path, user):
    """The session attributes of `user`, read as the database is now."""
    cnx = sqlite3.connect(os.path.join(env_path, 'db', 'trac.db'),
                          timeout=10)
    try:
        return dict(cnx.execute(
            'SELECT name, value FROM session_attribute WHERE sid=? AND '
            'authenticated=1', (user,)).fetchall())
    finally:
        cnx.close()


def failures(env_path, user):
    return int(account(env_path, user).get('failed_logins_count', 0))


def counted(site, user, expected, timeout=15):
    """Wait until the database holds `expected` failed logins of `user`
    (they are written after the answers); the count."""
    wait_for(lambda: failures(site.a, user) >= expected, timeout, 0.05)
    time.sleep(0.3)     # and no more come
    return failures(site.a, user)


def status_of(site, user):
    return trac_admin(site.a, 'wsgiauth', 'status', user).stdout


def warn_lines(site, text):
    """The lines of Apache's error log that contain `text`."""
    return [line for line in site.apache.error_log().splitlines()
            if text in line]


def audit_lines(env_path):
    text = read_text(os.path.join(env_path, 'log', 'audit.jsonl'))
    return [json.loads(line) for line in text.splitlines()]


def lock(site, user, count=MAX, path='/static-a/f.txt'):
    """Lock `user` with `count` wrong passwords, one after the other."""
    for _ in range(count):
        assert ask(site, path, user, 'wrong-password') == 401
    assert counted(site, user, count) == count


def accountguard(env_path):
    """AccountManager's AccountGuard, in-process, enabled as a site with
    AccountManager enables it; (env, guard)."""
    from trac.env import Environment
    env = Environment(env_path)
    env.config.set('components', 'acct_mgr.*', 'enabled')
    from acct_mgr.guard import AccountGuard
    return env, AccountGuard(env)


# -- the account lock --------------------------------------------------------

def refusals(site, user):
    """How many requests carrying credentials of `user` Apache refused
    (401), by its access log."""
    return sum(1 for line in site.apache.access_log().splitlines()
               if '"%s"' % user in line and line.endswith(' 401'))


def svn_ls(site, user, password):
    return svn(['ls', site.url + '/svn/code'], user, password).returncode


def git_ls(site, user, password):
    return git(['ls-remote', site.url + '/git/tools'], user,
               password).returncode


def test_the_lock_engages_after_max_failures_over_mixed_locations(site):
    """Real svn and git clients, Trac's /login, the Subversion repository,
    a static file and a group location, over IPv4 and IPv6: one count,
    in which every refused request carrying the user's credentials counts
    once (svn tries a wrong password three times); the right password is
    refused everywhere once it reaches MAX, Digest included."""
    user, right = 'mixed', PW['mixed']
    for method, path in A_LOCATIONS:
        assert ask(site, path, user, right, method=method) in ACCEPTED, \
            path
    assert svn_ls(site, user, right) == 0
    assert git_ls(site, user, right) == 0
    assert digest(site.url + '/digest-a/f.txt', user, right) == 200
    assert refusals(site, user) == 0
    assert 'failed_logins_count' not in account(site.a, user)
    assert svn_ls(site, user, 'wrong-svn') != 0
    assert git_ls(site, user, 'wrong-git') != 0
    assert 1 < refusals(site, user) < MAX - 1
    assert counted(site, user, refusals(site, user)) == refusals(site, user)
    i = 0
    while refusals(site, user) < MAX:
        method, path = A_LOCATIONS[i % len(A_LOCATIONS)]
        host = ('::1', '127.0.0.1')[i % 2]
        if refusals(site, user) == MAX - 1:
            assert 'locked: no' in status_of(site, user)
        assert ask(site, path, user, 'wrong-%d' % i, host=host,
                   method=method) == 401, path
        i += 1
        assert counted(site, user, refusals(site, user)) == \
            refusals(site, user)
    assert i >= len(A_LOCATIONS)
    attrs = account(site.a, user)
    assert attrs['lock_count'] == '1'
    for host in ('127.0.0.1', '::1'):
        assert "'ipnr': '%s'" % host in attrs['failed_logins']
    assert 'locked: yes, until' in status_of(site, user)
    for method, path in A_LOCATIONS:
        for host in ('127.0.0.1', '::1'):
            assert ask(site, path, user, right, host=host,
                       method=method) == 401, (path, host)
    assert svn_ls(site, user, right) != 0
    assert git_ls(site, user, right) != 0
    assert digest(site.url + '/digest-a/f.txt', user, right) == 401
    assert digest(site.url6 + '/digest-a/f.txt', user, right) == 401
    # right passwords while locked are refused and counted as wrong ones
    # (so that the writes they cause cannot tell them apart): each Basic
    # one above, at least
    assert counted(site, user, MAX + 2 * len(A_LOCATIONS)) >= \
        MAX + 2 * len(A_LOCATIONS)
    assert len(warn_lines(site, "account 'mixed'")) == 1


def test_concurrent_failures_all_count_in_every_child(site):
    """3*MAX wrong passwords at once over all locations: every one is
    counted (the writers batch them, one transaction per account at a
    time per process), the lock engaged exactly at MAX (lock_count grows
    by one per failure from the MAXth on, as AccountGuard's does), the
    failures were served by several child processes and the lock holds
    in all of them."""
    user, sent = 'flood', 3 * MAX
    token = uuid.uuid4().hex

    def wrong(i):
        method, path = A_LOCATIONS[i % len(A_LOCATIONS)]
        return ask(site, path, user, 'wrong-%d' % i, method=method,
                   headers={'X-Twa-Probe': token})
    with ThreadPoolExecutor(sent) as pool:
        assert set(pool.map(wrong, range(sent))) == {401}
    assert counted(site, user, sent) == sent
    attrs = account(site.a, user)
    assert attrs['lock_count'] == str(sent - MAX + 1), attrs
    served = {pid for pid, _, _ in probed(site, token)}
    assert len(served) >= 2, 'all failures went to one child: %s' % served
    right = spread(site, '/static-a/f.txt', user, PW[user]) + \
        spread(site, '/svn/code/', user, PW[user], method='PROPFIND')
    assert set(right) == {401}
    # the right password while locked counts as a wrong one
    assert counted(site, user, sent + len(right)) == sent + len(right)
    lines = warn_lines(site, "account 'flood'")
    assert len(lines) == 1 and '[wsgi:warn]' in lines[0], lines
    assert 'locked after' in lines[0]


def test_accountmanager_sees_the_lock_and_its_unlock_ends_it(site):
    user, right = 'amuser', PW['amuser']
    lock(site, user, path='/group-a/f.txt')
    env, guard = accountguard(site.a)
    try:
        assert guard.user_locked(user)
        assert guard.failed_count(user, reset=None) == MAX
        assert ask(site, '/a/login', user, right) == 401
        # counted as a wrong one (written within a second, while locked)
        assert counted(site, user, MAX + 1) == MAX + 1
        guard.failed_count(user, reset=True)    # AccountManager's unlock
        assert not guard.user_locked(user)
    finally:
        env.shutdown()
    assert ask(site, '/a/login', user, right) in ACCEPTED
    assert ask(site, '/svn/code/', user, right, method='PROPFIND') == 207

    # locked again; `wsgiauth status` and `wsgiauth unlock`
    lock(site, user, path='/svn/code/')
    status = status_of(site, user)
    assert 'failed logins: %d' % MAX in status, status
    assert '127.0.0.1' in status and 'locked: yes, until' in status, status
    assert ask(site, '/static-a/f.txt', user, right) == 401
    assert 'Unlocked amuser.' in trac_admin(site.a, 'wsgiauth', 'unlock',
                                            user).stdout
    assert set(spread(site, '/static-a/f.txt', user, right)) == {200}
    assert 'locked: no' in status_of(site, user)
    env, guard = accountguard(site.a)
    try:
        assert not guard.user_locked(user)
    finally:
        env.shutdown()
    assert len(warn_lines(site, "account 'amuser'")) == 2


def test_a_lock_of_accountmanagers_form_holds_over_http(site):
    """The other way round: failures counted by AccountManager's own
    AccountGuard (its login form) lock every HTTP location."""
    user, right = 'formuser', PW['formuser']
    env, guard = accountguard(site.a)
    try:
        for _ in range(MAX):
            guard.failed_count(user, '192.0.2.3')
            if guard.user_locked(user):
                guard.lock_count(user, 'up')
        assert guard.user_locked(user)
    finally:
        env.shutdown()
    for method, path in A_LOCATIONS:
        assert ask(site, path, user, right, method=method) == 401, path
    assert digest(site.url + '/digest-a/f.txt', user, right) == 401


def test_locked_right_and_wrong_passwords_get_one_answer_in_one_time(site):
    """While locked, the right password is refused like a wrong one, and
    takes as long (medians of 30 each, interleaved): both are verified
    (bcrypt), neither by the verified-credential cache. A cached right
    login of the same hash shows what a cache hit would look like."""
    user, right = 'timed', PW['timed']
    assert ask(site, '/static-a/f.txt', user, right) == 200
    # warm the verified-credential cache of every child, then lock
    assert set(spread(site, '/static-a/f.txt', user, right)) == {200}
    cached = [timed_ask(site, '/static-a/f.txt', user, right)
              for _ in range(30)]
    assert {status for status, _ in cached} == {200}
    lock(site, user)
    # in random order: a wrong password is written after its answer, so
    # the request after it reads the account again (either kind alike)
    order = [True] * 30 + [False] * 30
    random.Random(16).shuffle(order)
    rights, wrongs = [], []
    for i, is_right in enumerate(order):
        status, seconds = timed_ask(site, '/static-a/f.txt', user,
                                    right if is_right else 'wrong-%d' % i)
        assert status == 401
        (rights if is_right else wrongs).append(seconds)
    right_ms = statistics.median(rights) * 1e3
    wrong_ms = statistics.median(wrongs) * 1e3
    cached_ms = statistics.median(s for _, s in cached) * 1e3
    report = ('locked right %.1f ms, locked wrong %.1f ms, unlocked '
              'cached right %.1f ms' % (right_ms, wrong_ms, cached_ms))
    print(report)
    assert 1 / 1.5 < right_ms / wrong_ms < 1.5, report
    # the locked right password is verified for real, not by the cache
    assert right_ms > 1.5 * cached_ms, report


def test_digest_is_refused_while_locked(site):
    """Digest failures are compared by mod_auth_digest and cannot be
    counted; the lock reached otherwise refuses Digest too, and its end
    lets Digest in again."""
    user, right = 'digesty', PW['digesty']
    url = site.url + '/digest-a/f.txt'
    assert digest(url, user, right) == 200
    for _ in range(3):
        assert digest(url, user, 'wrong-password') == 401
    time.sleep(0.5)
    assert 'failed_logins_count' not in account(site.a, user)
    lock(site, user)
    assert digest(url, user, right) == 401
    assert digest(site.url6 + '/digest-a/f.txt', user, right) == 401
    trac_admin(site.a, 'wsgiauth', 'unlock', user)
    assert digest(url, user, right) == 200


def test_the_credential_cache_never_lets_a_locked_account_in(site):
    user, right = 'cachey', PW['cachey']
    for path in ('/static-a/f.txt', '/group-a/f.txt'):
        assert set(spread(site, path, user, right)) == {200}
    lock(site, user)
    for path in ('/static-a/f.txt', '/group-a/f.txt'):
        assert set(spread(site, path, user, right)) == {401}
    assert set(spread(site, '/static-a/f.txt', user, right,
                      host='::1')) == {401}


def test_right_logins_write_nothing(site):
    """50 right logins (Basic on a file, a group location, the
    repository, Digest) leave the database as it was: PRAGMA
    data_version of a connection opened before does not move. (Trac's
    own /login writes its session cookie: not counted here.)"""
    user, right = 'quiet', PW['quiet']
    cnx = sqlite3.connect(os.path.join(site.a, 'db', 'trac.db'))
    try:
        def version():
            return cnx.execute('PRAGMA data_version').fetchone()[0]
        # the writers of earlier tests are done
        assert wait_for(lambda: _steady(version), 20, 0)
        before = version()
        cases = [('GET', '/static-a/f.txt'), ('GET', '/group-a/f.txt'),
                 ('PROPFIND', '/svn/code/'), ('GET', '/svn/code/')]
        with ThreadPoolExecutor(4) as pool:
            statuses = list(pool.map(lambda i: ask(
                site, cases[i % 4][1], user, right,
                method=cases[i % 4][0]), range(45)))
        assert set(statuses) <= {200, 207}, statuses
        for _ in range(5):
            assert digest(site.url + '/digest-a/f.txt', user, right) == 200
        time.sleep(1)
        assert version() == before, 'a right login wrote to the database'
    finally:
        cnx.close()


def _steady(version):
    first = version()
    time.sleep(1)
    return version() == first


def test_audit_log_and_warn_lines_of_environment_a(site):
    """One JSON line per refused login and lock, with the fields of
    audit.py, never a password; the warn lines name the user and never
    a password."""
    user = 'gina'
    lock(site, user)
    assert ask(site, '/static-a/f.txt', user, PW[user]) == 401
    assert ask(site, '/static-a/f.txt', 'CORP\\nobody-here', 'x-pw') == 401
    time.sleep(0.5)
    lines = audit_lines(site.a)
    for line in lines:
        assert set(line) == AUDIT_FIELDS, line
        assert line['environment'] == site.a
        assert re.match(r'\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$', line['time'])
    mine = [line for line in lines if line['user'] == user]
    refused = [line for line in mine if line['event'] == 'refused']
    assert [line['reason'] for line in refused] == \
        ['wrong password'] * MAX + ['account locked after failed logins']
    assert all(line['location'] == '/static-a/f.txt' and
               line['address'] == '127.0.0.1' and line['user_sent'] == user
               for line in refused), refused
    locked = [line for line in mine if line['event'] == 'locked']
    assert len(locked) == 1 and locked[0]['address'] == '127.0.0.1'
    unknown = [line for line in lines if line['user_sent'] ==
               'CORP\\nobody-here']
    assert [line['reason'] for line in unknown] == ['unknown user']
    # every refused request of the module so far has its line
    flood = [line for line in lines if line['user'] == 'flood' and
             line['event'] == 'refused']
    assert len(flood) >= 3 * MAX
    text = read_text(os.path.join(site.a, 'log', 'audit.jsonl'))
    log = site.apache.error_log()
    for password in PW.values():
        assert password not in text and password not in log
    assert 'wrong-password' not in text and 'wrong-password' not in log
    [warn] = warn_lines(site, "account 'gina'")
    assert re.search(r'\[wsgi:warn\].*tracwsgiauth: account .gina. of '
                     + re.escape(site.a) + r' locked after %d failed' % MAX,
                     warn), warn


# -- the address throttle ----------------------------------------------------

def fail_from(site, count, **kw):
    """`count` failed logins of unknown users on environment b, sent as
    `ask` sends them (`kw`: host, source, headers)."""
    for i in range(count):
        assert ask(site, '/static-b/f.txt', 'ghost%d' % i, 'x-pw',
                   **kw) == 401


def test_an_address_is_throttled_for_every_user_others_are_not(site):
    """THROTTLE failures from 127.0.0.1 (unknown users count, and a
    header the client sends is not believed) refuse every login from it,
    for every user and location, Digest too; ::1 and the address a
    trusted proxy (mod_remoteip) names keep logging in; one warn line."""
    right = PW['bob']
    for host in ('127.0.0.1', '::1'):
        assert ask(site, '/static-b/f.txt', 'bob', right, host=host) == 200
    xff = {'X-Forwarded-For': '192.0.2.99'}
    fail_from(site, THROTTLE - 1, headers=xff)
    assert ask(site, '/b/login', 'carol', 'wrong-password',
               headers=xff) == 401
    assert wait_for(lambda: ask(site, '/static-b/f.txt', 'bob',
                                right) == 401, 10, 0.1)
    assert set(spread(site, '/static-b/f.txt', 'carol', PW['carol'])) \
        == {401}
    assert set(spread(site, '/b/login', 'bob', right)) == {401}
    assert digest(site.url + '/digest-b/f.txt', 'bob', right) == 401
    # another address is not throttled
    assert ask(site, '/static-b/f.txt', 'bob', right, host='::1') == 200
    assert digest(site.url6 + '/digest-b/f.txt', 'bob', right) == 200
    # nor is the address the client's own header named
    assert ask(site, '/static-b/f.txt', 'bob', right, source='127.0.0.2',
               headers=xff) == 200
    [line] = warn_lines(site, 'address 127.0.0.1 throttled')
    assert '[wsgi:warn]' in line and 'tracwsgiauth' in line
    # environment a does not throttle: its own options
    assert ask(site, '/static-a/f.txt', 'quiet', PW['quiet']) == 200


def test_ipv6_and_mapped_ipv4_addresses_are_throttled(site):
    right = PW['bob']
    # through the trusted proxy: the mapped form counts for the address
    mapped = {'X-Forwarded-For': '::ffff:198.51.100.7'}
    fail_from(site, THROTTLE, source='127.0.0.2', headers=mapped)

    def refused(address):
        return ask(site, '/static-b/f.txt', 'bob', right, source='127.0.0.2',
                   headers={'X-Forwarded-For': address}) == 401
    assert wait_for(lambda: refused('198.51.100.7'), 10, 0.1)
    assert all(refused('198.51.100.7') and refused('::ffff:198.51.100.7')
               for _ in range(6))
    assert not refused('198.51.100.8')
    assert len(warn_lines(site, 'address 198.51.100.7 throttled')) == 1
    # IPv6 loopback
    fail_from(site, THROTTLE, host='::1')
    assert wait_for(lambda: ask(site, '/static-b/f.txt', 'bob', right,
                                host='::1') == 401, 10, 0.1)
    assert set(spread(site, '/static-b/f.txt', 'carol', PW['carol'],
                      host='::1')) == {401}
    assert digest(site.url6 + '/digest-b/f.txt', 'bob', right) == 401
    assert len(warn_lines(site, 'address ::1 throttled')) == 1
    assert not refused('198.51.100.8')


def test_audit_log_of_the_throttle(site):
    """Environment b's audit log after the throttle tests: one
    ``throttled`` line per throttled address, addresses in one form,
    the refusals with their reasons, no password."""
    lines = audit_lines(site.b)
    for line in lines:
        assert set(line) == AUDIT_FIELDS, line
    throttled = [line['address'] for line in lines
                 if line['event'] == 'throttled']
    assert len(throttled) == len(set(throttled)), throttled
    assert {'198.51.100.7', '::1'} <= set(throttled), throttled
    addresses = {line['address'] for line in lines}
    assert not {a for a in addresses if a.startswith('::ffff:')}, addresses
    assert '192.0.2.99' not in addresses
    reasons = {line['reason'] for line in lines if line['event'] ==
               'refused'}
    assert {'unknown user', 'address throttled'} <= reasons, reasons
    text = read_text(os.path.join(site.b, 'log', 'audit.jsonl'))
    assert PW['bob'] not in text and PW['carol'] not in text
    assert 'x-pw' not in text


def test_a_throttled_address_is_refused_by_every_child_at_once(site):
    """Right after the throttle engages, every child process refuses the
    address, also those that reported its failures before the report
    that throttled it, or none at all."""
    address = {'X-Forwarded-For': '203.0.113.21'}
    fail_from(site, THROTTLE, source='127.0.0.2', headers=address)

    def refused():
        return ask(site, '/static-b/f.txt', 'bob', PW['bob'],
                   source='127.0.0.2', headers=address) == 401
    assert wait_for(refused, 10, 0.1)
    statuses = spread(site, '/static-b/f.txt', 'carol', PW['carol'],
                      source='127.0.0.2', headers=address)
    assert set(statuses) == {401}, (
        'BUG: a throttled address still logs in on the child processes '
        'that did not send the report that throttled it (they learn it '
        'only from the answer to a later failure of their own): %s'
        % statuses)


def test_the_throttle_warn_line_names_the_count_and_the_window(site):
    """Issue 16: the warn line of a throttle gives the address, the
    count and the window (as the lock's line gives its count)."""
    address = {'X-Forwarded-For': '203.0.113.22'}
    fail_from(site, THROTTLE, source='127.0.0.2', headers=address)
    assert wait_for(lambda: warn_lines(
        site, 'address 203.0.113.22 throttled'), 10, 0.1)
    [line] = warn_lines(site, 'address 203.0.113.22 throttled')
    assert '[wsgi:warn]' in line
    assert re.search(r'\b%d failed logins\b' % THROTTLE, line) and \
        re.search(r'\b120 ?s', line), (
            'BUG: the warn line of a throttle names neither the count of '
            'failures nor the window: %s' % line)


def test_a_locked_accounts_digest_login_is_audited(site):
    """A Digest login that tracwsgiauth refuses (get_realm_hash answers
    no hash: the account is locked) is a refused login like a Basic one:
    one audit line."""
    user = 'digesty'
    if 'locked: yes' not in status_of(site, user):
        lock(site, user)
    before = len(audit_lines(site.a))
    assert digest(site.url + '/digest-a/f.txt', user, PW[user]) == 401
    time.sleep(0.3)
    new = audit_lines(site.a)[before:]
    assert [(line['event'], line['location']) for line in new] == \
        [('refused', '/digest-a/f.txt')], (
            'BUG: a Digest login refused because the account is locked '
            'leaves no audit line: %s' % new)


# -- the failure delay -----------------------------------------------------

def test_refused_logins_wait_and_a_guesser_slows_down_to_its_connections(
        site):
    """With ``failure_delay = 1`` (the default; the other tests turn it
    off), every refusal waits a second before its answer -- a wrong
    password, an unknown user, a locked account's right password -- and
    a right login does not; eight connections guessing for three seconds
    get at most 8 x (3 + 1) answers, all refusals, each counted."""
    user, path = 'slowed', '/static-a/f.txt'
    edit_ini(site.a, 'wsgiauth', 'failure_delay', '1')
    try:
        for sent, password in ((user, 'wrong'), ('nobody-xyz', 'wrong')):
            status, seconds = timed_ask(site, path, sent, password)
            assert status == 401 and seconds >= 1.0, (sent, seconds)
        status, seconds = timed_ask(site, path, user, PW[user])
        assert status == 200 and seconds < 0.9, seconds
        deadline = time.monotonic() + 3

        def guess(n):
            statuses = []
            while time.monotonic() < deadline:
                statuses.append(ask(site, path, user, 'guess-%d' % n))
            return statuses
        with ThreadPoolExecutor(8) as pool:
            answers = [s for got in pool.map(guess, range(8)) for s in got]
        assert set(answers) == {401} and 8 <= len(answers) <= 32, answers
        # every guess counted (the right login before ended the count)
        assert counted(site, user, len(answers)) == len(answers)
        status, seconds = timed_ask(site, path, user, PW[user])
        assert status == 401 and seconds >= 1.0, seconds   # locked
    finally:
        edit_ini(site.a, 'wsgiauth', 'failure_delay', '0')
        trac_admin(site.a, 'wsgiauth', 'unlock', user)
