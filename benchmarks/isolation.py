"""One environment must not slow the others down: through a real Apache
with three child processes, `ab` on a group-protected location of a
SQLite environment -- quiet; while clients keep asking another
environment whose PostgreSQL accepts connections and never answers; and
while a third environment's trac.ini is saved every 0.3 s.

    /opt/tracwsgiauth-venv/bin/python -m benchmarks.isolation [N] [OUT.md]

(from the checkout's top folder). Each scenario runs ROUNDS times,
interleaved; the table shows medians. Writes OUT.md (default
benchmarks/results-isolation.md) and prints it.
"""

import datetime
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import threading
import time

from benchmarks import HERE, publish
from tests.harness import (Apache, SilentServer, add_user, auth_location,
                           auth_script, basic_get, docs_folder, edit_ini,
                           make_env, mpm, open_up, public_dir, trac_env)

AB = shutil.which('ab')
ROUNDS = 3
#: seconds the hung environment's logins wait for its server
HUNG_TIMEOUT = 2


def ab_latency(url, n, c=4):
    """(50 % ms, 99 % ms, requests not answered 2xx) of `ab`."""
    out = subprocess.run([AB, '-q', '-n', str(n), '-c', str(c), '-s', '60',
                          '-A', 'alice:alice-pw', url], capture_output=True,
                         text=True, timeout=600).stdout
    cut = {p: int(re.search(r'^\s+%s%%\s+(\d+)' % p, out, re.M)[1])
           for p in (50, 99)}
    failed = int(re.search(r'Failed requests:\s+(\d+)', out)[1])
    non2xx = re.search(r'Non-2xx responses:\s+(\d+)', out)
    return cut[50], cut[99], failed + (int(non2xx[1]) if non2xx else 0)


class Background(threading.Thread):
    """Calls `step` again and again until stopped; what it returned."""

    def __init__(self, step):
        super().__init__(daemon=True)
        self.step, self.got, self.done = step, [], threading.Event()

    def run(self):
        while not self.done.is_set():
            self.got.append(self.step())

    def stop(self):
        self.done.set()
        self.join(30)
        return self.got


def _save(path):
    def step():
        with trac_env(path) as env:
            env.config.set('wiki', 'saved_by_benchmark', str(time.time()))
            env.config.save()
        time.sleep(0.3)
    return step


def _site(parent, hole):
    """Apache with `ok`, `saved` (SQLite) and `hung` (PostgreSQL at a
    port that never answers), each behind /<name>/f.txt for developers."""
    docs = docs_folder(parent)
    body = mpm(3, 8) + 'AliasMatch "^/([a-z]+)/f.txt" "%s/f.txt"\n' % docs
    for name in ('ok', 'saved', 'hung'):
        path = make_env(parent, name, extra_ini='\n[wsgiauth]\n'
                        'connect_timeout = %d\n' % HUNG_TIMEOUT)
        add_user(path, 'alice', 'alice-pw', 'developers')
        if name == 'hung':
            edit_ini(path, 'trac', 'database', 'postgres://trac:x@127.0.0.1:'
                     '%d/trac' % hole.port)
        script = auth_script(os.path.join(parent, name + '.wsgi'), path)
        body += auth_location('/' + name, script, group='developers')
    open_up(parent)
    return Apache(body).start()


HUNG = 'while 6 clients ask an environment whose PostgreSQL never answers'


def _scenarios(apache, parent):
    hung = '/hung/f.txt'
    return [
        ('quiet', None),
        (HUNG, lambda: [Background(lambda: basic_get(
             apache.port, hung, 'alice', 'alice-pw', timeout=30)[0])
             for _ in range(6)]),
        ("while another environment's trac.ini is saved every 0.3 s",
         lambda: [Background(_save(os.path.join(parent, 'saved')))]),
    ]


def measure(n):
    parent = public_dir('twa-bench-')
    hole = SilentServer()
    apache = _site(parent, hole)
    url = apache.url + '/ok/f.txt'
    results = {}
    try:
        ab_latency(url, 200)                        # warm every child
        for _ in range(ROUNDS):
            for label, start in _scenarios(apache, parent):
                others = start() if start else []
                for other in others:
                    other.start()
                time.sleep(0.5 if others else 0)
                measured = ab_latency(url, n)
                got = [x for other in others for x in other.stop()]
                results.setdefault(label, []).append(measured + (got,))
        log = apache.error_log()
    finally:
        apache.stop()
        hole.close()
    return results, log


def main(n=2000, out=None):
    if not AB:
        sys.exit('needs ab (apt-get install apache2-utils)')
    out = out or os.path.join(HERE, 'results-isolation.md')
    results, log = measure(n)
    quiet = statistics.median(r[1] for r in results['quiet'])
    lines = [
        '# One environment must not slow the others', '',
        '%s, %s, Python %s, %d cores; Apache event MPM, 3 children x 8 '
        'threads; `ab -c 4 -n %d` with right credentials on a '
        '`Require wsgi-group` location of a SQLite environment, %d rounds '
        'interleaved, medians.' % (
            datetime.date.today(), platform.node() or 'host',
            platform.python_version(), os.cpu_count(), n, ROUNDS), '',
        '| scenario | 50 % ms | 99 % ms | 99 % vs quiet | not 2xx | '
        'background requests/saves |', '|---|---:|---:|---:|---:|---:|']
    for label, runs in results.items():
        p50 = statistics.median(r[0] for r in runs)
        p99 = statistics.median(r[1] for r in runs)
        lines.append('| %s | %.0f | %.0f | %.2f | %d | %d |' % (
            label, p50, p99, p99 / max(quiet, 1), sum(r[2] for r in runs),
            sum(len(r[3]) for r in runs)))
    hung = [s for r in results[HUNG] for s in r[3]]
    lines += ['', 'The hung environment answered its clients %s, each after '
              'its `connect_timeout` (%d s); Apache\'s error log has %d '
              'refusal lines (one per refused login) and %d children that '
              'died.' % (', '.join('%d x %s' % (hung.count(s), s)
                                   for s in sorted(set(hung))),
                         HUNG_TIMEOUT,
                         log.count('tracwsgiauth: login refused'),
                         log.count('exit signal'))]
    publish(out, lines)


if __name__ == '__main__':
    main(*(int(a) if a.isdigit() else a for a in sys.argv[1:]))
