"""An outside review's attacks on the accepted-login memo
(`tracwsgiauth.outcomes`) through a real Apache with three child
processes and real concurrent HTTP clients.

Each race keeps clients (new connections and kept-alive ones, GET and
HEAD, wrong passwords interleaved) sending a credential every child has
remembered accepted, while a change is made (trac-admin, or Trac's API
in this process); every request that STARTED after the change returned
must get the new answer, and the requests after it must have been
served by every child. The memo held; the review found that failures a
child queued while an account was locked were written after an
administrator's unlock and locked it again (`guard._apply`, fixed)."""

import base64
import http.client
import itertools
import os
import sqlite3
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.harness import (Apache, auth_location, auth_script, docs_folder,
                           make_env, mpm, open_up, public_dir, read_text,
                           secret, set_password, trac_admin, trac_env)
from tracwsgiauth.accounts import AuthStore
from tracwsgiauth.apppasswords import AppPasswords

pytestmark = pytest.mark.apache

CHILDREN = 3

ENVS = {
    'passwd': '',
    'perm': '',
    'approval': '',
    'app': 'app_passwords_everywhere = true\n',
    'remove': '',
    'names': 'strip_domains = CORP\n',
    'ini': 'strip_domains = CORP\n',
    'wal': '',
    'lock': '\n[account-manager]\nlogin_attempt_max_count = 3\n'
            'user_lock_time = 0\n',
}


class Site(object):
    pass


@pytest.fixture(scope='module')
def site():
    parent = public_dir()
    docs = docs_folder(parent)
    body = 'AliasMatch "^/([a-z_]+)/f.txt" "%s/f.txt"\n' % docs
    paths = {}
    for name, extra in ENVS.items():
        ini = '\n[wsgiauth]\nhash_scheme = sha512\n' + extra
        path = make_env(parent, name, extra_ini=ini)
        if name == 'names':
            with trac_env(path) as env:
                env.config.set('trac', 'ignore_auth_case', 'true')
                env.config.save()
        set_password(path, 'alice', 'alice-pw', 'developers')
        set_password(path, 'bob', 'bob-pw', 'developers')
        if name == 'names':
            set_password(path, 'jürgen', 'jürgen-pw', 'developers')
        paths[name] = path
        script = auth_script(os.path.join(parent, name + '.wsgi'), path)
        body += auth_location('/' + name, script, group='developers')
    open_up(parent)
    s = Site()
    s.probe_log = os.path.join(parent, 'probes.log')
    body += mpm(CHILDREN, 10, steady=True) + (
        'CustomLog "%s" "%%P %%>s %%{X-Twa-Probe}i"\n' % s.probe_log)
    s.apache = Apache(body).start()
    s.port, s.paths = s.apache.port, paths
    yield s
    s.apache.stop()


# -- clients --------------------------------------------------------------

def auth(user, password):
    raw = (user.encode('utf-8') if isinstance(user, str) else user) + b':' + \
        (password.encode('utf-8') if isinstance(password, str)
         else password)
    return 'Basic ' + base64.b64encode(raw).decode('ascii')


def one(conn, name, user, password, method='GET', probe=None):
    """The status of one request on `conn` (kept open when Apache keeps
    it)."""
    headers = {'Authorization': auth(user, password)}
    if probe:
        headers['X-Twa-Probe'] = probe
    conn.request(method, '/%s/f.txt' % name, headers=headers)
    response = conn.getresponse()
    response.read()
    if response.will_close:
        conn.close()
    return response.status


def fresh(site):
    return http.client.HTTPConnection('127.0.0.1', site.port, timeout=30)


def status(site, name, user, password, method='GET', probe=None):
    conn = fresh(site)
    try:
        return one(conn, name, user, password, method, probe)
    finally:
        conn.close()


def pids(site, prefix):
    """{probe: pid} of the logged requests whose probe starts with
    `prefix`."""
    found = {}
    for line in read_text(site.probe_log).splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[2].startswith(prefix):
            found[parts[2]] = parts[0]
    return found


def spread(site, name, user, password, times=2):
    """The same request on new connections, six at a time, until every
    child served it `times` times at least; the statuses."""
    prefix = uuid.uuid4().hex
    counter = itertools.count()
    statuses = []
    with ThreadPoolExecutor(6) as pool:
        for _ in range(40):
            statuses += pool.map(
                lambda _: status(site, name, user, password,
                                 probe='%s-%d' % (prefix, next(counter))),
                range(6))
            time.sleep(0.05)    # the access log is written after
            served = list(pids(site, prefix).values())
            if len(set(served)) >= CHILDREN and all(
                    served.count(p) >= times for p in set(served)):
                break
    assert len(set(pids(site, prefix).values())) == CHILDREN
    return statuses


def hammer(site, name, user, password, stop, out, keepalive, race,
           wrong_every=0):
    """Send the credential until `stop`; append (start, end, status,
    probe, method, right) to `out`. With `keepalive`, one connection is
    reused (HEAD every third request, a wrong password every
    `wrong_every`)."""
    conn = None
    for i in itertools.count():
        if stop.is_set():
            break
        if conn is None:
            conn = fresh(site)
        wrong = keepalive and wrong_every and i % wrong_every == 1
        method = 'HEAD' if keepalive and i % 3 == 2 else 'GET'
        probe = '%s-%s' % (race, uuid.uuid4().hex)
        started = time.monotonic()
        try:
            got = one(conn, name, user, 'not-' + password if wrong
                      else password, method, probe)
        except (http.client.HTTPException, OSError):
            got = None          # a kept connection Apache closed
            conn.close()
        out.append((started, time.monotonic(), got, probe, method,
                    not wrong))
        if not keepalive or conn.sock is None:
            conn.close()
            conn = None
    if conn is not None:
        conn.close()


def race(site, name, creds, change, after, before=None, settle=1.0,
         wrong_every=5):
    """Hammer every (user, password) of `creds` at location `name` (two
    clients on new connections, one kept alive, each), run `change()`
    meanwhile; the wrong answers: requests with the right password that
    started after `change` returned and did not get `after[i]` (or that
    ended before it began and did not get `before[i]`), and any 5xx."""
    before = before or [200] * len(creds)
    for (user, password), expected in zip(creds, before, strict=True):
        if expected == 200:
            spread(site, name, user, password)
    tag = uuid.uuid4().hex[:12]
    stop = threading.Event()
    results = [[] for _ in creds]
    threads = []
    for i, (user, password) in enumerate(creds):
        for keepalive in (False, False, True):
            threads.append(threading.Thread(target=hammer, args=(
                site, name, user, password, stop, results[i], keepalive,
                tag, wrong_every if keepalive else 0)))
    for t in threads:
        t.start()
    try:
        time.sleep(0.4)
        began = time.monotonic()
        change()
        done = time.monotonic()
        time.sleep(settle)
    finally:
        stop.set()
        for t in threads:
            t.join(30)
    time.sleep(0.1)
    served = pids(site, tag)
    wrong, after_pids = [], set()
    for i, found in enumerate(results):
        for started, ended, got, probe, method, right in found:
            label = '%s %s:%s %s' % (method, creds[i][0], 'right' if right
                                     else 'wrong', probe[-6:])
            if got is not None and got >= 500:
                wrong.append('%s got %d' % (label, got))
            if not right:
                if got not in (None, 401):
                    wrong.append('%s (wrong password) got %s' % (label, got))
                continue
            if started > done and got is not None:
                after_pids.add(served.get(probe))
                if got != after[i]:
                    wrong.append('%s started %.3f s after the change returned'
                                 ' (took %.3f s), got %d, not %d (child %s)'
                                 % (label, started - done, done - began, got,
                                    after[i], served.get(probe)))
            elif ended < began and got is not None and got != before[i]:
                wrong.append('%s before the change got %d' % (label, got))
    counts = [sum(1 for r in found if r[0] > done and r[2] is not None)
              for found in results]
    assert all(counts), counts
    after_pids.discard(None)
    return wrong, after_pids


def assert_race(site, *args, **kw):
    wrong, served = race(site, *args, **kw)
    assert not wrong, wrong[:8]
    assert len(served) == CHILDREN, served


def sql(path, statement, args=()):
    with trac_env(path) as env:
        env.db_transaction(statement, args)


# -- the races ------------------------------------------------------------

def test_new_password_by_trac_admin_while_clients_hammer(site):
    """trac-admin wsgiauth passwd while old-password clients hammer every
    child: no request started after it returned is accepted with the old
    password, the new one is accepted in every child, bob unaffected."""
    path = site.paths['passwd']
    assert_race(site, 'passwd', [('alice', 'alice-pw'), ('bob', 'bob-pw')],
                lambda: trac_admin(path, 'wsgiauth', 'passwd', 'alice',
                                   stdin='alice-new\nalice-new\n'),
                after=[401, 200])
    assert set(spread(site, 'passwd', 'alice', 'alice-pw', 1)) == {401}
    assert set(spread(site, 'passwd', 'alice', 'alice-new', 1)) == {200}


def test_permission_removed_then_added_while_clients_hammer(site):
    """trac-admin permission remove (the location needs the group) and
    add again, while the same credential hammers."""
    path = site.paths['perm']
    creds = [('alice', 'alice-pw')]
    assert_race(site, 'perm', creds,
                lambda: trac_admin(path, 'permission', 'remove', 'alice',
                                   'developers'), after=[401])
    assert_race(site, 'perm', creds,
                lambda: trac_admin(path, 'permission', 'add', 'alice',
                                   'developers'), before=[401], after=[200])


@pytest.mark.parametrize('state', ['pending', 'revoked'])
def test_approval_set_and_cleared_while_clients_hammer(site, state):
    """An account approval set to pending/revoked (session_attribute),
    then removed, while the credential hammers."""
    path = site.paths['approval']
    creds = [('alice', 'alice-pw'), ('bob', 'bob-pw')]
    assert_race(site, 'approval', creds, lambda: sql(
        path, "INSERT INTO session_attribute VALUES "
        "('alice', 1, 'approval', %s)", (state,)), after=[401, 200])
    assert_race(site, 'approval', creds, lambda: sql(
        path, "DELETE FROM session_attribute WHERE name='approval'"),
        before=[401, 200], after=[200, 200])


def test_app_password_revoked_while_clients_hammer(site):
    """An app password (accepted at this location) revoked through
    AppPasswords.revoke while it hammers; the account password and a
    second app password keep working."""
    path = site.paths['app']
    with trac_env(path) as env:
        first, first_pw = AppPasswords(env).create('alice', 'ci', 'read')
        _, second_pw = AppPasswords(env).create('alice', 'ci2', 'commit')
    secret(first_pw), secret(second_pw)

    def revoke():
        with trac_env(path) as env:
            assert AppPasswords(env).revoke(first)
    assert_race(site, 'app', [('alice', first_pw), ('alice', second_pw),
                              ('alice', 'alice-pw')], revoke,
                after=[401, 200, 200])


def test_user_removed_by_trac_admin_while_clients_hammer(site):
    """trac-admin wsgiauth remove alice while alice hammers."""
    path = site.paths['remove']
    assert_race(site, 'remove', [('alice', 'alice-pw'), ('bob', 'bob-pw')],
                lambda: trac_admin(path, 'wsgiauth', 'remove', 'alice'),
                after=[401, 200])


def test_kept_alive_connection_mixing_right_wrong_head_and_names(site):
    """One kept-alive connection: the same request twice, HEAD and GET,
    a wrong password between right ones, another user's right password,
    the domain and upper-case forms and a Latin-1-encoded non-ASCII name
    all get their own answer, each request on its own."""
    conn = fresh(site)
    jl = 'jürgen'.encode('latin-1')
    try:
        cases = [('alice', 'alice-pw', 'GET', 200),
                 ('alice', 'alice-pw', 'GET', 200),
                 ('alice', 'alice-pwx', 'GET', 401),
                 ('alice', 'alice-pw', 'HEAD', 200),
                 ('alice', 'bob-pw', 'HEAD', 401),
                 ('bob', 'alice-pw', 'GET', 401),
                 ('bob', 'bob-pw', 'GET', 200),
                 ('CORP\\alice', 'alice-pw', 'GET', 200),
                 ('OTHER\\alice', 'alice-pw', 'GET', 401),
                 ('ALICE', 'alice-pw', 'HEAD', 200),
                 ('jürgen', 'jürgen-pw', 'GET', 200),
                 (jl, 'jürgen-pw'.encode('latin-1'), 'GET', 200),
                 (jl, 'jürgen-pw', 'GET', 200),     # each read alone
                 ('jürgen', 'jürgen-p', 'GET', 401),
                 ('alice', 'alice-pw', 'GET', 200)] * 3
        got = []
        for user, password, method, _ in cases:
            if conn.sock is None and got:
                conn = fresh(site)
            got.append(one(conn, 'names', user, password, method))
        assert got == [c[3] for c in cases]
    finally:
        conn.close()


def test_name_forms_and_non_ascii_user_while_password_changes(site):
    """DOMAIN\\user, upper case (strip_domains, ignore_auth_case) and a
    UTF-8 non-ASCII name, each remembered under its own wire form: a new
    password of alice (then of jürgen, given in upper case to
    trac-admin) refuses every form at once in every child."""
    path = site.paths['names']
    forms = ['alice', 'CORP\\alice', 'ALICE', 'corp\\Alice']
    assert_race(site, 'names', [(f, 'alice-pw') for f in forms],
                lambda: trac_admin(path, 'wsgiauth', 'passwd', 'CORP\\ALICE',
                                   stdin='alice-2\nalice-2\n'),
                after=[401] * 4)
    forms = ['jürgen', 'CORP\\jürgen', 'JÜRGEN']
    assert_race(site, 'names', [(f, 'jürgen-pw') for f in forms] +
                [('alice', 'alice-2')],
                lambda: trac_admin(path, 'wsgiauth', 'passwd', 'JÜRGEN',
                                   stdin='jürgen-2\njürgen-2\n'),
                after=[401] * 3 + [200])
    for form in forms:
        assert set(spread(site, 'names', form, 'jürgen-2', 1)) == {200}


def test_trac_ini_edits_while_clients_hammer(site):
    """trac-admin config set while CORP\\alice hammers: strip_domains
    emptied refuses the domain form at once; cache_size = 0 changes no
    answer; a password change after it counts at once."""
    path = site.paths['ini']
    creds = [('CORP\\alice', 'alice-pw'), ('alice', 'alice-pw')]
    assert_race(site, 'ini', creds,
                lambda: trac_admin(path, 'config', 'set', 'wsgiauth',
                                   'strip_domains', ''), after=[401, 200])
    assert_race(site, 'ini', creds[1:],
                lambda: trac_admin(path, 'config', 'set', 'wsgiauth',
                                   'cache_size', '0'), after=[200])
    assert_race(site, 'ini', creds[1:],
                lambda: trac_admin(path, 'wsgiauth', 'passwd', 'alice',
                                   stdin='alice-3\nalice-3\n'),
                after=[401])
    assert_race(site, 'ini', [('alice', 'alice-3')],
                lambda: trac_admin(path, 'config', 'set', 'wsgiauth',
                                   'cache_size', '1000'), after=[200])


def test_switch_to_wal_while_clients_hammer(site):
    """The database switched to WAL mode under load (SQLite's PRAGMA,
    waiting for the readers: Trac's own switch at connect gives up at
    once while children read) and [trac] database set to
    journal_mode=WAL, a password changed in WAL mode: each new password
    counts at once in every child. (Back to DELETE cannot be had while
    Apache's children keep connections open: SQLite needs them gone.)"""
    path = site.paths['wal']
    db = os.path.join(path, 'db', 'trac.db')

    def journal(mode):
        cnx = sqlite3.connect(db, timeout=20, isolation_level=None)
        try:
            assert cnx.execute('PRAGMA journal_mode=%s' % mode).fetchone() \
                == (mode.lower(),)
        finally:
            cnx.close()
        trac_admin(path, 'config', 'set', 'trac', 'database',
                   'sqlite:db/trac.db?journal_mode=%s' % mode)

    def to_wal():
        journal('WAL')
        trac_admin(path, 'wsgiauth', 'passwd', 'alice',
                   stdin='alice-w1\nalice-w1\n')
    assert_race(site, 'wal', [('alice', 'alice-pw'), ('bob', 'bob-pw')],
                to_wal, after=[401, 200])
    with sqlite3.connect(db) as cnx:
        assert cnx.execute('PRAGMA journal_mode').fetchone()[0] == 'wal'
    assert_race(site, 'wal', [('alice', 'alice-w1')],
                lambda: trac_admin(path, 'wsgiauth', 'passwd', 'alice',
                                   stdin='alice-w2\nalice-w2\n'),
                after=[401])


def test_account_locked_by_another_process_while_clients_hammer(site):
    """[account-manager] login_attempt_max_count = 3 (lock until
    unlocked): the lock written by another process (AccountGuard's
    attributes) while alice hammers refuses her at once in every child
    (her right logins while locked only prolong it)."""
    path = site.paths['lock']
    assert_race(site, 'lock', [('alice', 'alice-pw'), ('bob', 'bob-pw')],
                lambda: sql(
                    path, "INSERT INTO session_attribute VALUES "
                    "('alice', 1, 'failed_logins_count', '9'), "
                    "('alice', 1, 'failed_logins', %s)",
                    ("[{'ipnr': '192.0.2.1', 'time': %d}]" % time.time(),)),
                after=[401, 200], wrong_every=0)


def test_an_unlock_is_not_undone_by_logins_refused_before_it(site):
    """alice, locked until an administrator unlocks her, keeps trying
    with her right password (each refused, each a failure the children
    queue and, while she is locked, write at most once a second); the
    administrator unlocks her (AuthStore.unlock, as trac-admin wsgiauth
    unlock does) after her last try was answered. No request is sent
    after the unlock; the failures queued before it must not be written
    on top of the unlocked account: her next login, 1.5 s later, is
    accepted."""
    path = site.paths['lock']
    sql(path, "DELETE FROM session_attribute WHERE sid='alice' AND name IN "
        "('failed_logins_count', 'failed_logins', 'lock_count')")
    sql(path, "INSERT INTO session_attribute VALUES "
        "('alice', 1, 'failed_logins_count', '9'), "
        "('alice', 1, 'failed_logins', %s)",
        ("[{'ipnr': '192.0.2.1', 'time': %d}]" % time.time(),))
    deadline = time.monotonic() + 1.2
    with ThreadPoolExecutor(6) as pool:
        while time.monotonic() < deadline:
            assert set(pool.map(lambda _: status(site, 'lock', 'alice',
                                                 'alice-pw'),
                                range(12))) == {401}
    last_try = time.time()
    with trac_env(path) as env:     # what trac-admin wsgiauth unlock does
        assert AuthStore(env).unlock('alice')   # (it reproduces too)
    unlocked = time.time()
    time.sleep(1.5)
    with trac_env(path) as env:
        attrs = dict(env.db_query(
            "SELECT name, value FROM session_attribute WHERE sid='alice'"))
    got = status(site, 'lock', 'alice', 'alice-pw')
    assert got == 200, (
        'refused %.1f s after the unlock returned (%.1f s after her last '
        'try was answered); the account now reads failed_logins_count=%s, '
        'lock_count=%s' % (time.time() - unlocked, unlocked - last_try,
                           attrs.get('failed_logins_count'),
                           attrs.get('lock_count')))


def test_no_server_error_nor_password_in_the_error_log(site):
    """After all the races: no 5xx logged, no password or traceback in
    Apache's error log."""
    log = site.apache.error_log()
    for password in ('alice-pw', 'bob-pw', 'alice-new', 'alice-2',
                     'alice-3', 'alice-w1', 'alice-w2', 'alice-w3',
                     'jürgen-pw', 'jürgen-2', 'tracapp_'):
        assert password not in log
    assert 'Traceback' not in log
    statuses = {line.split()[-1] for line in
                site.apache.access_log().splitlines()}
    assert not {s for s in statuses if s.startswith('5')}, statuses
