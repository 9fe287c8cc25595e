"""Availability under a password-guessing attack, through a real Apache
(issue 16): one address sends wrong passwords for one account as fast as
it can while another address logs another user in.

    /opt/tracwsgiauth-venv/bin/python -m benchmarks.guard [SECONDS] [OUT.md]

(from the checkout's top folder).

One Apache (Debian's, event MPM, 3 child processes, mod_wsgi) serves,
per database (SQLite, SQLite in WAL mode, a throwaway PostgreSQL), two
deployed environments with AccountManager's lock on
(``login_attempt_max_count = 5``) and htdigest passwords
(AccountManager's default, the fastest to guess): ``n`` without and
``t`` with the address throttle (30 failures in 180 s), both answering
refusals after ``failure_delay = 1`` second (the default), and ``z``
with neither (``failure_delay = 0``). A static file is protected by
each environment's trac.wsgi.

* the attacker: ``ab -c 8`` from 127.0.0.1, wrong passwords for the
  account ``victim``, new connection per request, for SECONDS (default
  8) per phase;
* the user: 2 Python threads from another address (::1, or 127.0.0.2
  without IPv6) logging ``legit`` in with the right password, new
  connection per request, each request timed.

Phases, interleaved: quiet (the user alone), attack, control (the same
attack for a user name that does not exist: the same requests and hash
work, nothing written), twice on ``n``; then quiet and attack on ``t``;
then quiet, attack and control on ``z``.
Write transactions are counted in the database: on SQLite by a trigger
(every write of a failed login inserts ``failed_logins_count`` anew,
once), on PostgreSQL by its transaction ids (``txid_current()``: only
transactions that write take one). SQLite runs twice: in its default
rollback-journal mode and in WAL mode. Writes a markdown table to OUT.md
(default benchmarks/results-guard.md) and prints it; about 5 minutes
on 2 cores.
"""

import base64
import datetime
import http.client
import os
import platform
import re
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time

from benchmarks import HERE, publish
from benchmarks.apache import AB, apache_version, cpu_model
from tests.harness import (Apache, auth_location, deploy_ours, docs_folder,
                           include, make_env, mpm, open_up, public_dir,
                           remove_public_dirs, set_password)

CHILDREN, THREADS = 3, 25
ATTACK_C, LEGIT_C = 8, 2
MAX_COUNT = 5
THROTTLE = 30
PASSWORDS = {'victim': 'victim-Pw9', 'legit': 'legit-Pw9'}

INI = """
[account-manager]
login_attempt_max_count = %d
user_lock_time = 300

[wsgiauth]
hash_scheme = htdigest
address_failures = %%(throttle)d
address_window = 180
address_block_time = 600
failure_delay = %%(delay)d
""" % MAX_COUNT

#: the environments: name, address_failures, failure_delay
ENVIRONMENTS = (('n', 0, 1), ('t', THROTTLE, 1), ('z', 0, 0))


def other_address():
    """(host to connect to, source address) of the legitimate user:
    [::1] when this machine has IPv6 loopback, else 127.0.0.1 from
    127.0.0.2."""
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(('::1', 0))
        return '::1', None
    except OSError:
        return '127.0.0.1', '127.0.0.2'


#: SQLite: one row per write transaction of a failed login (each writes
#: failed_logins_count anew, once), counted in the database itself
COUNT_WRITES = """
CREATE TABLE bench_writes (n INTEGER);
INSERT INTO bench_writes VALUES (0);
CREATE TRIGGER bench_count AFTER INSERT ON session_attribute
  WHEN NEW.name = 'failed_logins_count'
  BEGIN UPDATE bench_writes SET n = n + 1; END;
"""


class Backend(object):
    """Where the environments' databases live, and how to count the
    write transactions made there: SQLite in its default rollback-journal
    mode."""

    name = 'SQLite'
    uri = None

    def make(self, parent, name, ini):
        path = make_env(parent, name, extra_ini=ini, database=self.uri)
        cnx = self._connect(path)
        try:
            cnx.executescript(COUNT_WRITES)
        finally:
            cnx.close()
        return path

    def _connect(self, path):
        return sqlite3.connect(os.path.join(path, 'db', 'trac.db'),
                               timeout=30)

    def _value(self, path, sql, args=()):
        cnx = self._connect(path)
        try:
            return cnx.execute(sql, args).fetchall()
        finally:
            cnx.close()

    def writes(self, paths):
        """A number that every write transaction of a failed login moves
        by one."""
        return sum(self._value(path, 'SELECT n FROM bench_writes')[0][0]
                   for path in paths)

    def failed(self, path, user):
        rows = self._value(
            path, "SELECT value FROM session_attribute WHERE sid=? AND "
            "name='failed_logins_count'", (user,))
        return int(rows[0][0]) if rows else 0

    def stop(self):
        pass


class WalBackend(Backend):

    name = 'SQLite, WAL (`?journal_mode=WAL`)'
    uri = 'sqlite:db/trac.db?journal_mode=WAL'


class PostgresBackend(Backend):

    name = 'PostgreSQL'

    def __init__(self):
        from tests.pg import Postgres
        self.pg = Postgres().start()
        self.databases = {}

    def make(self, parent, name, ini):
        from tests.pg import make_pg_env
        database = 'guard_' + name
        self.databases[os.path.join(parent, name)] = database
        return make_pg_env(self.pg, parent, name, database, extra_ini=ini)

    def writes(self, paths):
        # this call takes one transaction id itself: subtract it
        return self.pg.sql('SELECT txid_current()')[0][0]

    def failed(self, path, user):
        rows = self.pg.sql(
            "SELECT value FROM session_attribute WHERE sid=%s AND "
            "name='failed_logins_count'", (user,),
            database=self.databases[path])
        return int(rows[0][0]) if rows else 0

    def stop(self):
        self.pg.stop()


def get(host, port, path, user, password, source=None):
    """Status of one GET with Basic credentials on a new connection."""
    conn = http.client.HTTPConnection(
        host, port, timeout=30,
        source_address=(source, 0) if source else None)
    token = base64.b64encode(('%s:%s' % (user, password)).encode('utf-8'))
    try:
        conn.request('GET', path, headers={
            'Authorization': 'Basic ' + token.decode('ascii')})
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


def legitimate(host, source, port, path, seconds):
    """LEGIT_C threads logging `legit` in for `seconds`: [(latency s,
    status)]."""
    results = []
    deadline = time.monotonic() + seconds

    def run():
        mine = []
        while time.monotonic() < deadline:
            start = time.perf_counter()
            try:
                status = get(host, port, path, 'legit', PASSWORDS['legit'],
                             source)
            except OSError:
                status = 0
            mine.append((time.perf_counter() - start, status))
        results.extend(mine)
    threads = [threading.Thread(target=run) for _ in range(LEGIT_C)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def attack(url, user, seconds):
    """`ab -c 8` sending wrong passwords for `user` for `seconds`."""
    return subprocess.Popen(
        [AB, '-q', '-t', str(seconds), '-n', '10000000', '-c',
         str(ATTACK_C), '-s', '30', '-A', '%s:wrong-guess' % user, url],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def ab_result(proc):
    out = proc.communicate(timeout=600)[0]
    complete = int(re.search(r'Complete requests:\s+(\d+)', out)[1])
    non2xx = re.search(r'Non-2xx responses:\s+(\d+)', out)
    rate = float(re.search(r'Requests per second:\s+([\d.]+)', out)[1])
    return complete, int(non2xx[1]) if non2xx else 0, rate


def settle(backend, path, seconds=10):
    """Wait until the victim's count stops moving (the writers are done)."""
    last, deadline = None, time.monotonic() + seconds
    while time.monotonic() < deadline:
        now = backend.failed(path, 'victim')
        if now == last:
            return now
        last = now
        time.sleep(0.5)
    return last


def phase(backend, apache, env, kind, seconds, who):
    """One phase; a dict of what it measured."""
    name, path = env
    files = '/%s-files/f.txt' % name
    result = {'env': name, 'kind': kind}
    before_count = backend.failed(path, 'victim')
    before_writes = backend.writes(backend.paths)
    proc = None
    if kind != 'quiet':
        user = 'victim' if kind == 'attack' else 'nobody-here'
        proc = attack(apache.url + files, user, seconds)
    started = time.monotonic()
    result['legit'] = legitimate(who[0], who[1], apache.port, files, seconds)
    if proc:
        result['sent'], result['refused'], result['rate'] = ab_result(proc)
    elapsed = time.monotonic() - started
    after_count = settle(backend, path)
    after_writes = backend.writes(backend.paths)
    result['counted'] = after_count - before_count
    result['writes'] = after_writes - before_writes - \
        (1 if isinstance(backend, PostgresBackend) else 0)
    result['seconds'] = elapsed
    return result


def run_backend(backend, docs, seconds, who):
    parent = public_dir('twa-bench-guard-')
    envs, targets, body = [], [], ''
    for name, throttle, delay in ENVIRONMENTS:
        path = backend.make(parent, name, INI % {'throttle': throttle,
                                                 'delay': delay})
        for user, password in PASSWORDS.items():
            set_password(path, user, password)
        target = deploy_ours(path, '--url=/' + name).target
        envs.append((name, path))
        targets.append(target)
        body += auth_location('/%s-files' % name, os.path.join(
            target, 'cgi-bin', 'trac.wsgi'))
    backend.paths = [path for _, path in envs]
    open_up(parent)
    body = include(*targets) + mpm(CHILDREN, THREADS) + \
        'DocumentRoot "%s"\n' % docs + body
    apache = Apache(body, policy=False)
    if who[0] == '::1':
        with open(apache.conf, 'a') as f:
            f.write('Listen [::1]:%d\n' % apache.port)
    apache.start()
    try:
        for name, _ in envs:
            # Trac's daemon process opens the environment (it counts the
            # address failures), as on a site whose Trac is in use
            conn = http.client.HTTPConnection('127.0.0.1', apache.port,
                                              timeout=60)
            conn.request('GET', '/%s/' % name)
            assert conn.getresponse().status == 200
            conn.close()
            # every child process loads the environment's login rules
            legitimate(who[0], who[1], apache.port,
                       '/%s-files/f.txt' % name, 1)
        n, t, z = envs
        plan = [(n, 'quiet'), (n, 'attack'), (n, 'control')] * 2 + \
            [(t, 'quiet'), (t, 'attack')] + \
            [(z, 'quiet'), (z, 'attack'), (z, 'control')]
        results = [phase(backend, apache, env, kind, seconds, who)
                   for env, kind in plan]
        errors = apache.error_log()
    finally:
        apache.stop()
    assert not any(p in errors for p in PASSWORDS.values())
    assert 'wrong-guess' not in errors
    return results, errors


def percentile(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100.0 *
                                                 (len(values) - 1))))]


def summary(results, env, kind):
    chosen = [r for r in results if r['env'] == env and r['kind'] == kind]
    latencies = [s for r in chosen for s, _ in r['legit']]
    ok = sum(1 for r in chosen for _, status in r['legit'] if status == 200)
    total = len(latencies)
    row = {'requests': total, 'ok': ok,
           'p50': percentile(latencies, 50) * 1e3,
           'p99': percentile(latencies, 99) * 1e3,
           'seconds': sum(r['seconds'] for r in chosen)}
    row['writes'] = sum(r['writes'] for r in chosen)
    if kind != 'quiet':
        for key in ('sent', 'refused', 'counted'):
            row[key] = sum(r[key] for r in chosen)
        row['rate'] = statistics.mean(r['rate'] for r in chosen)
    return row


LABELS = {('n', 'quiet'): 'quiet (the user alone)',
          ('n', 'attack'): 'attack on `victim`',
          ('n', 'control'): 'control: attack on an unknown user',
          ('t', 'quiet'): 'throttle on: quiet',
          ('t', 'attack'): 'throttle on: attack on `victim`',
          ('z', 'quiet'): 'no failure delay: quiet',
          ('z', 'attack'): 'no failure delay: attack on `victim`',
          ('z', 'control'): 'no failure delay: control'}


def table(backend_name, results):
    lines = ['## %s' % backend_name, '',
             '| phase | user logins | success | p50 ms | p99 ms | '
             'p99 vs quiet | attack req/s | wrong passwords sent | '
             'failures counted | write transactions | per second | '
             'failures per transaction |',
             '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|']
    quiet = {env: summary(results, env, 'quiet') for env, _, _ in
             ENVIRONMENTS}
    rows = {}
    for env, kind in LABELS:
        row = rows[env, kind] = summary(results, env, kind)
        cells = [LABELS[env, kind], '%d' % row['requests'],
                 '%.2f %%' % (100.0 * row['ok'] / max(row['requests'], 1)),
                 '%.1f' % row['p50'], '%.1f' % row['p99'],
                 '%.2f' % (row['p99'] / quiet[env]['p99'])]
        if kind == 'quiet':
            cells += [''] * 3 + ['%d' % row['writes'], '', '']
        else:
            cells += ['%.0f' % row['rate'], '%d' % row['refused'],
                      '%d' % row['counted'], '%d' % row['writes'],
                      '%.0f' % (row['writes'] / row['seconds']),
                      '%.1f' % (row['counted'] / row['writes'])
                      if row['writes'] else '']
        lines.append('| ' + ' | '.join(cells) + ' |')
    return lines, rows


def main(seconds=8, out=None):
    if not AB:
        sys.exit('needs ab (apt-get install apache2-utils)')
    out = out or os.path.join(HERE, 'results-guard.md')
    who = other_address()
    parent = public_dir('twa-bench-')
    docs = os.path.join(parent, 'docs')
    for name, _, _ in ENVIRONMENTS:
        docs_folder(docs, name + '-files')
    open_up(parent)
    began = time.monotonic()
    load = os.getloadavg()[0]   # of others: this run has not begun
    sections, verdicts = [], []
    for make in (Backend, WalBackend, PostgresBackend):
        backend = make()
        try:
            results, _ = run_backend(backend, docs, seconds, who)
        finally:
            backend.stop()
        lines, rows = table(backend.name, results)
        sections += lines + ['']
        attacked = rows['n', 'attack']
        verdicts.append((backend.name, attacked['ok'] ==
                         attacked['requests'],
                         attacked['p99'] / rows['n', 'quiet']['p99'],
                         rows['n', 'control']['p99'] /
                         rows['n', 'quiet']['p99'],
                         rows['z', 'attack']['p99'] /
                         rows['z', 'quiet']['p99']))
    took = time.monotonic() - began
    lines = [
        '# Availability under a password-guessing attack', '',
        '%s, %s, Python %s, %s, %d cores, %s; Apache %s event MPM, %d '
        'child processes of %d threads, mod_wsgi embedded auth; '
        'PostgreSQL: a throwaway local cluster (fsync off). The run took '
        '%.0f s (%d s per phase).' % (
            datetime.date.today(), platform.node() or 'host',
            platform.python_version(), platform.machine(), os.cpu_count(),
            cpu_model(), apache_version(), CHILDREN, THREADS, took,
            seconds), '',
        'Load average when the run began: %.1f on %d cores%s.' % (
            load, os.cpu_count(), ' (NOISY: other work was running; '
            're-run on a quiet machine)' if load > 1.0 else ''), '',
        'The attacker: `ab -c %d` from 127.0.0.1, wrong passwords for the '
        'account `victim`, a new connection per request, as fast as it '
        'goes. The user: %d threads from %s logging `legit` in with the '
        'right password (Basic, a static file guarded by the deployed '
        'trac.wsgi), a new connection per request, each timed. Both in '
        'one environment with `[account-manager] login_attempt_max_count '
        '= %d` (the victim is locked after the first %d guesses and every '
        'further guess is counted, as AccountManager counts it) and '
        'htdigest passwords (AccountManager\'s default: the cheapest to '
        'check, so the most guesses per second), refusals answered after '
        '`[wsgiauth] failure_delay = 1` second (the default). Phases '
        'interleaved in one run: quiet, attack, control, twice; quiet and '
        'attack with the address throttle on (%d failures in 180 s); '
        'quiet, attack and control with `failure_delay = 0` (every '
        'refusal at once: what the delay changes). "p99 vs quiet" '
        'compares with the quiet phases of the same run and environment.'
        % (ATTACK_C, LEGIT_C, who[0] if who[1] is None else who[1],
           MAX_COUNT, MAX_COUNT, THROTTLE), '']
    lines += sections
    lines += [
        'Write transactions are counted in the database: on SQLite by a '
        'trigger (each write of a failed login inserts '
        '`failed_logins_count` anew, once), on PostgreSQL by its '
        'transaction ids (only a transaction that writes takes one). '
        '"Failures counted" is the growth '
        'of the victim\'s `failed_logins_count`: every wrong password '
        'counted; it exceeds those `ab` reports by the requests still in '
        'flight when `ab` stops at its time limit (up to %d a phase).'
        % ATTACK_C, '',
        'How the writes are bounded: a wrong password is answered first '
        'and queued; each Apache process has one writer thread, which '
        'takes everything queued and writes it as one transaction per '
        'account (on PostgreSQL holding the user\'s `session` row `FOR '
        'UPDATE`, on SQLite `BEGIN IMMEDIATE`). So an account sees at '
        'most one write transaction per process at a time (%d here), '
        'however fast the guesses come: the faster they come, the more '
        'failures each transaction carries ("failures per transaction"), '
        'and the transaction rate is set by how long one write takes, '
        'not by the attack. With the throttle on, the attacker\'s address '
        'is refused before its account is read, so writes stop after '
        'the first %d failures (and those in flight).' % (
            CHILDREN, THROTTLE), '']
    lines += [
        'How the attack is bounded: every refusal waits `failure_delay` '
        'seconds before its answer, and `ab`, like any client, waits for '
        'an answer before it sends the next request on a connection, so '
        'the attack gets about %d answers a second (one per connection) '
        'and takes next to none of the machine\'s time. The waits hold '
        '%d of Apache\'s %d threads.' % (ATTACK_C, ATTACK_C,
                                         CHILDREN * THREADS), '',
        'Reading the table: the control attacks as hard (c=%d) with the '
        'same hash work and writes nothing, so attack against control is '
        'what the writes cost; control against quiet is what sharing the '
        'cores with the attacker (`ab`, Apache\'s and the database\'s '
        'processes) costs. Without the delay (the last rows), the '
        'attacker takes as much of the machine as it can get and the '
        'user\'s p99 grows with it. In SQLite\'s default '
        'rollback-journal mode a commit locks readers out while it '
        'writes, and a reader that finds the '
        'database locked tries again after 0.1 ms, waiting 1.2 times '
        'longer each time up to 10 ms (tracwsgiauth/sqlite.py); in WAL '
        'mode readers never wait for a writer. The two SQLite sections '
        'show how much of the cost that is.' % ATTACK_C, '']
    for name, all_ok, ratio, control, undelayed in verdicts:
        lines.append('- %s: the user\'s logins under attack %s; p99 under '
                     'attack / quiet = %.2f (target ≤ 3: %s; the control, '
                     'the same load without writes: %.2f; without the '
                     'failure delay: %.2f).' % (
                         name, 'all succeeded' if all_ok else
                         'did NOT all succeed', ratio,
                         'met' if ratio <= 3 and all_ok else 'NOT met',
                         control, undelayed))
    publish(out, lines)
    shutil.rmtree(parent, ignore_errors=True)
    remove_public_dirs()


if __name__ == '__main__':
    tempfile.tempdir = '/tmp'
    main(*(int(a) if a.isdigit() else a for a in sys.argv[1:]))
