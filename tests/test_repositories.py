"""Subversion and Git over HTTP through the repositories.conf that
`trac-admin ENV deploy` writes, with real clients (svn, git), a real
Apache (three child processes) and real Trac environments: what users
may read and commit is what Trac's permission policies say, at the very
next request after a change; `wsgiauth explain` says what Apache does.

One Apache serves three environments (module fixture `site`):

* ``proj`` (/svn, /git): DefaultPermissionPolicy alone, anonymous may
  read nothing; svn ``code``, git ``tools``; alice has REPOSITORY_COMMIT,
  bob is in ``readers`` (BROWSER_VIEW, FILE_VIEW), carol in ``devs``
  (REPOSITORY_COMMIT), erin in ``juniors``, a group in ``devs``; dave and
  frank have nothing; gina has REPOSITORY_COMMIT (her account gets
  locked). ``strip_domains = CORP`` and ``ignore_auth_case``.
* ``authz`` (/authz-svn, /authz-git): AuthzPolicy before the default
  policy, anonymous keeps Trac's default read; svn ``docs`` and git
  ``site`` are public, svn ``docs2`` and git ``site2`` private by the
  authz file (AUTHZ).
* ``sa`` (/sa-svn, /sa-git): AuthzSourcePolicy (``[svn] authz_file``,
  relative to conf/) decides reads (SVN_AUTHZ), svn ``code``, git
  ``gcode``; alice and bob have REPOSITORY_COMMIT in Trac.

Every test leaves permissions and authz files as it found them.
"""

import http.client
import os
import re
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.harness import (mpm, open_up, public_dir, read_text, trac_admin,
                           trac_env)
from tests.repoapache import (AUTHZ_POLICY, basic, explain, git_ref, git_show,
                              own,
                              repo_env, send, serve, svnlook, write_authz,
                              youngest)
from tests.repoclients import git, git_commit_push, svn, svn_commit_file
from tracwsgiauth.apppasswords import AppPasswords

pytestmark = pytest.mark.apache

#: Apache child processes
CHILDREN = 3

PW = {name: name + '-pw' for name in
      ('alice', 'bob', 'carol', 'dave', 'erin', 'frank', 'gina', 'jürgen')}

AUTHZ = """\
[repository:docs@*]
bob = REPOSITORY_COMMIT

[repository:docs2@*]
alice = REPOSITORY_COMMIT
bob = !BROWSER_VIEW
authenticated = BROWSER_VIEW, FILE_VIEW
* =

[repository:site2@*]
alice = REPOSITORY_COMMIT
bob = !BROWSER_VIEW
authenticated = BROWSER_VIEW, FILE_VIEW
* =
"""

SVN_AUTHZ = """\
[/]
alice = r
* =

[code:/]
carol = r
"""

#: what the repositories of repoapache.repo_env hold (tree_paths, r1, r2)
SVN_TREE = {'trunk/d00/f0000.txt': 'changed in r2\n',
            'trunk/d00/f0001.txt': 'd00/f0001.txt\n',
            'trunk/d00/f0002.txt': 'd00/f0002.txt\n'}
GIT_TREE = {'README.txt': 'README.txt in commit 1\n',
            'd00/f0000.txt': 'd00/f0000.txt in commit 2\n',
            'd00/f0001.txt': 'd00/f0001.txt in commit 1\n'}


class Site(object):
    """The served environments, their repositories and Apache."""

    def __init__(self, apache, parent, proj, authz, sa, authz_file,
                 svn_authz_file, probe_log):
        self.apache, self.parent = apache, parent
        self.proj, self.authz, self.sa = proj, authz, sa
        self.authz_file, self.svn_authz_file = authz_file, svn_authz_file
        self.probe_log = probe_log
        self.url, self.port = apache.url, apache.port


@pytest.fixture(scope='module')
def site():
    parent = public_dir()
    users = [(name, PW[name]) for name in PW]
    proj = repo_env(parent, 'proj', svn=['code'], git=['tools'], users=users,
                    ini=[('wsgiauth', 'strip_domains', 'CORP'),
                         ('trac', 'ignore_auth_case', 'true')])
    authz_file = write_authz(os.path.join(parent, 'authz-policy.ini'), AUTHZ)
    authz = repo_env(
        parent, 'authz', svn=['docs', 'docs2'], git=['site', 'site2'],
        users=users, components=AUTHZ_POLICY,
        ini=[('wsgiauth', 'svn_url', '/authz-svn'),
             ('wsgiauth', 'git_url', '/authz-git'),
             ('trac', 'permission_policies', 'AuthzPolicy, '
              'DefaultPermissionPolicy, LegacyAttachmentPolicy'),
             ('authz_policy', 'authz_file', authz_file)])
    sa = repo_env(
        parent, 'sa', svn=['code'], git=['gcode'], users=users,
        ini=[('wsgiauth', 'svn_url', '/sa-svn'),
             ('wsgiauth', 'git_url', '/sa-git'),
             ('trac', 'permission_policies', 'AuthzSourcePolicy, '
              'DefaultPermissionPolicy, LegacyAttachmentPolicy'),
             ('svn', 'authz_file', 'svnauthz')],
        files=[('conf/svnauthz', SVN_AUTHZ)])
    svn_authz_file = os.path.join(sa.path, 'conf', 'svnauthz')
    with trac_env(proj.path) as env:
        from trac.perm import PermissionSystem
        perm = PermissionSystem(env)
        for subject, action in [
                ('readers', 'BROWSER_VIEW'), ('readers', 'FILE_VIEW'),
                ('devs', 'REPOSITORY_COMMIT'), ('juniors', 'devs'),
                ('bob', 'readers'), ('carol', 'devs'), ('erin', 'juniors'),
                ('gina', 'REPOSITORY_COMMIT')]:
            perm.grant_permission(subject, action)
    trac_admin(proj.path, 'permission', 'remove', 'anonymous',
               'BROWSER_VIEW', 'FILE_VIEW')
    trac_admin(proj.path, 'permission', 'add', 'alice', 'REPOSITORY_COMMIT')
    for user in ('alice', 'bob'):
        trac_admin(sa.path, 'permission', 'add', user, 'REPOSITORY_COMMIT')
    open_up(parent)
    own(proj, authz, sa)
    # which child process served each probe request (see `spread`)
    probe_log = os.path.join(parent, 'probes.log')
    apache = serve([proj, authz, sa], mpm(CHILDREN, 10) + (
        'CustomLog "%s" "%%P %%>s %%{X-Twa-Probe}i"\n' % probe_log))
    yield Site(apache, parent, proj, authz, sa, authz_file, svn_authz_file,
               probe_log)
    apache.stop()


# -- helpers --------------------------------------------------------------

def workdir(name='wc'):
    """A fresh folder path for a working copy or a clone."""
    return os.path.join(public_dir('twa-wc-'), name)


def ok(proc):
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def refused(proc, *texts):
    """The client failed, saying one of `texts`."""
    assert proc.returncode != 0, proc.stdout + proc.stderr
    assert any(text in proc.stderr for text in texts), proc.stderr
    return proc


def read(folder, relpath):
    with open(os.path.join(folder, relpath), encoding='utf-8') as f:
        return f.read()


def login(user):
    """The password of a login name such as CORP\\alice or ALICE."""
    return PW[user.split('\\')[-1].lower()]


def checkout(site, path, wc, user=None):
    return svn(['checkout', site.url + path, wc], user,
               login(user) if user else None)


def clone(site, path, folder, user=None):
    return git(['clone', '-q', site.url + path, folder], user,
               login(user) if user else None)


def commit(wc, relpath, text, user, message=None):
    """svn_commit_file as `user` (a login name), its password known."""
    return svn_commit_file(wc, relpath, text, message or 'By %s' % user,
                           user, login(user) if user else None)


def push(folder, relpath, text, user):
    return git_commit_push(folder, relpath, text, 'By %s' % user, user,
                           login(user) if user else None)


def admin(env, *args):
    """trac-admin ENV permission ..., as an administrator types it."""
    return trac_admin(env.path, 'permission', *args)


def status(site, method, path, user=None, **kw):
    return send(site.port, method, path, user,
                login(user) if user else None, **kw).status


def probes(site, token):
    """(pid, status) of every logged request carrying probe `token`."""
    found = []
    for line in read_text(site.probe_log).splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[2] == token:
            found.append((parts[0], int(parts[1])))
    return found


def spread(site, method, path, user=None, headers=None):
    """Send the same request, on new connections, six at a time, until
    every Apache child process has served it (at most 120 times); the
    statuses it got."""
    token = uuid.uuid4().hex
    sent = dict(headers or {}, **{'X-Twa-Probe': token})
    statuses = []
    with ThreadPoolExecutor(6) as pool:
        for _ in range(20):
            statuses += pool.map(
                lambda _: status(site, method, path, user, headers=sent),
                range(6))
            if len({pid for pid, _ in probes(site, token)}) >= CHILDREN:
                break
    pids = {pid for pid, _ in probes(site, token)}
    assert len(pids) == CHILDREN, 'served by %d children only' % len(pids)
    return statuses


DEPTH0 = {'Depth': '0'}


# -- Subversion -----------------------------------------------------------

def test_svn_checkout_log_commit_update_and_refused_commit(site):
    repo = site.proj.repos['code']
    before = youngest(repo)
    wc = workdir()
    out = ok(checkout(site, '/svn/code', wc, 'bob')).stdout
    assert 'Checked out revision %d.' % before in out
    for relpath, text in SVN_TREE.items():
        assert read(wc, relpath) == text
    log = ok(svn(['log', '-v', site.url + '/svn/code'], 'bob',
                 PW['bob'])).stdout
    assert 'Revision 2' in log and 'Add 3 files' in log
    assert 'M /trunk/d00/f0000.txt' in log

    # alice (REPOSITORY_COMMIT) commits; the revision lands, hers
    mine = workdir()
    ok(checkout(site, '/svn/code', mine, 'alice'))
    out = ok(commit(mine, 'trunk/alice.txt', 'from alice\n', 'alice',
                    'Alice was here')).stdout
    assert 'Committed revision %d.' % (before + 1) in out
    assert youngest(repo) == before + 1
    assert svnlook('cat', repo, 'trunk/alice.txt') == 'from alice\n'
    assert svnlook('author', repo).strip() == 'alice'
    assert svnlook('log', repo).strip() == 'Alice was here'

    # bob sees it: update and log
    out = ok(svn(['update', wc], 'bob', PW['bob'])).stdout
    assert 'A    %s' % os.path.join(wc, 'trunk', 'alice.txt') in out
    assert 'Updated to revision %d.' % (before + 1) in out
    assert read(wc, 'trunk/alice.txt') == 'from alice\n'
    log = ok(svn(['log', '-l', '1', site.url + '/svn/code'], 'bob',
                 PW['bob'])).stdout
    assert re.search(r'r%d \| alice \|' % (before + 1), log), log
    assert 'Alice was here' in log

    # bob (read only) may not commit: 403, nothing lands
    refused(commit(wc, 'trunk/bob.txt', 'from bob\n', 'bob'),
            "Access to '/svn/code/!svn/me' forbidden")
    assert youngest(repo) == before + 1
    assert 'bob.txt' not in svnlook('tree', repo)


def test_svn_anonymous_reads_public_but_must_log_in_to_commit(site):
    repo = site.authz.repos['docs']
    before = youngest(repo)
    wc = workdir()
    out = ok(checkout(site, '/authz-svn/docs', wc)).stdout
    assert 'Checked out revision %d.' % before in out
    for relpath, text in SVN_TREE.items():
        assert read(wc, relpath) == text
    assert 'Revision 2' in ok(svn(['log', site.url + '/authz-svn/docs'])
                              ).stdout
    # a commit needs a user: anonymous is asked for credentials
    refused(commit(wc, 'trunk/anon.txt', 'anonymous\n', None),
            'Authentication failed')
    assert youngest(repo) == before
    # bob commits to the public repository (REPOSITORY_COMMIT from the
    # AuthzPolicy file) from the working copy checked out anonymously
    ok(commit(wc, 'trunk/bob.txt', 'bob on docs\n', 'bob'))
    assert youngest(repo) == before + 1
    assert svnlook('author', repo).strip() == 'bob'
    assert svnlook('cat', repo, 'trunk/bob.txt') == 'bob on docs\n'


def test_svn_private_repository_asks_anonymous_for_credentials(site):
    for path, realm in [('/svn/code', 'trac proj'),
                        ('/authz-svn/docs2', 'trac authz'),
                        ('/sa-svn/code', 'trac sa')]:
        wc = workdir()
        refused(checkout(site, path, wc), 'Authentication failed')
        assert not os.path.exists(os.path.join(wc, 'trunk'))
        response = send(site.port, 'GET', path + '/trunk/d00/f0001.txt')
        assert response.status == 401
        assert response.headers['WWW-Authenticate'] == \
            'Basic realm="%s"' % realm
        assert b'd00/f0001.txt' not in response.body
        # a wrong password is no better
        refused(svn(['checkout', site.url + path, wc], 'alice', 'wrong'),
                'Authentication failed')


def test_svn_user_without_read_is_forbidden(site):
    # dave: no permission at all; bob: !BROWSER_VIEW in the AuthzPolicy
    # file; bob again: REPOSITORY_COMMIT in Trac, nothing in [svn] authz
    for path, user in [('/svn/code', 'dave'), ('/authz-svn/docs2', 'bob'),
                       ('/sa-svn/code', 'bob')]:
        wc = workdir()
        refused(checkout(site, path, wc, user),
                "Access to '%s' forbidden" % path)
        assert not os.path.exists(os.path.join(wc, 'trunk'))
        response = send(site.port, 'GET', path + '/trunk/d00/f0001.txt',
                        user, login(user))
        assert response.status == 403
        assert b'd00/f0001.txt' not in response.body


# -- Git ------------------------------------------------------------------

def test_git_clone_fetch_push_and_refused_push(site):
    repo = site.proj.repos['tools']
    head = git_ref(repo)
    mine = workdir('bob')
    ok(clone(site, '/git/tools', mine, 'bob'))
    for relpath, text in GIT_TREE.items():
        assert read(mine, relpath) == text
    assert ok(git(['rev-parse', 'HEAD'], cwd=mine)).stdout.strip() == head

    # alice pushes; the commit lands in the bare repository
    hers = workdir('alice')
    ok(clone(site, '/git/tools', hers, 'alice'))
    ok(push(hers, 'alice/a.txt', 'from alice\n', 'alice'))
    pushed = ok(git(['rev-parse', 'HEAD'], cwd=hers)).stdout.strip()
    assert pushed != head
    assert git_ref(repo) == pushed
    assert git_show(repo, 'main:alice/a.txt') == 'from alice\n'

    # bob fetches it
    ok(git(['fetch', '-q', 'origin'], 'bob', PW['bob'], cwd=mine))
    assert ok(git(['rev-parse', 'origin/main'], cwd=mine)
              ).stdout.strip() == pushed
    ok(git(['merge', '-q', '--ff-only', 'origin/main'], cwd=mine))
    assert read(mine, 'alice/a.txt') == 'from alice\n'

    # bob (read only) may not push: 403, the ref stays
    refused(push(mine, 'bob/b.txt', 'from bob\n', 'bob'),
            'The requested URL returned error: 403')
    assert git_ref(repo) == pushed


def test_git_anonymous_clones_public_but_must_log_in_to_push(site):
    repo = site.authz.repos['site']
    head = git_ref(repo)
    folder = workdir()
    ok(clone(site, '/authz-git/site', folder))
    for relpath, text in GIT_TREE.items():
        assert read(folder, relpath) == text
    refused(push(folder, 'anon.txt', 'anonymous\n', None),
            'could not read Username')
    assert git_ref(repo) == head


def test_git_private_repository_asks_anonymous_for_credentials(site):
    for path in ('/git/tools', '/authz-git/site2', '/sa-git/gcode'):
        folder = workdir()
        refused(clone(site, path, folder), 'could not read Username')
        assert not os.path.exists(os.path.join(folder, 'README.txt'))
        response = send(site.port, 'GET',
                        path + '/info/refs?service=git-upload-pack')
        assert response.status == 401
        assert b'refs/heads/main' not in response.body
        refused(git(['ls-remote', site.url + path], 'alice', 'wrong'),
                'Authentication failed')


def test_git_user_without_read_is_forbidden(site):
    for path, user in [('/git/tools', 'dave'), ('/authz-git/site2', 'bob'),
                       ('/sa-git/gcode', 'bob')]:
        folder = workdir()
        refused(clone(site, path, folder, user),
                'The requested URL returned error: 403')
        assert not os.path.exists(os.path.join(folder, 'README.txt'))


# -- permissions, and their revocation at the next request ----------------

def test_trac_admin_grants_count_at_the_next_request(site):
    svn_repo, git_repo = site.proj.repos['code'], site.proj.repos['tools']
    wc, folder = workdir(), workdir('clone')
    refused(checkout(site, '/svn/code', wc, 'dave'), 'forbidden')
    try:
        admin(site.proj, 'add', 'dave', 'BROWSER_VIEW', 'FILE_VIEW')
        ok(checkout(site, '/svn/code', wc, 'dave'))
        ok(clone(site, '/git/tools', folder, 'dave'))
        assert read(folder, 'README.txt') == GIT_TREE['README.txt']
        refused(commit(wc, 'trunk/dave1.txt', 'no\n', 'dave'), 'forbidden')

        admin(site.proj, 'add', 'dave', 'REPOSITORY_COMMIT')
        before = youngest(svn_repo)
        ok(commit(wc, 'trunk/dave2.txt', 'yes\n', 'dave'))
        assert youngest(svn_repo) == before + 1
        assert svnlook('author', svn_repo).strip() == 'dave'
        ok(push(folder, 'dave/d.txt', 'dave\n', 'dave'))
        head = git_ref(git_repo)
        assert git_show(git_repo, 'main:dave/d.txt') == 'dave\n'
        # every child lets dave write now
        assert set(spread(site, 'GET', '/git/tools/info/refs?service='
                          'git-receive-pack', 'dave')) == {200}

        admin(site.proj, 'remove', 'dave', 'REPOSITORY_COMMIT')
        refused(commit(wc, 'trunk/dave3.txt', 'no\n', 'dave'), 'forbidden')
        refused(push(folder, 'dave/e.txt', 'no\n', 'dave'),
                'The requested URL returned error: 403')
        assert youngest(svn_repo) == before + 1
        assert git_ref(git_repo) == head
        assert set(spread(site, 'GET', '/git/tools/info/refs?service='
                          'git-receive-pack', 'dave')) == {403}
        ok(git(['fetch', '-q'], 'dave', PW['dave'], cwd=folder))
    finally:
        admin(site.proj, 'remove', 'dave', '*')
    # read went too, in every child
    refused(svn(['update', wc], 'dave', PW['dave']), 'forbidden')
    refused(git(['fetch', '-q'], 'dave', PW['dave'], cwd=folder),
            'The requested URL returned error: 403')
    assert set(spread(site, 'PROPFIND', '/svn/code/', 'dave',
                      DEPTH0)) == {403}


def _kept_alive(site, requests):
    """The statuses of `requests` ((method, path, user, before) where
    `before()` runs first) sent one after another on ONE connection,
    which Apache keeps open: the same client address and port."""
    conn = http.client.HTTPConnection('127.0.0.1', site.port, timeout=30)
    statuses, sockets = [], set()
    try:
        for method, path, user, before in requests:
            before()
            conn.request(method, path, headers=dict(
                DEPTH0, Authorization=basic(user, login(user))))
            response = conn.getresponse()
            response.read()
            statuses.append(response.status)
            sockets.add(id(conn.sock))
    finally:
        conn.close()
    assert len(sockets) == 1, 'Apache did not keep the connection open'
    return statuses


def test_a_change_counts_on_the_next_request_of_a_kept_alive_connection(
        site):
    # what a check read for one request is never reused by the next one,
    # not even the same request on the same connection
    same = ('PROPFIND', '/svn/code/', 'bob')
    try:
        assert _kept_alive(site, [
            same + (lambda: None,),
            same + (lambda: admin(site.proj, 'remove', 'bob', 'readers'),),
            same + (lambda: _set_approval(site, 'pending', 'bob'),),
            same + (lambda: _set_approval(site, None, 'bob'),),
            same + (lambda: admin(site.proj, 'add', 'bob', 'readers'),),
        ]) == [207, 403, 401, 403, 207]
    finally:
        _set_approval(site, None, 'bob')
        trac_admin(site.proj.path, 'permission', 'add', 'bob', 'readers',
                   check=False)


def test_credentials_sent_to_a_public_repository_are_checked(site):
    # without credentials anonymous reads; a request that sends them is
    # decided as its user, and a wrong password is refused, not ignored
    path = '/authz-svn/docs/trunk/d00/f0001.txt'
    assert status(site, 'GET', path) == 200
    assert status(site, 'GET', path, 'dave') == 200
    assert send(site.port, 'GET', path, 'dave', 'wrong-pw').status == 401
    assert send(site.port, 'GET', path, 'nobody', 'x').status == 401
    said, text = explain(site.authz.path, 'dave', 'GET', path)
    assert said and 'decided as its user' in text, text


def test_trac_admin_implies_commit_and_versioncontrol_admin_does_not(site):
    path = '/git/tools/info/refs?service=git-receive-pack'
    assert status(site, 'GET', path, 'frank') == 403
    try:
        admin(site.proj, 'add', 'frank', 'VERSIONCONTROL_ADMIN')
        assert status(site, 'GET', path, 'frank') == 403
        admin(site.proj, 'add', 'frank', 'TRAC_ADMIN')
        response = send(site.port, 'GET', path, 'frank', PW['frank'])
        assert response.status == 200
        assert b'# service=git-receive-pack' in response.body
    finally:
        admin(site.proj, 'remove', 'frank', '*')
    assert status(site, 'GET', path, 'frank') == 403


def test_groups_and_groups_of_groups(site):
    svn_repo, git_repo = site.proj.repos['code'], site.proj.repos['tools']
    wc_carol, wc_erin, folder = workdir(), workdir(), workdir('clone')
    ok(checkout(site, '/svn/code', wc_carol, 'carol'))
    ok(checkout(site, '/svn/code', wc_erin, 'erin'))
    ok(clone(site, '/git/tools', folder, 'carol'))
    before = youngest(svn_repo)
    ok(commit(wc_carol, 'trunk/carol.txt', 'carol\n', 'carol'))
    ok(commit(wc_erin, 'trunk/erin.txt', 'erin\n', 'erin'))
    assert youngest(svn_repo) == before + 2
    assert svnlook('author', svn_repo).strip() == 'erin'
    ok(push(folder, 'carol/c.txt', 'carol\n', 'carol'))
    head = git_ref(git_repo)
    assert git_show(git_repo, 'main:carol/c.txt') == 'carol\n'
    try:
        # juniors no longer in devs: erin's very next commit is refused
        admin(site.proj, 'remove', 'juniors', 'devs')
        refused(commit(wc_erin, 'trunk/erin2.txt', 'no\n', 'erin'),
                'forbidden')
        ok(commit(wc_carol, 'trunk/carol2.txt', 'carol\n', 'carol'))
        assert youngest(svn_repo) == before + 3
        assert svnlook('author', svn_repo).strip() == 'carol'
        assert set(spread(site, 'PROPFIND', '/svn/code/', 'erin',
                          DEPTH0)) == {403}
    finally:
        admin(site.proj, 'add', 'juniors', 'devs')
    ok(commit(wc_erin, 'trunk/erin3.txt', 'again\n', 'erin'))
    assert youngest(svn_repo) == before + 4
    try:
        admin(site.proj, 'remove', 'carol', 'devs')
        refused(push(folder, 'carol/d.txt', 'no\n', 'carol'),
                'The requested URL returned error: 403')
        assert git_ref(git_repo) == head
    finally:
        admin(site.proj, 'add', 'carol', 'devs')


def test_groups_of_authenticated(site):
    wc = workdir()
    refused(checkout(site, '/svn/code', wc, 'frank'), 'forbidden')
    try:
        admin(site.proj, 'add', 'authenticated', 'readers')
        ok(checkout(site, '/svn/code', wc, 'frank'))
        assert read(wc, 'trunk/d00/f0001.txt') == SVN_TREE[
            'trunk/d00/f0001.txt']
        assert set(spread(site, 'PROPFIND', '/svn/code/', 'frank',
                          DEPTH0)) == {207}
        # still no read without credentials
        assert status(site, 'PROPFIND', '/svn/code/', headers=DEPTH0) == 401
    finally:
        admin(site.proj, 'remove', 'authenticated', 'readers')
    refused(svn(['update', wc], 'frank', PW['frank']), 'forbidden')
    assert set(spread(site, 'PROPFIND', '/svn/code/', 'frank',
                      DEPTH0)) == {403}


def test_authz_policy_file_grants_and_revokes(site):
    docs2, site2 = site.authz.repos['docs2'], site.authz.repos['site2']
    wc, folder = workdir(), workdir('clone')
    ok(checkout(site, '/authz-svn/docs2', wc, 'alice'))
    ok(clone(site, '/authz-git/site2', folder, 'alice'))
    before = youngest(docs2)
    ok(commit(wc, 'trunk/alice.txt', 'alice\n', 'alice'))
    assert youngest(docs2) == before + 1
    assert svnlook('author', docs2).strip() == 'alice'
    ok(push(folder, 'alice/a.txt', 'alice\n', 'alice'))
    head = git_ref(site2)
    assert git_show(site2, 'main:alice/a.txt') == 'alice\n'
    # carol reads as 'authenticated', may not commit
    carol = workdir()
    ok(checkout(site, '/authz-svn/docs2', carol, 'carol'))
    assert read(carol, 'trunk/alice.txt') == 'alice\n'
    refused(commit(carol, 'trunk/carol.txt', 'no\n', 'carol'), 'forbidden')
    refused(checkout(site, '/authz-svn/docs2', workdir(), 'bob'),
            'forbidden')
    try:
        # alice's line goes: her next commit and push are refused, she
        # still reads as 'authenticated'
        write_authz(site.authz_file, AUTHZ.replace(
            'alice = REPOSITORY_COMMIT\n', ''))
        refused(commit(wc, 'trunk/alice2.txt', 'no\n', 'alice'),
                'forbidden')
        refused(push(folder, 'alice/b.txt', 'no\n', 'alice'),
                'The requested URL returned error: 403')
        assert youngest(docs2) == before + 1
        assert git_ref(site2) == head
        ok(svn(['update', wc], 'alice', PW['alice']))
        assert set(spread(site, 'MERGE', '/authz-svn/docs2/',
                          'alice')) == {403}
        # bob's denial goes: he reads at once
        write_authz(site.authz_file, AUTHZ.replace(
            'bob = !BROWSER_VIEW\n', ''))
        ok(checkout(site, '/authz-svn/docs2', workdir(), 'bob'))
        ok(clone(site, '/authz-git/site2', workdir(), 'bob'))
        assert set(spread(site, 'PROPFIND', '/authz-svn/docs2/', 'bob',
                          DEPTH0)) == {207}
        # and comes back: refused at once, in every child
        write_authz(site.authz_file, AUTHZ)
        refused(checkout(site, '/authz-svn/docs2', workdir(), 'bob'),
                'forbidden')
        assert set(spread(site, 'PROPFIND', '/authz-svn/docs2/', 'bob',
                          DEPTH0)) == {403}
    finally:
        write_authz(site.authz_file, AUTHZ)
    ok(commit(wc, 'trunk/alice3.txt', 'again\n', 'alice'))
    assert youngest(docs2) == before + 2


def test_svn_authz_file_decides_reads(site):
    repo = site.sa.repos['code']
    wc, mine = workdir(), workdir()
    ok(checkout(site, '/sa-svn/code', wc, 'carol'))       # [code:/]
    assert read(wc, 'trunk/d00/f0001.txt') == SVN_TREE['trunk/d00/f0001.txt']
    ok(checkout(site, '/sa-svn/code', mine, 'alice'))     # [/]
    ok(clone(site, '/sa-git/gcode', workdir(), 'alice'))  # [/] for git too
    refused(clone(site, '/sa-git/gcode', workdir(), 'carol'),
            'The requested URL returned error: 403')
    before = youngest(repo)
    ok(commit(mine, 'trunk/alice.txt', 'alice\n', 'alice'))
    assert youngest(repo) == before + 1
    # carol reads but has no REPOSITORY_COMMIT
    refused(commit(wc, 'trunk/carol.txt', 'no\n', 'carol'), 'forbidden')
    assert set(spread(site, 'PROPFIND', '/sa-svn/code/', 'carol',
                      DEPTH0)) == {207}
    try:
        write_authz(site.svn_authz_file, SVN_AUTHZ.replace('carol = r',
                                                           'carol ='))
        refused(svn(['update', wc], 'carol', PW['carol']), 'forbidden')
        assert set(spread(site, 'PROPFIND', '/sa-svn/code/', 'carol',
                          DEPTH0)) == {403}
        # no read in the authz file: REPOSITORY_COMMIT in Trac is not
        # enough to commit
        write_authz(site.svn_authz_file, SVN_AUTHZ.replace('alice = r',
                                                           'alice ='))
        refused(commit(mine, 'trunk/alice2.txt', 'no\n', 'alice'),
                'forbidden')
        assert youngest(repo) == before + 1
        # read for everybody, anonymous too
        write_authz(site.svn_authz_file, SVN_AUTHZ.replace('* =', '* = r'))
        ok(checkout(site, '/sa-svn/code', workdir()))
        ok(clone(site, '/sa-git/gcode', workdir()))
    finally:
        write_authz(site.svn_authz_file, SVN_AUTHZ)
    refused(checkout(site, '/sa-svn/code', workdir()),
            'Authentication failed')
    ok(svn(['update', wc], 'carol', PW['carol']))
    ok(commit(mine, 'trunk/alice3.txt', 'again\n', 'alice'))
    assert youngest(repo) == before + 2


def test_a_missing_authz_file_fails_closed(site):
    public = '/authz-svn/docs/trunk/d00/f0001.txt'
    assert send(site.port, 'GET', public).body == b'd00/f0001.txt\n'
    os.remove(site.authz_file)
    try:
        got = [status(site, 'GET', public),
               status(site, 'GET', '/authz-svn/docs2/trunk/', 'carol'),
               status(site, 'GET', '/authz-git/site2/info/refs?service='
                      'git-upload-pack', 'alice')]
        assert all(code in (401, 403) for code in got), got
    finally:
        write_authz(site.authz_file, AUTHZ)
    assert send(site.port, 'GET', public).body == b'd00/f0001.txt\n'
    assert status(site, 'GET', '/authz-svn/docs2/trunk/', 'carol') == 200


# -- names and account state ----------------------------------------------

def test_domain_and_case_forms_commit_as_the_trac_user(site):
    repo, git_repo = site.proj.repos['code'], site.proj.repos['tools']
    wc = workdir()
    ok(checkout(site, '/svn/code', wc, 'CORP\\alice'))
    for number, name in enumerate(['CORP\\alice', 'ALICE', 'corp\\Alice',
                                   'CORP\\ALICE']):
        before = youngest(repo)
        ok(commit(wc, 'trunk/names%d.txt' % number, name + '\n', name))
        assert youngest(repo) == before + 1
        assert svnlook('author', repo).strip() == 'alice', name
        log = ok(svn(['log', '-l', '1', site.url + '/svn/code'], name,
                     login(name))).stdout
        assert re.search(r'r%d \| alice \|' % (before + 1), log), log
    # a domain Trac is not told to strip is another user: unknown
    before = youngest(repo)
    refused(svn_commit_file(wc, 'trunk/other.txt', 'no\n', 'Other',
                            'OTHER\\alice', PW['alice']),
            'Authentication failed')
    assert youngest(repo) == before
    folder = workdir()
    ok(clone(site, '/git/tools', folder, 'CORP\\ALICE'))
    ok(push(folder, 'names/corp.txt', 'corp\n', 'CORP\\alice'))
    assert git_show(git_repo, 'main:names/corp.txt') == 'corp\n'


def test_a_non_ascii_domain_name_commits_as_the_trac_user(site):
    # CORP\\Jürgen is jürgen for Trac: his svn commit's author, his git
    # push; his read-only app password clones the files but cannot push
    repo, git_repo = site.proj.repos['code'], site.proj.repos['tools']
    user = 'CORP\\Jürgen'
    admin(site.proj, 'add', 'jürgen', 'REPOSITORY_COMMIT')
    try:
        with trac_env(site.proj.path) as env:
            read_only = AppPasswords(env).create('jürgen', 'ci', 'read')[1]
        wc = workdir()
        ok(checkout(site, '/svn/code', wc, user))
        before = youngest(repo)
        ok(commit(wc, 'trunk/jürgen.txt', 'grüße\n', user))
        assert youngest(repo) == before + 1
        assert svnlook('author', repo).strip() == 'jürgen'
        folder = workdir('clone')
        ok(git(['clone', '-q', site.url + '/git/tools', folder], user,
               read_only))
        assert read(folder, 'README.txt') == GIT_TREE['README.txt']
        head = git_ref(git_repo)
        refused(git_commit_push(folder, 'j/ro.txt', 'no\n', 'ro', user,
                                read_only),
                'The requested URL returned error: 403')
        assert git_ref(git_repo) == head
        ok(git(['reset', '-q', '--hard', 'origin/main'], cwd=folder))
        ok(push(folder, 'j/grüße.txt', 'grüße\n', user))
        assert git_show(git_repo, 'main:j/grüße.txt') == 'grüße\n'
    finally:
        admin(site.proj, 'remove', 'jürgen', 'REPOSITORY_COMMIT')


def _set_approval(site, value, user='gina'):
    with trac_env(site.proj.path) as env:
        with env.db_transaction as db:
            db("DELETE FROM session_attribute WHERE sid=%s "
               "AND name='approval'", (user,))
            if value:
                db("INSERT INTO session_attribute VALUES "
                   "(%s, 1, 'approval', %s)", (user, value))


def test_revoked_account_is_refused_even_with_a_warm_cache(site):
    repo, git_repo = site.proj.repos['code'], site.proj.repos['tools']
    wc, folder = workdir(), workdir('clone')
    ok(checkout(site, '/svn/code', wc, 'gina'))
    ok(clone(site, '/git/tools', folder, 'gina'))
    # every child has verified gina's password (the cache is warm)
    assert set(spread(site, 'PROPFIND', '/svn/code/', 'gina',
                      DEPTH0)) == {207}
    before, head = youngest(repo), git_ref(git_repo)
    _set_approval(site, 'revoked')
    try:
        refused(commit(wc, 'trunk/gina.txt', 'no\n', 'gina'),
                'Authentication failed', 'forbidden')
        refused(push(folder, 'gina/g.txt', 'no\n', 'gina'),
                'Authentication failed', 'error: 403')
        refused(svn(['update', wc], 'gina', PW['gina']),
                'Authentication failed', 'forbidden')
        refused(git(['ls-remote', site.url + '/git/tools'], 'gina',
                    PW['gina']), 'Authentication failed', 'error: 403')
        assert youngest(repo) == before and git_ref(git_repo) == head
        assert set(spread(site, 'PROPFIND', '/svn/code/', 'gina',
                          DEPTH0)) <= {401, 403}
        allowed, text = explain(site.proj.path, 'gina', 'PROPFIND',
                                '/svn/code/')
        assert not allowed and 'approval revoked' in text, text
    finally:
        _set_approval(site, None)
    ok(commit(wc, 'trunk/gina.txt', 'gina\n', 'gina'))
    assert youngest(repo) == before + 1
    assert svnlook('author', repo).strip() == 'gina'


def test_a_new_password_counts_at_once_in_every_child(site):
    # every child has accepted gina's password and remembers it, with the
    # database unchanged since; trac-admin sets a new one
    wc = workdir()
    ok(checkout(site, '/svn/code', wc, 'gina'))
    assert set(spread(site, 'PROPFIND', '/svn/code/', 'gina',
                      DEPTH0)) == {207}
    trac_admin(site.proj.path, 'wsgiauth', 'passwd', 'gina',
               stdin='gina-new-pw\n')
    try:
        refused(svn(['update', wc], 'gina', PW['gina']),
                'Authentication failed')
        assert set(spread(site, 'PROPFIND', '/svn/code/', 'gina',
                          DEPTH0)) == {401}
        ok(svn(['update', wc], 'gina', 'gina-new-pw'))
        assert send(site.port, 'PROPFIND', '/svn/code/', 'gina',
                    'gina-new-pw', headers=DEPTH0).status == 207
    finally:
        trac_admin(site.proj.path, 'wsgiauth', 'passwd', 'gina',
                   stdin=PW['gina'] + '\n')
    ok(svn(['update', wc], 'gina', PW['gina']))


def test_explain_states_the_status_apache_sends(site):
    # explain prints the HTTP status of a refusal; for an account Trac
    # refuses (approval revoked) and for a name with no account, Apache's
    # check_password already refuses the credentials: a 401, not a 403
    wrong = []
    _set_approval(site, 'revoked')
    try:
        for user in ('gina', 'OTHER\\alice', 'nobody-here'):
            said, text = explain(site.proj.path, user, 'PROPFIND',
                                 '/svn/code/')
            got = status(site, 'PROPFIND', '/svn/code/', user,
                         headers=DEPTH0) if user == 'gina' else \
                send(site.port, 'PROPFIND', '/svn/code/', user, 'any-pw',
                     headers=DEPTH0).status
            stated = re.findall(r'\((40[13])\)\s*$', text)
            if said or not stated or int(stated[0]) != got:
                wrong.append((user, got, text))
    finally:
        _set_approval(site, None)
    assert not wrong, (
        'PRODUCT BUG (explain): the status explain states for a refused '
        'account or an unknown user is not the one Apache sends: %r'
        % (wrong,))


# -- the same request, many at once ---------------------------------------

def test_parallel_ls_remote_of_a_private_repository(site):
    url = site.url + '/git/tools'
    head = git_ref(site.proj.repos['tools'])

    def ls_remote(password):
        return git(['ls-remote', url, 'refs/heads/main'], 'alice', password)
    with ThreadPoolExecutor(20) as pool:
        right = list(pool.map(ls_remote, [PW['alice']] * 20))
        wrong = list(pool.map(ls_remote, ['not-' + PW['alice']] * 20))
    for proc in right:
        assert ok(proc).stdout.split() == [head, 'refs/heads/main']
    for proc in wrong:
        refused(proc, 'Authentication failed')
        assert head not in proc.stdout


# -- hostile requests -----------------------------------------------------

#: methods svn's WebDAV does not read with, unknown ones included
WRITES = ['FOO', 'LOCK', 'UNLOCK', 'DELETE', 'PUT', 'MKCOL', 'PROPPATCH',
          'MERGE', 'COPY', 'MOVE', 'MKACTIVITY', 'CHECKOUT', 'POST', 'get',
          'Get', 'propfind']


def test_unknown_and_writing_methods_need_commit(site):
    wrong = []
    for path in ('/svn/code/trunk/d00/f0001.txt', '/svn/code/!svn/me',
                 '/authz-svn/docs2/', '/sa-svn/code/trunk/'):
        reader = {'/svn': 'bob', '/aut': 'carol', '/sa-': 'carol'}[path[:4]]
        for method in WRITES:
            for user, expected in [(None, 401), (reader, 403),
                                   ('dave', 403)]:
                got = status(site, method, path, user)
                if got != expected:
                    wrong.append((method, path, user, got, expected))
    # writes to a public repository need a user too
    for method in WRITES[:12]:
        for path in ('/authz-svn/docs/trunk/d00/f0001.txt',
                     '/authz-git/site/git-receive-pack'):
            got = status(site, method, path)
            if got != 401:
                wrong.append((method, path, None, got, 401))
    assert not wrong, wrong
    assert youngest(site.authz.repos['docs']) >= 2     # still there


def test_git_service_tricks_are_writes(site):
    for base, reader in [('/git/tools', 'bob'), ('/authz-git/site', None),
                         ('/authz-git/site2', 'carol')]:
        cases = []
        for query in ['service=git-receive-pack&service=git-upload-pack',
                      'service=git-upload-pack&service=git-receive-pack',
                      'service=git-receive-pack',
                      'service=git-upload-pack&service=',
                      'service=git-upload-pack;service=git-receive-pack',
                      'service=GIT-UPLOAD-PACK',
                      'service=git-upload-pack%00']:
            cases.append(('GET', base + '/info/refs?' + query))
        cases += [('POST', base + '/git-receive-pack'),
                  ('POST', base + '/info/refs?service=git-upload-pack'),
                  ('GET', base + '/git-receive-pack'),
                  ('PUT', base + '/HEAD'),
                  ('POST', base + '/objects/info/packs')]
        wrong = []
        for method, path in cases:
            for user in [None] + ([reader] if reader else []):
                expected = 401 if user is None else 403
                got = status(site, method, path, user)
                if got != expected:
                    wrong.append((method, path, user, got, expected))
        assert not wrong, wrong
    # and the plain read of the public one passes
    response = send(site.port, 'GET',
                    '/authz-git/site/info/refs?service=git-upload-pack')
    assert response.status == 200
    assert git_ref(site.authz.repos['site']).encode() in response.body


#: paths aimed at the private docs2/site2 through the public docs/site,
#: at proj's private code, or at no repository
TRICKS = [
    '/authz-svn/docs/../docs2/trunk/d00/f0001.txt',
    '/authz-svn/docs/%2e%2e/docs2/trunk/d00/f0001.txt',
    '/authz-svn/docs/%2E%2E/docs2/trunk/d00/f0001.txt',
    '/authz-svn/docs/./../docs2/trunk/d00/f0001.txt',
    '/authz-svn/docs/trunk/../../docs2/trunk/d00/f0001.txt',
    '/authz-svn//docs2/trunk/d00/f0001.txt',
    '//authz-svn/docs2/trunk/d00/f0001.txt',
    '/authz-svn/docs//../docs2/trunk/d00/f0001.txt',
    '/authz-svn/DOCS2/trunk/d00/f0001.txt',
    '/authz-svn/docs2%2Ftrunk/d00/f0001.txt',
    '/authz-svn/docs%2F..%2Fdocs2/trunk/d00/f0001.txt',
    '/authz-svn/docs%2f%2e%2e%2fdocs2/trunk/d00/f0001.txt',
    '/authz-svn/docs;x/../docs2/trunk/d00/f0001.txt',
    '/authz-svn/docs2;x/trunk/d00/f0001.txt',
    '/authz-svn/docs2/',
    '/authz-svn/docs2',
    '/authz-svn/docs2X/trunk/',
    '/authz-svn/%64ocs2/trunk/d00/f0001.txt',
    '/authz-svn/docs/!svn/bc/2/../../../docs2/trunk/d00/f0001.txt',
    '/authz-svn/docs2/!svn/bc/2/trunk/d00/f0001.txt',
    '/authz-git/site/../site2/info/refs?service=git-upload-pack',
    '/authz-git/site/%2e%2e/site2/info/refs?service=git-upload-pack',
    '/authz-git/site//../site2/HEAD',
    '/authz-git/site/../site2/HEAD',
    '/authz-git/site2/HEAD',
    '/authz-git/site2/objects/info/packs',
    '/authz-git/SITE2/HEAD',
    '/authz-git/site%2F..%2Fsite2/HEAD',
    '/authz-git/site2%2Finfo/refs?service=git-upload-pack',
    '/authz-git/%73ite2/info/refs?service=git-upload-pack',
    # private proj: code
    '/svn/code/trunk/d00/f0001.txt',
    '/svn/CODE/trunk/d00/f0001.txt',
    '/svn/code%2Ftrunk/d00/f0001.txt',
    '/svn//code/trunk/d00/f0001.txt',
    '/svn/code/../code/trunk/d00/f0001.txt',
    '/authz-svn/docs/../../svn/code/trunk/d00/f0001.txt',
    '/svn/x/../code/trunk/d00/f0001.txt',
]


def test_url_tricks_never_grant_more_than_the_real_repository(site):
    wrong = []
    secret_refs = [git_ref(site.authz.repos['site2']).encode(),
                   b'ref: refs/heads/main']
    for path in TRICKS:
        # bob may not read docs2 nor site2 (dave may: 'authenticated');
        # dave may not read proj's code (bob may)
        for user in (None, 'dave' if '/svn/' in path else 'bob'):
            response = send(site.port, 'GET', path, user,
                            login(user) if user else None)
            leaked = b'd00/f0001.txt' in response.body or \
                any(ref in response.body for ref in secret_refs)
            if response.status not in (401, 403, 404) or leaked:
                wrong.append((path, user, response.status,
                              response.body[:80]))
    # the absolute form of the request target
    absolute = site.url + '/authz-svn/docs/../docs2/trunk/d00/f0001.txt'
    got = send(site.port, 'GET', absolute).status
    if got != 401:
        wrong.append((absolute, None, got, b''))
    assert not wrong, wrong


def test_writes_always_need_a_user(site):
    # "* = REPOSITORY_COMMIT" in an AuthzPolicy section (everybody may
    # commit) matches anonymous too; still, a commit or push must come
    # from a user: Apache asks anonymous for credentials
    docs, site_repo = site.authz.repos['docs'], site.authz.repos['site']
    wc, folder = workdir(), workdir('clone')
    ok(checkout(site, '/authz-svn/docs', wc))
    ok(clone(site, '/authz-git/site', folder))
    before, head = youngest(docs), git_ref(site_repo)
    everybody = AUTHZ + '\n[repository:site@*]\n* = REPOSITORY_COMMIT\n'
    everybody = everybody.replace('bob = REPOSITORY_COMMIT',
                                  '* = REPOSITORY_COMMIT')
    try:
        write_authz(site.authz_file, everybody)
        statuses = {
            (method, path): status(site, method, path) for method, path in [
                ('POST', '/authz-svn/docs/!svn/me'),
                ('GET', '/authz-git/site/info/refs?service=git-receive-pack'),
                ('POST', '/authz-git/site/git-receive-pack')]}
        anonymous = commit(wc, 'trunk/anonymous.txt', 'anonymous\n', None)
        push(folder, 'anonymous.txt', 'anonymous\n', None)
        said, text = explain(site.authz.path, 'anonymous', 'POST',
                             '/authz-svn/docs/!svn/me')
        landed = youngest(docs) - before, git_ref(site_repo) != head
        # a user commits: under their name?
        ok(svn(['revert', '-R', wc]))
        ok(svn(['update', wc], 'carol', PW['carol']))
        ok(commit(wc, 'trunk/carol.txt', 'carol\n', 'carol'))
        author = svnlook('author', docs).strip()
    finally:
        write_authz(site.authz_file, AUTHZ)
    assert anonymous.returncode != 0 and landed == (0, False) and \
        set(statuses.values()) == {401} and not said and \
        author == 'carol', (
            'PRODUCT BUG: with "* = REPOSITORY_COMMIT" in an AuthzPolicy '
            'section (or REPOSITORY_COMMIT granted to anonymous) writes pass '
            'without credentials: statuses %r; anonymous svn commit: %r; '
            '(revisions, push) landed: %r; explain: %r; carol\'s commit '
            'recorded as author %r' % (
                statuses, anonymous.stdout + anonymous.stderr, landed, text,
                author))


def test_copy_into_a_repository_the_user_may_not_write(site):
    # bob may commit to docs, not even read docs2
    docs, docs2 = site.authz.repos['docs'], site.authz.repos['docs2']
    before = youngest(docs), youngest(docs2)
    for method in ('COPY', 'MOVE'):
        for destination in ['/authz-svn/docs2/trunk/copied.txt',
                            site.url + '/authz-svn/docs2/trunk/copied.txt']:
            got = status(site, method, '/authz-svn/docs/trunk/d00/'
                         'f0001.txt', 'bob',
                         headers={'Destination': destination})
            assert got not in (200, 201, 204) and got != 500, \
                (method, destination, got)
    assert (youngest(docs), youngest(docs2)) == before


# -- explain --------------------------------------------------------------

#: (environment, user, method, URL, allowed): explain's exit status and
#: the same request through Apache agree
EXPLAINED = [
    ('proj', 'anonymous', 'GET', '/svn/code/trunk/d00/f0001.txt', False),
    ('proj', 'anonymous', 'OPTIONS', '/svn/code/', False),
    ('proj', 'bob', 'PROPFIND', '/svn/code/', True),
    ('proj', 'bob', 'GET', '/svn/code/trunk/d00/f0001.txt', True),
    ('proj', 'bob', 'POST', '/svn/code/!svn/me', False),
    ('proj', 'bob', 'MKACTIVITY', '/svn/code/!svn/act/x', False),
    ('proj', 'bob', 'FOO', '/svn/code/', False),
    ('proj', 'alice', 'PROPPATCH', '/svn/code/trunk', True),
    ('proj', 'CORP\\alice', 'DELETE', '/svn/code/trunk/none.txt', True),
    ('proj', 'ALICE', 'MERGE', '/svn/code/', True),
    ('proj', 'carol', 'LOCK', '/svn/code/trunk/d00/f0001.txt', True),
    ('proj', 'erin', 'PUT', '/svn/code/trunk/none.txt', True),
    ('proj', 'dave', 'PROPFIND', '/svn/code/', False),
    ('proj', 'frank', 'GET', '/git/tools/HEAD', False),
    ('proj', 'dave', 'GET', '/git/tools/info/refs?service=git-upload-pack',
     False),
    ('proj', 'bob', 'GET', '/git/tools/info/refs?service=git-upload-pack',
     True),
    ('proj', 'bob', 'GET', '/git/tools/info/refs?service=git-receive-pack',
     False),
    ('proj', 'bob', 'GET', '/git/tools/info/refs?service=git-upload-pack'
     '&service=git-receive-pack', False),
    ('proj', 'alice', 'GET', '/git/tools/info/refs?service='
     'git-receive-pack', True),
    ('authz', 'anonymous', 'GET', '/authz-svn/docs/trunk/d00/f0001.txt',
     True),
    ('authz', 'anonymous', 'PROPFIND', '/authz-svn/docs2/', False),
    ('authz', 'anonymous', 'LOCK', '/authz-svn/docs/trunk/d00/f0001.txt',
     False),
    ('authz', 'bob', 'PROPPATCH', '/authz-svn/docs/trunk', True),
    ('authz', 'bob', 'PROPFIND', '/authz-svn/docs2/', False),
    ('authz', 'carol', 'PROPFIND', '/authz-svn/docs2/', True),
    ('authz', 'carol', 'MERGE', '/authz-svn/docs2/', False),
    ('authz', 'alice', 'MERGE', '/authz-svn/docs2/', True),
    ('authz', 'anonymous', 'GET', '/authz-git/site/info/refs?service='
     'git-upload-pack', True),
    ('authz', 'anonymous', 'GET', '/authz-git/site/info/refs?service='
     'git-receive-pack', False),
    ('authz', 'anonymous', 'GET', '/authz-git/site2/info/refs?service='
     'git-upload-pack', False),
    ('authz', 'carol', 'GET', '/authz-git/site2/info/refs?service='
     'git-upload-pack', True),
    ('authz', 'carol', 'GET', '/authz-git/site2/info/refs?service='
     'git-receive-pack', False),
    ('sa', 'anonymous', 'PROPFIND', '/sa-svn/code/', False),
    ('sa', 'carol', 'PROPFIND', '/sa-svn/code/', True),
    ('sa', 'bob', 'PROPFIND', '/sa-svn/code/', False),
    ('sa', 'bob', 'POST', '/sa-svn/code/!svn/me', False),
    ('sa', 'alice', 'PROPPATCH', '/sa-svn/code/trunk', True),
    ('sa', 'carol', 'GET', '/sa-git/gcode/info/refs?service=git-upload-pack',
     False),
    ('sa', 'alice', 'GET', '/sa-git/gcode/info/refs?service='
     'git-receive-pack', True),
]


def _through_apache(site, user, method, path):
    user = None if user == 'anonymous' else user
    return status(site, method, path, user,
                  headers=DEPTH0 if method == 'PROPFIND' else None)


def test_explain_agrees_with_apache(site):
    envs = {'proj': site.proj, 'authz': site.authz, 'sa': site.sa}
    with ThreadPoolExecutor(4) as pool:
        explained = list(pool.map(
            lambda case: explain(envs[case[0]].path, *case[1:4]), EXPLAINED))
    wrong = []
    for (env, user, method, path, allowed), (said, text) in zip(
            EXPLAINED, explained, strict=True):
        got = _through_apache(site, user, method, path)
        apache_allowed = got not in (401, 403)
        stated = re.findall(r'\((40[13])\)\s*$', text)
        if said != allowed or apache_allowed != allowed or \
                (stated and int(stated[0]) != got) or got == 500:
            wrong.append((env, user, method, path, allowed, said, got,
                          text))
    assert not wrong, wrong


def test_explain_agrees_with_what_the_clients_saw(site):
    # the client cases above, as an operator asks about them
    for env, user, method, url, allowed in [
            (site.proj, 'bob', 'POST', '/svn/code/!svn/me', False),
            (site.proj, 'alice', 'POST', '/svn/code/!svn/me', True),
            (site.proj, 'dave', 'OPTIONS', '/svn/code', False),
            (site.authz, 'anonymous', 'PROPFIND', '/authz-svn/docs', True),
            (site.authz, 'anonymous', 'POST', '/authz-svn/docs/!svn/me',
             False)]:
        said, text = explain(env.path, user, method, site.url + url)
        assert said == allowed, text
    said, text = explain(site.proj.path, 'bob', 'POST',
                         site.url + '/git/tools/git-receive-pack')
    assert not said
    assert 'REPOSITORY_COMMIT' in text and '(403)' in text, text
    said, text = explain(site.proj.path, 'anonymous', 'GET',
                         '/git/tools/info/refs?service=git-upload-pack')
    assert not said and '(401)' in text, text


#: URLs whose dot segments Apache resolves before anything else sees them
DOTTED = [
    ('anonymous', 'GET', '/authz-svn/docs/../docs2/trunk/d00/f0001.txt'),
    ('anonymous', 'GET', '/authz-svn/docs/%2e%2e/docs2/trunk/d00/f0001.txt'),
    ('anonymous', 'GET', '/authz-git/site/../site2/info/refs?service='
     'git-upload-pack'),
    ('bob', 'GET', '/authz-svn/docs/../docs2/trunk/d00/f0001.txt'),
]


def test_explain_resolves_dot_segments_as_apache_does(site):
    wrong = []
    for user, method, path in DOTTED:
        said, text = explain(site.authz.path, user, method, path)
        got = _through_apache(site, user, method, path)
        if said != (got not in (401, 403)):
            wrong.append((user, method, path, got, text))
    assert not wrong, (
        'PRODUCT BUG (explain): `wsgiauth explain` judges the URL as '
        'written, while Apache resolves "..", "%%2e%%2e" first; explain '
        'says allowed for requests Apache refuses: %r' % (wrong,))


# -- the whole module -----------------------------------------------------

def test_no_request_of_the_module_failed_with_500(site):
    # (run last: it looks through the logs of every test before it)
    assert set(spread(site, 'GET', '/authz-svn/docs/trunk/d00/'
                      'f0001.txt')) == {200}
    lines = site.apache.access_log().splitlines()
    failed = [line for line in lines if line.endswith(' 500')]
    assert not failed, failed[:5]
    log = site.apache.error_log()
    assert 'Traceback' not in log, log[-3000:]
