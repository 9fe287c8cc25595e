"""Through a real Apache httpd: tracwsgiauth side by side with Apache's
own mod_authn_file, the cost of loading it into an Apache child, and its
cold start.

    /opt/tracwsgiauth-venv/bin/python -m benchmarks.apache [N] [OUT.md]

(from the checkout's top folder).

One Apache (Debian's, event MPM, mod_wsgi from pip) serves a tiny static
file in several locations; `ab` fetches each with a fixed request count at
concurrency 1 and 8 on 127.0.0.1.  N (default 4000) is the count for
fast locations; bcrypt without a cache gets N/40.  Writes a markdown table
to OUT.md (default benchmarks/results-apache.md) and prints it.
"""

import datetime
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time

from trac.env import Environment

from benchmarks import HERE, publish
from tests.harness import (APACHE, ONE_CHILD, Apache, auth_location,
                           auth_script, curl, docs_folder, make_env, open_up,
                           public_dir, trac_env, write_file)
from tracwsgiauth import hashes

AB = shutil.which('ab')
HTPASSWD = shutil.which('htpasswd')
PASSWORD = 'bench-secret'

TRIVIAL = '''
def check_password(environ, user, password):
    return user == 'md5' and password == {password!r}
'''

#: The account query alone on a kept sqlite3 connection, and nothing
#: else: the floor for any provider that reads the database per request.
BARE_QUERY = '''
import sqlite3
from tracwsgiauth.tables import ACCOUNT
QUERY = ACCOUNT.replace('%s', '?')
_idle = []
def check_password(environ, user, password):
    cnx = _idle.pop() if _idle else sqlite3.connect(
        {path!r}, isolation_level=None, check_same_thread=False)
    rows = cnx.execute(QUERY, (user, user)).fetchall()
    _idle.append(cnx)
    return bool(rows)
'''

#: Commits per second another process makes to the database of the
#: "while Trac writes" location (each makes every kept account read stale).
WRITES_PER_SECOND = 100

#: Each location is measured this many times, interleaved with the
#: others; the table shows the median, so that a burst of load from
#: elsewhere on the machine does not decide a ratio.
ROUNDS = 5



def environment(parent, name, cache_size):
    path = make_env(parent, name, extra_ini='\n[wsgiauth]\ncache_size = %d\n'
                    % cache_size)
    with trac_env(path) as env, env.db_transaction as db:
        db("INSERT INTO system VALUES ('bench', '0')")
        for kind in ('md5', 'bcrypt'):
            db("INSERT INTO session VALUES (%s, 1, 0)", (kind,))
            db("INSERT INTO session_attribute VALUES (%s, 1, 'password', %s)",
               (kind, hashes.make(kind, kind, PASSWORD, 'trac')))
    return path


def ab(url, user, n, c):
    args = [AB, '-q', '-n', str(n), '-c', str(c), '-s', '60']
    if user:
        args += ['-A', '%s:%s' % (user, PASSWORD)]
    out = subprocess.run(args + [url], capture_output=True, text=True,
                         timeout=600).stdout
    rate = float(re.search(r'Requests per second:\s+([\d.]+)', out)[1])
    failed = int(re.search(r'Failed requests:\s+(\d+)', out)[1])
    non2xx = re.search(r'Non-2xx responses:\s+(\d+)', out)
    return rate, failed + (int(non2xx[1]) if non2xx else 0)


def rss_kb(pid):
    with open('/proc/%d/status' % pid) as f:
        return int(re.search(r'VmRSS:\s+(\d+)', f.read())[1])


def children(apache):
    """Apache's child processes (not mod_wsgi's daemon processes, which
    show their group name as their command)."""
    out = subprocess.run(['pgrep', '-P', str(apache.proc.pid)],
                         capture_output=True, text=True).stdout
    found = []
    for pid in map(int, out.split()):
        with open('/proc/%d/cmdline' % pid, 'rb') as f:
            if not f.read().startswith(b'(wsgi:'):
                found.append(pid)
    return found


class Writer(threading.Thread):
    """Commits to an environment's database `WRITES_PER_SECOND` times a
    second through Trac, as a busy Trac would, until stopped."""

    def __init__(self, path):
        super().__init__(daemon=True)
        self.path = path
        self.commits = 0
        self.elapsed = 0.0
        self.halt = threading.Event()

    def run(self):
        env = Environment(self.path)
        start = time.perf_counter()
        try:
            while not self.halt.wait(1.0 / WRITES_PER_SECOND):
                with env.db_transaction as db:
                    db("UPDATE system SET value=%s WHERE name='bench'",
                       (str(self.commits),))
                self.commits += 1
        finally:
            self.elapsed = time.perf_counter() - start
            env.shutdown()

    def stop(self):
        self.halt.set()
        self.join()
        return self.commits / self.elapsed


def throughput(parent, docs, n):
    htpasswd = os.path.join(parent, 'htpasswd')
    subprocess.run([HTPASSWD, '-cbm', htpasswd, 'md5', PASSWORD], check=True,
                   capture_output=True)
    subprocess.run([HTPASSWD, '-bB', '-C', '10', htpasswd, 'bcrypt',
                    PASSWORD], check=True, capture_output=True)
    uncached = auth_script(os.path.join(parent, 'uncached.wsgi'),
                           environment(parent, 'uncached', 0))
    cached = auth_script(os.path.join(parent, 'cached.wsgi'),
                         environment(parent, 'cached', 1000))
    writing_env = environment(parent, 'writing', 1000)
    writing = auth_script(os.path.join(parent, 'writing.wsgi'), writing_env)
    trivial = write_file(os.path.join(parent, 'trivial.wsgi'),
                    TRIVIAL.format(password=PASSWORD))
    bare = write_file(os.path.join(parent, 'bare.wsgi'), BARE_QUERY.format(
        path=os.path.join(parent, 'cached', 'db', 'trac.db')))
    open_up(parent)
    def by_file(location):
        return auth_location('/' + location, None, realm='bench',
                             user_file=htpasswd)

    def by_wsgi(location, script):
        return auth_location('/' + location, script, realm='bench')

    cases = [  # (label, location, auth, user, same-hash reference)
        ('no auth (the limit)', 'open', None, None, None),
        ('mod_authn_file, $apr1$', 'file', by_file('file'),
         'md5', None),
        ('mod_authn_file, bcrypt-10', 'file', None, 'bcrypt', None),
        ('trivial Python check_password (ceiling)', 'trivial',
         by_wsgi('trivial', trivial), 'md5', None),
        ('bare SQLite account query in Python (floor)', 'bare',
         by_wsgi('bare', bare), 'md5', 'mod_authn_file, $apr1$'),
        ('tracwsgiauth, $apr1$, no cache', 'uncached',
         by_wsgi('uncached', uncached), 'md5', 'mod_authn_file, $apr1$'),
        ('tracwsgiauth, $apr1$, cached', 'cached',
         by_wsgi('cached', cached), 'md5', 'mod_authn_file, $apr1$'),
        ('tracwsgiauth, $apr1$, cached, while Trac commits %d/s'
         % WRITES_PER_SECOND, 'writing', by_wsgi('writing', writing), 'md5',
         'mod_authn_file, $apr1$'),
        ('tracwsgiauth, bcrypt-10, no cache', 'uncached', None, 'bcrypt',
         'mod_authn_file, bcrypt-10'),
        ('tracwsgiauth, bcrypt-10, cached', 'cached', None, 'bcrypt',
         'mod_authn_file, bcrypt-10'),
    ]
    body = 'DocumentRoot "%s"\n' % docs
    for _, _, auth, _, _ in cases:
        if auth:
            body += auth
    apache = Apache(body).start()
    runs = {}
    commit_rates = []     # of the writer, commits/s
    try:
        for _ in range(ROUNDS):
            for label, location, _, user, _ in cases:
                url = '%s/%s/f.txt' % (apache.url, location)
                slow = user == 'bcrypt' and location != 'cached'
                for c in (1, 8):
                    count = max(100, n // 40) if slow else n
                    ab(url, user, min(count, 2 * c * 10), c)  # warm up
                    writer = Writer(writing_env) \
                        if location == 'writing' else None
                    if writer:
                        writer.start()
                    runs.setdefault((label, c), []).append(
                        (count,) + ab(url, user, count, c))
                    if writer:
                        commit_rates.append(writer.stop())
    finally:
        apache.stop()
    rows = {}
    for key, measured in runs.items():
        rates = sorted(rate for _, rate, _ in measured)
        rows[key] = (sum(count for count, _, _ in measured),
                     rates[len(rates) // 2], rates[0], rates[-1],
                     sum(errors for _, _, errors in measured))
    errors = apache.error_log()
    assert PASSWORD not in errors
    return cases, rows, sorted(commit_rates)[len(commit_rates) // 2]


def memory_and_cold_start(parent, docs):
    """RSS an Apache child gains from loading the script for 1 and for 10
    environments, and the first authenticated request's latency."""
    results = []
    for count in (1, 10):
        base = os.path.join(parent, 'mem%d' % count)
        os.mkdir(base)
        body = ONE_CHILD + 'DocumentRoot "%s"\n' % docs
        body += 'AliasMatch "^/e[0-9]+/(.*)" "%s/open/$1"\n' % docs
        for i in range(count):
            script = auth_script(os.path.join(base, 'env%d.wsgi' % i),
                                 environment(base, 'env%d' % i, 1000))
            # a login and a group check (answered by Trac's process)
            body += auth_location('/e%d' % i, script, 'authenticated')
        open_up(base)
        apache = Apache(body).start()
        try:
            assert curl(apache.url + '/open/f.txt')[0] == 200
            [child] = children(apache)
            before = rss_kb(child)
            firsts = []
            for i in range(count):
                t = time.perf_counter()
                status = curl(apache.url + '/e%d/f.txt' % i, 'md5',
                              PASSWORD)[0]
                firsts.append(time.perf_counter() - t)
                assert status == 200, status
            t = time.perf_counter()
            assert curl(apache.url + '/e0/f.txt', 'md5', PASSWORD)[0] == 200
            warm = time.perf_counter() - t
            after = rss_kb(child)
            assert children(apache) == [child]
        finally:
            apache.stop()
        results.append((count, (after - before) / 1024.0, firsts[0],
                        firsts[-1], warm))
    return results


def main(n=4000, out=None):
    if not (AB and HTPASSWD):
        sys.exit('needs ab and htpasswd (apt-get install apache2-utils)')
    out = out or os.path.join(HERE, 'results-apache.md')
    parent = public_dir('twa-bench-')
    docs = os.path.join(parent, 'docs')
    for location in ('open', 'file', 'trivial', 'bare', 'uncached',
                     'cached', 'writing'):
        docs_folder(docs, location)
    cases, rows, commits = throughput(parent, docs, n)
    memory = memory_and_cold_start(parent, docs)
    ceiling = {c: rows['trivial Python check_password (ceiling)', c][1]
               for c in (1, 8)}
    floor = {c: rows['bare SQLite account query in Python (floor)', c][1]
             for c in (1, 8)}
    lines = [
        '# Through Apache', '',
        '%s, %s, Python %s, %s, %d cores, %s; Apache %s event MPM, '
        'mod_wsgi embedded auth, `ab` without keep-alive, 127.0.0.1, '
        'a 3-byte static file. req/s is the median of %d runs, '
        'interleaved; requests and errors are their sums.' % (
            datetime.date.today(), platform.node() or 'host',
            platform.python_version(), platform.machine(), os.cpu_count(),
            cpu_model(), apache_version(), ROUNDS), '',
        '| provider | c | requests | req/s | min–max | errors | '
        'vs mod_authn_file, same hash | vs trivial Python | '
        'vs bare query |',
        '|---|---:|---:|---:|---:|---:|---:|---:|---:|']
    for label, _, _, _, reference in cases:
        for c in (1, 8):
            count, rate, low, high, errors = rows[label, c]
            ratio = '%.2f' % (rate / rows[reference, c][1]) \
                if reference else ''
            ours = label.startswith('tracwsgiauth')
            vs_trivial = '%.2f' % (rate / ceiling[c]) if ours else ''
            vs_floor = '%.2f' % (rate / floor[c]) if ours else ''
            lines.append('| %s | %d | %d | %.0f | %.0f–%.0f | %d | %s | %s '
                         '| %s |' % (label, c, count, rate, low, high,
                                     errors, ratio, vs_trivial, vs_floor))
    lines += ['', 'The bare query runs the account SELECT on a kept '
              'sqlite3 connection on every request and does nothing else. '
              'tracwsgiauth takes the account from the database as it is at '
              'each request: it asks SQLite whether anything was committed '
              'since it last read the rows (the header\'s change counter); '
              'if not, a credential it accepted then is accepted again '
              '("cached" rows), else it reads the rows again. In the '
              '"while Trac commits" rows another process committed through '
              'Trac %.0f times a second (median) during the runs, so most '
              'checks read the tables again.' % commits]
    lines += ['', '## Memory and cold start (one Apache child)', '',
              '| environments | RSS added to the child | first request, '
              'first env | first request, last env | warm request |',
              '|---:|---:|---:|---:|---:|']
    for count, mb, first, last, warm in memory:
        lines.append('| %d | %.1f MB | %.0f ms | %.0f ms | %.1f ms |' % (
            count, mb, first * 1e3, last * 1e3, warm * 1e3))
    lines += ['', 'RSS added = VmRSS of the only Apache child after one '
              'authenticated request per environment (`$apr1$` and '
              '`Require wsgi-group`, which Trac\'s own process answers) '
              'minus after '
              'an unauthenticated request (Python already initialised by '
              'mod_wsgi). Request times are curl round trips, including '
              'a new connection.']
    publish(out, lines)
    shutil.rmtree(parent, ignore_errors=True)


def cpu_model():
    try:
        with open('/proc/cpuinfo') as f:
            return re.search(r'model name\s*:\s*(.*)', f.read())[1].strip()
    except (OSError, TypeError):
        return platform.processor() or 'cpu'


def apache_version():
    out = subprocess.run([APACHE, '-v'], capture_output=True,
                         text=True).stdout
    found = re.search(r'Apache/([\d.]+)', out)
    return found[1] if found else '?'


if __name__ == '__main__':
    tempfile.tempdir = '/tmp'
    main(*(int(a) if a.isdigit() else a for a in sys.argv[1:]))
