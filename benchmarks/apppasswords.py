"""App passwords through a real Apache httpd: requests/s of a repository
request authenticated with an app password against the same request
with the account password, verified once and then remembered (issue 17:
at least 0.9x).

    /opt/tracwsgiauth-venv/bin/python -m benchmarks.apppasswords [N] [OUT.md]

(from the checkout's top folder). The site of `benchmarks.repositories`
(one deployed environment, a private Subversion repository of 500 files);
`ab` without keep-alive at c=1 and c=4, each credential in turn within
every round, 5 rounds, medians. Writes benchmarks/results-apppasswords.md
(or OUT.md) and prints it.
"""

import datetime
import os
import platform
import shutil
import sys
import tempfile
import time

from benchmarks import HERE, publish
from benchmarks.apache import apache_version, cpu_model
from benchmarks.repositories import (COMMITTER, PASSWORD, SVN_NAME, ab,
                                     apache_body, median, site)
from tests.harness import Apache, curl, public_dir, secret, trac_env
from tracwsgiauth.apppasswords import AppPasswords

ROUNDS = 5

#: (label, method, path below the location, headers)
REQUESTS = [('svn GET of a file (read)', 'GET',
             '/svn/%s/trunk/d00/f0000.txt' % SVN_NAME, ()),
            ('svn PROPFIND, Depth 0 (read)', 'PROPFIND',
             '/svn/%s/trunk/' % SVN_NAME, ('Depth: 0',))]


def app_password(env_path):
    """A read-and-commit app password of the committer."""
    with trac_env(env_path) as env:
        return secret(AppPasswords(env).create(COMMITTER, 'bench',
                                               'commit')[1])


def measure(base, credentials, n):
    """label -> c -> credential -> [req/s per round]."""
    rates = {}
    for _ in range(ROUNDS):
        for label, method, path, headers in REQUESTS:
            for c in (1, 4):
                for name, password in credentials.items():
                    rate = ab(base + path, method, headers, n, c,
                              password=password)[0]
                    rates.setdefault(label, {}).setdefault(
                        c, {}).setdefault(name, []).append(rate)
    return rates


def report(out, rates, n, seconds):
    lines = ['# App passwords through Apache', '',
             '%s, %s, Python %s, %s cores, %s; %s. One deployed '
             'environment, a private Subversion repository; the committer '
             'logs in with the account password (`$apr1$`, verified once, '
             'then remembered) or a read-and-commit app password. `ab` '
             'without keep-alive, %d requests per run, each credential in '
             'turn within every round, %d rounds; req/s is the median. '
             'Run took %d s.' % (
                 datetime.date.today().isoformat(), platform.node(),
                 platform.python_version(), os.cpu_count(), cpu_model(),
                 apache_version(), n, ROUNDS, seconds), '',
             '| request | c | account password, req/s | app password, '
             'req/s | app ÷ account (target ≥ 0.9) |',
             '|---|---:|---:|---:|---:|']
    for label, by_c in rates.items():
        for c, by_name in by_c.items():
            account, app = median(by_name['account']), median(by_name['app'])
            lines.append('| %s | %d | %.0f | %.0f | %.2f |' % (
                label, c, account, app, app / account))
    publish(out, lines)


def main(n=2000, out=None):
    out = out or os.path.join(HERE, 'results-apppasswords.md')
    started = time.monotonic()
    parent = public_dir('twa-bench-app-')
    s = site(parent)
    token = app_password(s.env)
    apache = Apache(apache_body(s), policy=False).start()
    try:
        url = apache.url + REQUESTS[0][2]
        for password in (PASSWORD, token):      # both work, both warm
            assert curl(url, COMMITTER, password)[0] == 200
            ab(url, 'GET', (), 50, 1, password=password)
        rates = measure(apache.url, {'account': PASSWORD, 'app': token}, n)
    finally:
        apache.stop()
    assert token not in apache.error_log() + apache.access_log()
    report(out, rates, n, time.monotonic() - started)
    shutil.rmtree(parent, ignore_errors=True)


if __name__ == '__main__':
    tempfile.tempdir = '/tmp'
    main(*[int(a) if a.isdigit() else a for a in sys.argv[1:]])
