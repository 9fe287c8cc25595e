"""Repositories through a real Apache httpd: the locations `deploy`
writes (apache/repositories.conf, guarded by cgi-bin/repositories.wsgi)
side by side with the same repositories behind Apache's own modules and
behind a trivial Python provider, and the plain group path.

    /opt/tracwsgiauth-venv/bin/python -m benchmarks.repositories \\
        [N] [OUT.md] [--quick] [--rounds=K]

(from the checkout's top folder).

One Apache (Debian's, event MPM, mod_wsgi from pip) serves one Trac
environment, deployed with ``trac-admin ENV deploy``, with a Subversion
repository (500 files, 50 revisions) and a Git repository (500 files, 50
commits), and the same two repositories again in reference locations:

* ``mod_authn_file`` (``$apr1$``, ``htpasswd -m``; our users' hashes
  are ``$apr1$`` too, remembered once verified) + ``mod_authz_svn``
  with an ``AuthzSVNAccessFile`` of the same rules (Subversion), or
  ``Require valid-user`` (Git: Apache has no Git authorisation);
* a trivial Python provider: ``check_password``, ``groups_for_user``
  and ``allow_access`` that return constants, in the same shape of
  location as ours;
* no authentication at all (the limit).

Measured, each location in turn within every round, rounds interleaved,
medians shown:

1. requests/s (`ab`, no keep-alive, c=1 and c=4) of single repository
   requests: reads (svn GET of a file, svn PROPFIND, git ``info/refs``
   for upload-pack) and writes (svn DELETE of a path that does not exist,
   git POST to ``git-receive-pack`` with an empty body: our decision
   allows them for a committer and they change nothing);
2. wall time of a real ``svn checkout`` and a real ``git clone``;
3. both again while another process commits to the Trac database 100
   times a second (`benchmarks.apache.Writer`), every location under
   the same load;
4. the plain group path: ``Require wsgi-group developers`` with a
   trac.wsgi-style script against ``mod_authn_file`` +
   ``mod_authz_groupfile`` and a trivial Python provider.

N (default 2000) is the ab request count of the fast locations; git's
CGI locations get N/8. ``--quick``: items 1 and 4 only, no writer, 3
rounds (default N 400); ``--rounds=K``: K rounds instead of 5.
Writes a markdown table to OUT.md (default
benchmarks/results-repositories.md) and prints it.
"""

import collections
import datetime
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from benchmarks import HERE, publish
from benchmarks.apache import (AB, HTPASSWD, WRITES_PER_SECOND, Writer,
                               apache_version, cpu_model)
from tests.harness import (MODULES, Apache, auth_location, curl, deploy_ours,
                           docs_folder, make_env, open_up, public_dir,
                           set_password, trac_admin, trac_env, write_file)
from tests.repoclients import git, git_repo, svn, svn_repo
from tracwsgiauth.deployrepos import git_http_backend
from tracwsgiauth.repos import GRANTED

PASSWORD = 'bench-repo-secret'

#: users: Trac permission groups and the same in the reference files
COMMITTER, READER, OUTSIDER = 'committer', 'reader', 'outsider'

#: Subversion and Git repository names in Trac (and their URL names)
SVN_NAME, GIT_NAME = 'big', 'bigit'

FILES, REVISIONS = 500, 50

ROUNDS = 5

#: real clients run this many times more often (a fetch is short, and
#: noisier than thousands of requests)
FETCH_ROUNDS = 2

CONCURRENCY = (1, 4)

#: continues the [components] section make_env writes last
EXTRA_INI = """\
tracopt.versioncontrol.svn.* = enabled
tracopt.versioncontrol.git.* = enabled

[wsgiauth]
hash_scheme = md5
"""

#: the rules of the Trac environment, for mod_authz_svn
AUTHZ_SVN = """\
[groups]
developers = {committer}
readers = {reader}

[/]
@developers = rw
@readers = r
"""

GROUP_FILE = 'developers: {committer}\n'

TRIVIAL = '''
def check_password(environ, user, password):
    return user == {user!r} and password == {password!r}


def groups_for_user(environ, user):
    return {groups!r}


def allow_access(environ, host):
    return False
'''

#: reference locations (besides ours, which deploy writes)
SVN_LOCATION = """
<Location "{url}">
    DAV svn
    SVNPath "{repo}"
    SVNPathAuthz off
    SVNAdvertiseV2Protocol on
{auth}</Location>
"""

GIT_LOCATION = """
ScriptAliasMatch "^{url}(/.*)?$" "{backend}"
<Location "{url}">
    SetEnvIf Request_URI "^{url}(/.*)$" PATH_INFO=$1
    SetEnv GIT_PROJECT_ROOT "{repo}"
    SetEnv GIT_HTTP_EXPORT_ALL 1
{auth}</Location>
"""

#: mod_authz_svn as the svnbook sets it up for mixed anonymous and
#: authenticated access (anonymous first, credentials when needed)
AUTHZ_SVN_AUTH = """\
    AuthType Basic
    AuthName "bench"
    AuthBasicProvider file
    AuthUserFile "{htpasswd}"
    AuthzSVNAccessFile "{authz}"
    Satisfy Any
    Require valid-user
"""

FILE_AUTH = """\
    AuthType Basic
    AuthName "bench"
    AuthBasicProvider file
    AuthUserFile "{htpasswd}"
    Require valid-user
"""

#: the shape of a location of repositories.conf, with the trivial script
TRIVIAL_AUTH = """\
    AuthType Basic
    AuthName "bench"
    AuthBasicProvider wsgi
    WSGIAuthUserScript "{script}" application-group=%{{GLOBAL}}
    WSGIAuthGroupScript "{script}" application-group=%{{GLOBAL}}
    AuthzSendForbiddenOnFailure On
    Require wsgi-group {granted}
    <If "-z req('Authorization')">
        WSGIAccessScript "{script}" application-group=%{{GLOBAL}}
        Satisfy Any
    </If>
"""

GROUPFILE_LOCATION = """
<Location "{url}">
    AuthType Basic
    AuthName "bench"
    AuthBasicProvider file
    AuthUserFile "{htpasswd}"
    AuthGroupFile "{groups}"
    <RequireAll>
        Require valid-user
        Require group developers
    </RequireAll>
</Location>
"""

#: modules the reference locations need besides the harness's (dav and
#: dav_svn before authz_svn, which needs them loaded first)
MORE_MODULES = ('dav', 'dav_svn', 'authz_svn', 'authz_groupfile')


Site = collections.namedtuple('Site', 'parent env target svn git htpasswd '
                              'authz docs')


def site(parent):
    """The Trac environment with its two repositories, deployed, and the
    reference files: a `Site`."""
    env = make_env(parent, 'proj', extra_ini=EXTRA_INI)
    with trac_env(env) as e, e.db_transaction as db:
        db("INSERT INTO system VALUES ('bench', '0')")     # for Writer
    svn_dir = svn_repo(parent, 'svn-big', files=FILES, revisions=REVISIONS)
    git_dir = git_repo(parent, 'git-big.git', files=FILES, commits=REVISIONS)
    trac_admin(env, 'repository', 'add', SVN_NAME, svn_dir, 'svn')
    trac_admin(env, 'repository', 'add', GIT_NAME, git_dir, 'git')
    # private repositories: only the Trac groups below read them
    for action in ('BROWSER_VIEW', 'FILE_VIEW'):
        trac_admin(env, 'permission', 'remove', 'anonymous', action)
    trac_admin(env, 'permission', 'add', 'developers', 'BROWSER_VIEW',
               'FILE_VIEW', 'REPOSITORY_COMMIT')
    trac_admin(env, 'permission', 'add', 'readers', 'BROWSER_VIEW',
               'FILE_VIEW')
    set_password(env, COMMITTER, PASSWORD, 'developers')
    set_password(env, READER, PASSWORD, 'readers')
    set_password(env, OUTSIDER, PASSWORD)
    target = deploy_ours(env, '--url=/trac').target
    htpasswd = os.path.join(parent, 'htpasswd')
    for n, user in enumerate((COMMITTER, READER, OUTSIDER)):
        subprocess.run([HTPASSWD, '-bm' + ('c' if n == 0 else ''),
                        htpasswd, user, PASSWORD], check=True,
                       capture_output=True)
    authz = write_file(os.path.join(parent, 'authz'), AUTHZ_SVN.format(
        committer=COMMITTER, reader=READER))
    write_file(os.path.join(parent, 'groups'),
               GROUP_FILE.format(committer=COMMITTER))
    docs = os.path.join(parent, 'docs')
    for location in ('open', 'group', 'group-file', 'group-trivial'):
        docs_folder(docs, location)
    open_up(parent)
    # the repositories were given to Apache's user; open_up keeps that
    return Site(parent, env, target, svn_dir, git_dir, htpasswd, authz,
                docs)


def apache_body(s):
    """The configuration: deploy's trac.conf and repositories.conf, and
    the reference locations."""
    repo_trivial = write_file(os.path.join(s.parent, 'trivial-repo.wsgi'),
                              TRIVIAL.format(user=COMMITTER,
                                             password=PASSWORD,
                                             groups=[GRANTED]))
    group_trivial = write_file(os.path.join(s.parent, 'trivial-group.wsgi'),
                               TRIVIAL.format(user=COMMITTER,
                                              password=PASSWORD,
                                              groups=['developers']))
    lines = ['LoadModule %s_module "%s/mod_%s.so"' % (m, MODULES, m)
             for m in MORE_MODULES]
    lines += ['Include "%s/apache/trac.conf"' % s.target,
              'Include "%s/apache/repositories.conf"' % s.target,
              'DocumentRoot "%s"' % s.docs]
    body = '\n'.join(lines) + '\n'
    auths = {'file': AUTHZ_SVN_AUTH.format(htpasswd=s.htpasswd,
                                           authz=s.authz),
             'trivial': TRIVIAL_AUTH.format(script=repo_trivial,
                                            granted=GRANTED),
             'open': ''}
    for ref, auth in auths.items():
        body += SVN_LOCATION.format(url='/svn-%s/%s' % (ref, SVN_NAME),
                                    repo=s.svn, auth=auth)
    auths['file'] = FILE_AUTH.format(htpasswd=s.htpasswd)
    for ref, auth in auths.items():
        body += GIT_LOCATION.format(url='/git-%s/%s' % (ref, GIT_NAME),
                                    repo=s.git, backend=git_http_backend(),
                                    auth=auth)
    # the plain group path: the deployed trac.wsgi (whose daemon, from
    # trac.conf, answers the group questions)
    body += auth_location('/group', os.path.join(s.target, 'cgi-bin',
                                                 'trac.wsgi'),
                          'developers', realm='bench')
    body += GROUPFILE_LOCATION.format(
        url='/group-file', htpasswd=s.htpasswd,
        groups=os.path.join(s.parent, 'groups'))
    body += auth_location('/group-trivial', group_trivial, 'developers',
                          realm='bench')
    return body


#: (label, kind, method, path below the repository location, headers,
#: statuses for the committer, the reader and the outsider: a refusal
#: is 403 with AuthzSendForbiddenOnFailure, as repositories.conf has it,
#: 401 in the plain group locations, which do not set it)
REQUESTS = [
    ('svn GET of a file (read)', 'svn', 'GET',
     '/%s/trunk/d00/f0000.txt' % SVN_NAME, (), (200, 200, 403)),
    ('svn PROPFIND, Depth 0 (read)', 'svn', 'PROPFIND',
     '/%s/trunk/' % SVN_NAME, ('Depth: 0',), (207, 207, 403)),
    ('svn DELETE of a missing path (write)', 'svn', 'DELETE',
     '/%s/trunk/missing.txt' % SVN_NAME, (), (404, 403, 403)),
    ('git GET info/refs?service=git-upload-pack (read)', 'git', 'GET',
     '/%s/info/refs?service=git-upload-pack' % GIT_NAME, (),
     (200, 200, 403)),
    ('git POST git-receive-pack, empty body (write)', 'git', 'POST',
     '/%s/git-receive-pack' % GIT_NAME, (), (200, 403, 403)),
    ('static file, Require wsgi-group developers', 'group', 'GET',
     '/f.txt', (), (200, 401, 401)),
]

#: provider -> kind -> URL path of its location
LOCATIONS = {
    'ours': {'svn': '/svn', 'git': '/git', 'group': '/group'},
    'file': {'svn': '/svn-file', 'git': '/git-file', 'group': '/group-file'},
    'trivial': {'svn': '/svn-trivial', 'git': '/git-trivial',
                'group': '/group-trivial'},
    'open': {'svn': '/svn-open', 'git': '/git-open', 'group': '/open'},
}

#: what the reference of each kind is, in the tables
REFERENCE = {
    'svn': 'mod_authn_file + mod_authz_svn',
    'git': 'mod_authn_file, Require valid-user',
    'group': 'mod_authn_file + mod_authz_groupfile',
}

PROVIDER_LABELS = {'ours': 'tracwsgiauth', 'trivial': 'trivial Python',
                   'open': 'no auth (the limit)'}

#: one request (an entry of REQUESTS) at one provider's location
Case = collections.namedtuple('Case', 'request provider url')


def label_of(provider, kind):
    return REFERENCE[kind] if provider == 'file' else PROVIDER_LABELS[
        provider]


def cases(base):
    """Every (request, provider) to measure, with its URL. A write
    without authentication answers something else (git-http-backend
    refuses receive-pack without REMOTE_USER): no limit row for it."""
    found = []
    for request in REQUESTS:
        label, kind, method, path = request[:4]
        for provider, urls in LOCATIONS.items():
            if provider == 'open' and kind == 'git' and method == 'POST':
                continue
            found.append(Case(request, provider, base + urls[kind] + path))
    return found


EMPTY_BODY = os.path.join(tempfile.gettempdir(), 'twa-bench-empty')


def ab(url, method, headers, n, c, user=COMMITTER, password=PASSWORD):
    """(requests/s, failed, 99th percentile ms) of `n` requests at
    concurrency `c` by `ab`, no keep-alive; POST with an empty body."""
    args = [AB, '-q', '-n', str(n), '-c', str(c), '-s', '60',
            '-A', '%s:%s' % (user, password)]
    for header in headers:
        args += ['-H', header]
    if method == 'POST':
        write_file(EMPTY_BODY, '')
        args += ['-p', EMPTY_BODY, '-T',
                 'application/x-git-receive-pack-request']
    elif method != 'GET':
        args += ['-m', method]
    out = subprocess.run(args + [url], capture_output=True, text=True,
                         timeout=600).stdout
    rate = float(re.search(r'Requests per second:\s+([\d.]+)', out)[1])
    failed = int(re.search(r'Failed requests:\s+(\d+)', out)[1])
    p99 = float(re.search(r'^\s*99%\s+(\d+)', out, re.M)[1])
    return rate, failed, p99


def status(url, method, headers, user):
    """The status of one request as `user` (None: no credentials)."""
    extra = ['-X', method]
    for header in headers:
        extra += ['-H', header]
    if method == 'POST':
        extra += ['--data-binary', '', '-H',
                  'Content-Type: application/x-git-receive-pack-request']
    return curl(url, user, PASSWORD if user else None, extra=extra)[0]


def decisions(all_cases):
    """Statuses each location gives the committer, the reader, the
    outsider and no credentials: the decisions really ran. Fails when
    ours or the Subversion reference decides unlike Trac's rules."""
    table = {}
    for case in all_cases:
        _, kind, method, _, headers, wanted = case.request
        seen = tuple(status(case.url, method, headers, user)
                     for user in (COMMITTER, READER, OUTSIDER, None))
        table[case] = seen
        if case.provider == 'ours' or (case.provider == 'file' and
                                        kind != 'git'):
            assert seen == wanted + (401,), (case, seen, wanted)
        elif case.provider != 'open':
            assert seen[0] == wanted[0], (case, seen)
    return table


def median(values):
    return statistics.median(values) if values else float('nan')


def running_writer(env_path):
    """A started `Writer` that has made its first commits: opening the
    environment costs Trac a second of CPU, which must not fall on the
    first location measured."""
    writer = Writer(env_path)
    writer.start()
    deadline = time.monotonic() + 30
    while writer.commits < 10 and time.monotonic() < deadline:
        time.sleep(0.05)
    return writer


def rotated(items, turn):
    """`items`, starting `turn` places further each round, so that no
    location is always measured first (after a warm-up, a writer's
    start or whatever else a pass begins with)."""
    shift = turn % len(items)
    return items[shift:] + items[:shift]


def measure_requests(all_cases, n, rounds, writing_env=None):
    """Requests/s of every case at each concurrency, `rounds` times
    interleaved: {(case, c, condition): [rate, ...]}, failed counts, and
    the writer's commit rates. With `writing_env`, every round is done
    twice: quiet, and while a Writer commits to that environment."""
    rates = collections.defaultdict(list)
    tails = collections.defaultdict(list)
    failed = collections.Counter()
    commits = []
    conditions = ('quiet', 'writing') if writing_env else ('quiet',)
    for turn in range(rounds):
        for condition in conditions:
            writer = running_writer(writing_env) \
                if condition == 'writing' else None
            try:
                for case in rotated(all_cases, turn):
                    _, kind, method, _, headers = case.request[:5]
                    count = n if kind != 'git' else max(50, n // 8)
                    for c in CONCURRENCY:
                        ab(case.url, method, headers, min(count, 20 * c), c)
                        rate, bad, p99 = ab(case.url, method, headers,
                                            count, c)
                        rates[case, c, condition].append(rate)
                        tails[case, c, condition].append(p99)
                        failed[case, c, condition] += bad
            finally:
                if writer:
                    commits.append(writer.stop())
    return rates, failed, tails, commits


#: (client, kind): how it fetches the repository at a location's URL
CLIENTS = (('svn checkout', 'svn'), ('git clone', 'git'))


def fetch(kind, url, dest):
    """Seconds a real client takes to check out / clone `url` into
    `dest`, as the committer (credentials after the first 401)."""
    start = time.perf_counter()
    if kind == 'svn':
        svn(['checkout', '-q', url + '/trunk', dest], COMMITTER, PASSWORD,
            timeout=600, check=True)
    else:
        git(['clone', '-q', url, dest], COMMITTER, PASSWORD, timeout=600,
            check=True)
    elapsed = time.perf_counter() - start
    files = sum(len(names) for root, _, names in os.walk(dest)
                if '/.svn' not in root + '/' and '/.git' not in root + '/')
    assert files >= FILES, (url, files)
    shutil.rmtree(dest)
    return elapsed


def measure_fetches(base, rounds, writing_env=None):
    """Wall times of every client at every location, interleaved,
    `rounds` times: {(kind, provider, condition): [seconds, ...]}. The
    working copies are written to /dev/shm (RAM) where there is one, so
    that the disk does not add noise to what the server does."""
    times = collections.defaultdict(list)
    scratch = tempfile.mkdtemp(prefix='twa-bench-wc-', dir='/dev/shm'
                               if os.path.isdir('/dev/shm') else None)
    conditions = ('quiet', 'writing') if writing_env else ('quiet',)
    for kind in ('svn', 'git'):     # warm up every location once
        for urls in LOCATIONS.values():
            fetch(kind, base + repo_url(urls, kind), scratch + '/w')
    order = [(kind, provider, urls) for _, kind in CLIENTS
             for provider, urls in LOCATIONS.items()]
    for turn in range(rounds):
        for condition in conditions:
            writer = running_writer(writing_env) \
                if condition == 'writing' else None
            try:
                for kind, provider, urls in rotated(order, turn):
                    times[kind, provider, condition].append(fetch(
                        kind, base + repo_url(urls, kind), scratch + '/wc'))
            finally:
                if writer:
                    writer.stop()
    shutil.rmtree(scratch, ignore_errors=True)
    return times


def repo_url(urls, kind):
    return urls[kind] + '/' + (SVN_NAME if kind == 'svn' else GIT_NAME)


def code_version():
    """(the checkout's commit, whether the checkout's tracwsgiauth/ has
    uncommitted changes, where Apache's copy of tracwsgiauth -- the
    venv's -- is, whether that copy is the commit's code)."""
    top = os.path.dirname(HERE)

    def git_out(*args):
        return subprocess.run(['git', '-C', top] + list(args),
                              capture_output=True, text=True).stdout

    commit = git_out('rev-parse', '--short', 'HEAD').strip() or '?'
    dirty = bool(git_out('status', '--porcelain', '--', 'tracwsgiauth',
                         'templates').strip())
    installed = subprocess.run(
        [sys.executable, '-I', '-c', 'import tracwsgiauth, os; print('
         'os.path.dirname(tracwsgiauth.__file__))'], capture_output=True,
        text=True, cwd='/').stdout.strip()
    names = git_out('ls-tree', '--name-only', 'HEAD',
                    'tracwsgiauth/').split()
    same = bool(installed and names) and all(
        _read(os.path.join(installed, os.path.basename(name))) ==
        subprocess.run(['git', '-C', top, 'show', 'HEAD:' + name],
                       capture_output=True).stdout
        for name in names if name.endswith('.py'))
    return commit, dirty, installed, same


def _read(path):
    try:
        with open(path, 'rb') as f:
            return f.read()
    except OSError:
        return None



def fmt_ratio(value):
    return '%.2f' % value if value == value else ''


def request_table(all_cases, rates, failed, tails, condition):
    """Markdown rows of items 1 and 4 under `condition`. At c=1 a
    request's time is its latency, so 1/rate less 1/rate without auth
    is what the auth adds to each request (not shown for Git, whose
    CGI varies by more than that)."""
    def rate(case, c):
        return median(rates.get((case, c, condition), []))
    by_key = {(case.request, case.provider): case for case in all_cases}
    lines = ['| request | provider | c | req/s | min–max | errors | '
             'ours vs reference | ours vs trivial Python | vs no auth | '
             'ms added per request (c=1) | p99 ms |',
             '|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|']
    for case in all_cases:
        kind = case.request[1]
        for c in CONCURRENCY:
            values = rates.get((case, c, condition))
            if not values:
                continue
            mine = rate(case, c)
            ref = by_key.get((case.request, 'file'))
            triv = by_key.get((case.request, 'trivial'))
            limit = by_key.get((case.request, 'open'))
            ours = case.provider == 'ours'
            measured = limit and case.provider != 'open'
            lines.append('| %s | %s | %d | %.0f | %.0f–%.0f | %d | %s | %s '
                         '| %s | %s | %.0f |' % (
                             case.request[0], label_of(case.provider, kind),
                             c, mine, min(values), max(values),
                             failed[case, c, condition],
                             fmt_ratio(mine / rate(ref, c)) if ours else '',
                             fmt_ratio(mine / rate(triv, c)) if ours else '',
                             fmt_ratio(mine / rate(limit, c))
                             if measured else '',
                             '%.3f' % (1e3 / mine - 1e3 / rate(limit, c))
                             if measured and c == 1 and kind != 'git'
                             else '',
                             median(tails[case, c, condition])))
    return lines


def fetch_table(times, condition):
    lines = ['| client | provider | median s | min–max s | '
             'vs reference | vs no auth |',
             '|---|---|---:|---:|---:|---:|']
    for client, kind in CLIENTS:
        for provider in LOCATIONS:
            values = times.get((kind, provider, condition))
            if not values:
                continue
            mine = median(values)
            ref = median(times[kind, 'file', condition])
            limit = median(times[kind, 'open', condition])
            lines.append('| %s | %s | %.3f | %.3f–%.3f | %s | %s |' % (
                client, label_of(provider, kind), mine, min(values),
                max(values),
                fmt_ratio(mine / ref) if provider != 'file' else '',
                fmt_ratio(mine / limit) if provider != 'open' else ''))
    return lines


def wrong_statuses(access_log, all_cases, base):
    """Per request of the committer (ab's, the curl checks, warm-ups),
    how many Apache answered with another status than the expected one:
    {(method, path): count}; every request line of every case is
    counted."""
    wanted = {}
    for case in all_cases:
        method, expected = case.request[2], case.request[5][0]
        wanted['%s %s' % (method, case.url[len(base):])] = expected
    wrong = collections.Counter()
    pattern = re.compile(r'"%s" "(\S+ \S+) [^"]*" (\d+)$' % COMMITTER)
    for line in access_log.splitlines():
        found = pattern.search(line)
        if found and found[1] in wanted and \
                int(found[2]) != wanted[found[1]]:
            wrong[found[1]] += 1
    return wrong


def targets_table(all_cases, rates, times):
    """The issue's targets, met or not, from the medians."""
    def rounds(request, provider, c, condition):
        for case in all_cases:
            if case.request == request and case.provider == provider:
                return rates.get((case, c, condition), [])
        return []

    def rate(request, provider, c, condition):
        return median(rounds(request, provider, c, condition))

    def spread(request, c, condition):
        """min–max of ours ÷ reference round by round (each round
        measured both, one after the other)."""
        pairs = [a / b for a, b in zip(
            rounds(request, 'ours', c, condition),
            rounds(request, 'file', c, condition), strict=True)]
        return '%.2f–%.2f' % (min(pairs), max(pairs)) if pairs else ''

    def mark(value, ok):
        if value != value:
            return ''
        return '%.2f %s' % (value, 'yes' if ok(value) else '**NO**')
    lines = ['| what | condition | c | ours ÷ reference (target) | '
             'met | per round | ours ÷ trivial Python (target) | met |',
             '|---|---|---:|---|---|---|---|---|']
    for condition in ordered({key[2] for key in rates}):
        for request in REQUESTS:
            for c in CONCURRENCY:
                ours = rate(request, 'ours', c, condition)
                vs_ref = ours / rate(request, 'file', c, condition)
                vs_triv = ours / rate(request, 'trivial', c, condition)
                trivial_target = '' if request[1] == 'group' else '≥ 0.6'
                lines.append('| %s vs %s | %s | %d | ≥ 1.0 | %s | %s | %s '
                             '| %s |'
                             % (request[0], REFERENCE[request[1]],
                                condition, c, mark(vs_ref, lambda v: v >= 1),
                                spread(request, c, condition),
                                trivial_target, mark(
                                    vs_triv, lambda v: v >= 0.6)
                                if trivial_target else '%.2f' % vs_triv))
    for condition in ordered({key[2] for key in times}):
        for client, kind in CLIENTS:
            ratio = median(times[kind, 'ours', condition]) / median(
                times[kind, 'file', condition])
            lines.append('| %s wall time vs %s | %s | | ≤ 1.1 | %s | | | |' % (
                client, REFERENCE[kind], condition,
                mark(ratio, lambda v: v <= 1.1)))
    return lines


def ordered(conditions):
    return [c for c in ('quiet', 'writing') if c in conditions]


def decision_table(table):
    lines = ['| request | provider | %s | %s | %s | no credentials |'
             % (COMMITTER, READER, OUTSIDER), '|---|---|---:|---:|---:|---:|']
    for case, seen in table.items():
        lines.append('| %s | %s | %s |' % (
            case.request[0], label_of(case.provider, case.request[1]),
            ' | '.join(map(str, seen))))
    return lines


CACHES = """## What each cache on this path keys on

From tracwsgiauth/repoauth.py and tracwsgiauth/modwsgi.py (the code
measured); each is per Apache child process:

* loaded rules (trac.ini and the files it inherits): stamped by
  modification time, one stat per file per request; any change reloads
  them (`trac-admin repository add` touches trac.ini);
* rows read from SQLite (one memo per process for all its connections;
  per connection in WAL mode): reused while the database header's change
  counter (`PRAGMA data_version` in WAL mode) says nobody committed; ANY
  commit to the database (the writer rows) makes the process's next
  request read the account and the permission table again, waiting in
  0.1 ms steps while the commit still holds SQLite's lock; PostgreSQL
  rows are never reused;
* accepted logins (`outcomes.Outcomes`): a MAC of the credential as
  the client sent it, reused while the SQLite header reads as when it
  was checked (never on PostgreSQL or in WAL mode), for at most as long
  as its verified credential (below) or app password; so a repeated
  request of an unchanged database reads nothing but the header, and
  any commit makes the next request check afresh;
* what check_password read (account, permission rows, app password):
  the group check of the same request uses it (same thread, client
  address and port, method, URI and user), once; a request with
  credentials never runs the access script (it is only asked for
  requests without them), so it costs two Python calls and one look at
  the database;
* verified credentials: a MAC of (environment, user, stored hash,
  password), `cache_ttl` (300 s); the account state is read again after
  every commit, so a new password, lock or refused approval counts at
  once;
* repository decisions (`RepositoryGate.allowed`, `policy.Remembered`):
  per (user, repository, read or write), valid while the whole
  `permission` table reads the same rows and the `[authz_policy]` and
  `[svn]` authz files keep their modification times, at most 60 s (what
  plugins decide from elsewhere); a miss asks Trac's process over its
  Unix socket;
* group answers of `Require wsgi-group` (plain group path): per user,
  while the `permission` table reads the same, at most 60 s.
"""


NOTES = """\
## Notes

* mod_authz_svn: its `LoadModule authz_svn_module` must come AFTER
  `dav_svn_module`, else Apache does not start ("undefined symbol:
  dav_svn_get_repos_path2"). It needs `AuthzSVNAccessFile`, an
  authentication (`AuthType Basic`, `AuthBasicProvider file`,
  `AuthUserFile`) and `Require valid-user`; `Satisfy Any` (from
  mod_access_compat) lets anonymous try first, as the svnbook's mixed
  anonymous/authenticated example does. With `SVNPath` the `[/]` section
  of the access file applies (no repository name needed). The reference
  has `SVNPathAuthz off` like ours, so both make one decision per
  request; with the default `on`, mod_authz_svn also runs a sub-request
  per path a REPORT touches.
* Apache has no per-user authorisation for Git: its reference only
  authenticates (`Require valid-user`), so the Git ratios show what
  authorising costs on top of authenticating, against a CGI
  (git-http-backend, a fork and exec per request) that dominates.
* The writer is `benchmarks.apache.Writer` (it waits 10 ms between
  commits, so a slow commit on a busy machine lowers its rate).
* Re-run on a quiet machine: `bash benchmarks/run.sh` runs it with the
  other benchmarks, or alone `python -m benchmarks.repositories`; `python
  -m benchmarks.repositories 400 OUT.md --quick` gives items 1 and 4 in
  about a minute.
"""


def report(out, n, rounds, quick, decided, all_cases, rates, failed,
           tails, commits, times, wrong, version, load, elapsed):
    busy = load > 0.5 * (os.cpu_count() or 1)
    lines = [
        '# Repositories through Apache', '',
        '**NOISY: the machine was busy before this run began (load '
        'average %.1f on %d cores), so these numbers are not final: '
        're-run on a quiet machine.**' % (load, os.cpu_count() or 1)
        if busy else 'Load average before the run: %.1f on %d cores.'
        % (load, os.cpu_count() or 1), '',
        '%s, %s, Python %s, %s, %d cores, %s; Apache %s event MPM, '
        'mod_wsgi embedded auth; Subversion %s, Git %s. Code: commit %s%s; '
        'Apache imported tracwsgiauth from %s, %s. Run took %.0f s.'
        % (datetime.date.today(), platform.node() or 'host',
           platform.python_version(), platform.machine(), os.cpu_count(),
           cpu_model(), apache_version(), tool_version(['svn', '--version',
                                                        '--quiet']),
           tool_version(['git', '--version']).split()[-1], version[0],
           ' (the checkout had uncommitted changes in tracwsgiauth/)'
           if version[1] else '', version[2],
           'the code of that commit' if version[3] else
           'which is NOT the code of that commit (reinstall: '
           'contrib/setup.sh)', elapsed), '',
        'One Apache serves one Trac environment deployed by `trac-admin '
        'ENV deploy` (its `apache/trac.conf` and `apache/repositories.conf` '
        'Included as generated) with a Subversion repository of %d files '
        'in %d revisions and a Git repository of %d files in %d commits, '
        'private (anonymous has neither BROWSER_VIEW nor FILE_VIEW). The '
        'same repositories are also served behind `mod_authn_file` '
        '(`$apr1$`, `htpasswd -m`, the hash our users have too) + '
        '`mod_authz_svn` (`AuthzSVNAccessFile` with the same rules, '
        '`Satisfy Any` + `Require valid-user` as the svnbook sets up mixed '
        'anonymous/authenticated access, `SVNPathAuthz off` like ours) or '
        '+ `Require valid-user` (Git), behind a trivial Python provider '
        '(`check_password`, `groups_for_user`, `allow_access` returning '
        'constants, in a location of the same shape as ours), and with no '
        'authentication at all.' % (FILES, REVISIONS, FILES, REVISIONS), '',
        'Method: `ab` without keep-alive on 127.0.0.1 as user `%s`, %d '
        'requests per run (Git, a CGI: %d) after a short warm-up; every '
        'location and concurrency once per round, %d rounds interleaved; '
        'req/s is the median of the rounds, min–max their spread, errors '
        'the sum of ab\'s failed requests (connection errors, length '
        'mismatches; ab counts the 404 of the svn write as non-2xx, '
        'which is what it must answer: statuses are checked in the '
        'access log instead, below). Ratios are of medians; "per '
        'round" is the lowest and highest ours ÷ reference of a single '
        'round (where it spans 1.0, the rounds do not tell the two '
        'apart).'
        % (COMMITTER, n, max(50, n // 8), rounds), '',
        '## Decisions (status per user, checked before measuring)', '',
        '`%s` is in Trac group developers (BROWSER_VIEW, FILE_VIEW, '
        'REPOSITORY_COMMIT), `%s` in readers (BROWSER_VIEW, FILE_VIEW), '
        '`%s` in none. The writes are allowed for the committer and change '
        'nothing: mod_dav_svn answers 404 to a DELETE outside a '
        'transaction, git-http-backend an empty 200 to a receive-pack '
        'without commands; the reader gets 403, so authorisation ran. '
        'The Git reference has no authorisation at all.'
        % (COMMITTER, READER, OUTSIDER), '']
    lines += decision_table(decided)
    lines += ['', 'Apache\'s access log afterwards: ' + (
        'every request of the committer to these URLs got the status '
        'above.' if not wrong else 'requests of the committer answered '
        'with ANOTHER status than above: %s.' % ', '.join(
            '%s: %d' % item for item in sorted(wrong.items())))]
    lines += ['', '## Against the targets (issue 15)', '',
              'Medians of the tables below; "ours" is the location deploy '
              'wrote.', '']
    lines += targets_table(all_cases, rates, times)
    lines += ['', '## Requests/s, quiet (targets: ours ≥ 1.0× the reference, '
              '≥ 0.6× trivial Python)', '']
    lines += request_table(all_cases, rates, failed, tails, 'quiet')
    if commits:
        lines += ['', '## Requests/s while Trac commits to its database '
                  '(%d times a second asked, %.0f/s done)'
                  % (WRITES_PER_SECOND, median(commits)), '',
                  'Every location measured again while a thread of the '
                  'benchmark commits to the Trac environment\'s database '
                  'through Trac (median %.0f commits/s): every row shares '
                  'the load; only ours reads that database, and each commit '
                  'makes the next request of each Apache child read the '
                  'account and the permission table again.'
                  % median(commits), '']
        lines += request_table(all_cases, rates, failed, tails, 'writing')
    if times:
        lines += ['', '## Real clients: wall time (target: ours ≤ 1.1× the '
                  'reference)', '',
                  '`svn checkout` of trunk (%d files; about %d requests on '
                  'kept-alive connections, every one authorised: '
                  'OPTIONS, PROPFIND, REPORT, a GET per file) and `git '
                  'clone` (smart HTTP: info/refs, upload-pack) as `%s`, '
                  'credentials given after the first 401; median of %d '
                  'interleaved runs, working copies in RAM (/dev/shm).'
                  % (FILES, FILES + 12, COMMITTER,
                     len(times['svn', 'ours', 'quiet'])), '']
        lines += fetch_table(times, 'quiet')
        if any(key[2] == 'writing' for key in times):
            lines += ['', 'The same while Trac commits to its database '
                      '(the writer above):', '']
            lines += fetch_table(times, 'writing')
    lines += ['', CACHES.rstrip(), '', NOTES.rstrip()]
    if quick:
        lines += ['', 'QUICK RUN (--quick): items 1 and 4 only, no writer, '
                  'small N; a noisy, shared machine.']
    publish(out, lines)


def tool_version(args):
    try:
        return subprocess.run(args, capture_output=True,
                              text=True).stdout.split('\n')[0].strip()
    except OSError:
        return '?'


def main(*args):
    quick = '--quick' in args
    rounds = 3 if quick else ROUNDS
    for arg in args:
        if arg.startswith('--rounds='):
            rounds = int(arg[9:])
    args = [a for a in args if not a.startswith('--')]
    n = int(args[0]) if args else (400 if quick else 2000)
    out = args[1] if len(args) > 1 else os.path.join(
        HERE, 'results-repositories.md')
    if not (AB and HTPASSWD):
        sys.exit('needs ab and htpasswd (apt-get install apache2-utils)')
    started = time.monotonic()
    version = code_version()    # what Apache is about to import
    load = os.getloadavg()[0]   # of others: this run has not begun
    parent = public_dir('twa-bench-repos-')
    s = site(parent)
    apache = Apache(apache_body(s), policy=False).start()
    try:
        all_cases = cases(apache.url)
        decided = decisions(all_cases)
        rates, failed, tails, commits = measure_requests(
            all_cases, n, rounds, None if quick else s.env)
        times = {} if quick else measure_fetches(
            apache.url, FETCH_ROUNDS * rounds, s.env)
    finally:
        apache.stop()
    assert PASSWORD not in apache.error_log()
    wrong = wrong_statuses(apache.access_log(), all_cases, apache.url)
    report(out, n, rounds, quick, decided, all_cases, rates, failed, tails,
           commits, times, wrong, version, load,
           time.monotonic() - started)
    shutil.rmtree(parent, ignore_errors=True)


if __name__ == '__main__':
    tempfile.tempdir = '/tmp'
    main(*sys.argv[1:])
