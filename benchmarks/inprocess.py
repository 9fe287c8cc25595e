"""In-process cost of the mod_wsgi entry points on a SQLite environment,
side by side with the floor: the bare password query (plain sqlite3, on a
kept connection) plus the bare hash verification.

    /opt/tracwsgiauth-venv/bin/python -m benchmarks.inprocess [N] [OUT.md]

(from the checkout's top folder).

Writes a markdown table (median and p99 in microseconds) to OUT.md
(default benchmarks/results-inprocess.md) and prints it.
"""

import datetime
import os
import platform
import sqlite3
import statistics
import sys
import tempfile
import time

from trac.env import Environment

from benchmarks import HERE, publish
from tracwsgiauth import hashes
from tracwsgiauth.modwsgi import for_environment
from tracwsgiauth.serve import answer_policy

SCHEMES = ['htdigest', 'sha', 'md5', 'crypt', 'sha256', 'sha512', 'bcrypt']
QUERY = ("SELECT value FROM session_attribute WHERE sid=? "
         "AND authenticated=1 AND name='password'")


def timed(fn, n):
    for _ in range(min(20, n)):
        fn()
    samples = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t) * 1e6)
    samples.sort()
    return statistics.median(samples), samples[int(len(samples) * .99) - 1]


#: (stored schemes, the first being the typical one; hash_scheme)
TIMING_CASES = [([kind], 'bcrypt') for kind in SCHEMES] + [
    (['htdigest', 'htdigest', 'bcrypt'], 'bcrypt'),
    (['bcrypt', 'bcrypt', 'htdigest'], 'htdigest'),
    (['md5', 'md5', 'sha512', 'htdigest'], 'sha'),
]


def unknown_against_wrong(stored, default, n):
    """(stored, hash_scheme, N, wrong µs, unknown µs) in an environment
    whose users store `stored` (5 users per entry) and whose
    `hash_scheme` is `default`; the cache is off."""
    path = os.path.join(tempfile.mkdtemp(), 'timing')
    env = Environment(path, create=True, options=[
        ('components', 'tracwsgiauth.*', 'enabled'),
        ('wsgiauth', 'hash_scheme', default),
        ('wsgiauth', 'cache_size', '0'),
        ('wsgiauth', 'failure_delay', '0')])     # the hash work alone
    with env.db_transaction as db:
        for i, kind in enumerate(stored * 5):
            user = 'u%d-%s' % (i, kind)
            db("INSERT INTO session VALUES (%s, 1, 0)", (user,))
            db("INSERT INTO session_attribute VALUES (%s, 1, 'password', %s)",
               (user, hashes.make(kind, user, 'secret', 'trac')))
    env.shutdown()
    check = for_environment(path).check_password
    environ = {'wsgi.errors': sys.stderr}
    count = n if 'bcrypt' not in stored[:1] else max(50, n // 40)
    typical = 'u0-%s' % stored[0]
    wrong = timed(lambda: check(environ, typical, 'wrong'), count)
    unknown = timed(lambda: check(environ, 'nobody', 'wrong'), count)
    return stored, default, count, wrong[0], unknown[0]


def session_rows(path, n):
    """What a page request logged in by Trac's cookie costs: our check
    that the session's user may still log in, beside Trac's own serving
    of a wiki page with that cookie (in-process, no HTTP)."""
    from trac.web.main import dispatch_request
    from tracwsgiauth.modwsgi import provider_for
    from tracwsgiauth.serve import serving
    env = Environment(path)
    env.db_transaction("INSERT INTO auth_cookie VALUES "
                       "('c0ffee', 'htdigest', '127.0.0.1', 0)")
    env.shutdown()
    provider = provider_for(path)
    check = timed(lambda: provider.session_refusal('c0ffee'), n)

    def page(app):
        environ = {'REQUEST_METHOD': 'GET', 'PATH_INFO': '/wiki/WikiStart',
                   'SERVER_NAME': '127.0.0.1', 'SERVER_PORT': '80',
                   'wsgi.url_scheme': 'http', 'SCRIPT_NAME': '',
                   'HTTP_COOKIE': 'trac_auth=c0ffee', 'trac.env_path': path,
                   'wsgi.errors': sys.stderr, 'wsgi.input': None,
                   'wsgi.run_once': False, 'wsgi.multithread': True,
                   'wsgi.multiprocess': True}
        written = []
        returned = app(environ, lambda status, headers, exc=None:
                       written.append)
        return b''.join(written) + b''.join(returned)
    assert b'logged in as' in page(serving(path))   # the cookie counts
    count = max(50, n // 10)
    ours, trac = timed_together([lambda: page(serving(path)),
                                 lambda: page(dispatch_request)], count)
    return [('session check of a cookie (user in good standing)', n,
             check, None),
            ('Trac wiki page by cookie, plain Trac', count, trac, None),
            ('Trac wiki page by cookie, through serve.py', count, ours,
             trac)]


def timed_together(fns, n):
    """(median, p99) µs of each of `fns`, called in turn `n` times, so
    that what else the machine does weighs on all of them alike."""
    samples = [[] for _ in fns]
    for _ in range(n + 5):
        for fn, got in zip(fns, samples, strict=True):
            t = time.perf_counter()
            fn()
            got.append((time.perf_counter() - t) * 1e6)
    results = []
    for got in samples:
        got = sorted(got[5:])
        results.append((statistics.median(got), got[int(len(got) * .99) - 1]))
    return results


def main(n=2000, out=None):
    out = out or os.path.join(HERE, 'results-inprocess.md')
    paths = {}
    for cache_size in (0, 1000):
        path = os.path.join(tempfile.mkdtemp(), 'bench')
        env = Environment(path, create=True, options=[
            ('components', 'tracwsgiauth.*', 'enabled'),
            ('wsgiauth', 'cache_size', str(cache_size))])
        with env.db_transaction as db:
            for kind in SCHEMES:
                db("INSERT INTO session VALUES (%s, 1, 0)", (kind,))
                db("INSERT INTO session_attribute "
                   "VALUES (%s, 1, 'password', %s)",
                   (kind, hashes.make(kind, kind, 'secret', 'trac')))
            db("INSERT INTO permission VALUES ('htdigest', 'developers')")
        env.shutdown()
        paths[cache_size] = path
    check, _, groups, _ = for_environment(paths[0])
    cached_check = for_environment(paths[1000]).check_password
    environ = {'wsgi.errors': sys.stderr}
    floor_db = sqlite3.connect(os.path.join(paths[0], 'db', 'trac.db'),
                               isolation_level=None)
    rows = []
    for kind in SCHEMES:
        count = n if kind not in ('bcrypt',) else max(50, n // 40)
        ours = timed(lambda k=kind: check(environ, k, 'secret'), count)
        cached = timed(lambda k=kind: cached_check(environ, k, 'secret'), n)
        stored = floor_db.execute(QUERY, (kind,)).fetchall()[0][0]
        floor = timed(lambda k=kind, s=stored: (
                          floor_db.execute(QUERY, (k,)).fetchall(),
                          hashes.verify(s, k, 'secret')),
                      count)
        rows.append(('check_password, %s' % kind, count, ours, floor))
        rows.append(('check_password, %s, cached' % kind, n, cached, floor))
    answer_policy(paths[0])     # group checks: Trac's process answers
    rows.append(('groups_for_user (asks Trac\'s process)', n,
                 timed(lambda: groups(environ, 'htdigest'), n), None))
    rows += session_rows(paths[0], n)
    timing = [unknown_against_wrong(stored, default, n)
              for stored, default in TIMING_CASES]
    lines = [
        '# In-process benchmark', '',
        '%s, Python %s, %s, %d cores; N calls each (warm).' % (
            datetime.date.today(), platform.python_version(),
            platform.machine(), os.cpu_count()), '',
        '| call | N | median µs | p99 µs | floor median µs | ratio |',
        '|---|---:|---:|---:|---:|---:|']
    for name, count, (med, p99), floor in rows:
        if floor:
            lines.append('| %s | %d | %.0f | %.0f | %.0f | %.2f |' % (
                name, count, med, p99, floor[0], med / floor[0]))
        else:
            lines.append('| %s | %d | %.0f | %.0f | | |' % (
                name, count, med, p99))
    lines += ['', 'floor = the bare password query (sqlite3, kept '
              'connection) plus hashes.verify '
              '(uncached); cached rows use the verified-credential cache '
              '(`[wsgiauth] cache_size`), the others have it off.', '',
              '## Unknown user against wrong password', '',
              'Median µs of `check_password` for a known user with a wrong '
              'password and for a user that does not exist, in an '
              'environment whose users store the given schemes (5 users '
              'per share), `hash_scheme` as given.', '',
              '| stored schemes | hash_scheme | N | wrong password | '
              'unknown user | unknown / wrong |',
              '|---|---|---:|---:|---:|---:|']
    for stored, default, count, wrong, unknown in timing:
        lines.append('| %s | %s | %d | %.0f | %.0f | %.2f |' % (
            ' + '.join(stored), default, count, wrong, unknown,
            unknown / wrong))
    publish(out, lines)


if __name__ == '__main__':
    main(*(int(a) if a.isdigit() else a for a in sys.argv[1:]))
