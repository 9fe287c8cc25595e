"""Shared parts of the repository tests: Trac environments that know
Subversion and Git repositories, deployed with the repositories.conf that
`trac-admin ENV deploy` writes, a real Apache serving them, requests of
any method sent as they are (http.client), what landed in a repository,
and ``trac-admin ENV wsgiauth explain``.

Everything Apache reads lives under harness.public_dir folders; the
repositories belong to Apache's user (git-http-backend refuses others'
with "dubious ownership", mod_dav_svn must write them).
"""

import base64
import http.client
import os
import subprocess
from collections import namedtuple

from tests.harness import (TRAC_ADMIN, Apache, deploy_ours, include,
                           make_env, secret, trac_env, write_file,
                           bump)
from tests.repoclients import APACHE_OWNER, git_repo, svn_repo

#: [components] lines Trac needs to know svn and git repositories
VERSIONCONTROL = ('tracopt.versioncontrol.svn.* = enabled\n'
                  'tracopt.versioncontrol.git.* = enabled\n')

#: [components] line of Trac's AuthzPolicy
AUTHZ_POLICY = 'tracopt.perm.authz_policy.* = enabled\n'

#: the files and history of every repository `repo_env` makes
SVN_FILES, SVN_REVISIONS = 3, 2
GIT_FILES, GIT_COMMITS = 2, 2

RepoEnv = namedtuple('RepoEnv', 'name path target repos')


def repo_env(parent, name, svn=(), git=(), ini=(), components='',
             users=(), files=()):
    """A Trac environment `name` in `parent` knowing the Subversion
    repositories `svn` and the Git repositories `git` (names; made in
    parent/<name>-repos/, filled as SVN_FILES/GIT_FILES say), with the
    trac.ini options `ini` ((section, option, value)...), extra
    [components] lines, `users` ((name, password)...) and `files`
    ((path relative to the environment, text)...: authz files trac.ini
    names must exist when deploy asks the policies), deployed with
    deploy_ours. Call `open_up(parent)` and then `own` on the result's
    repositories before Apache starts."""
    path = make_env(parent, name, extra_ini=VERSIONCONTROL + components)
    folder = os.path.join(parent, name + '-repos')
    os.makedirs(folder)
    repos = {}
    for repo in svn:
        repos[repo] = svn_repo(folder, repo, files=SVN_FILES,
                               revisions=SVN_REVISIONS)
    for repo in git:
        repos[repo] = git_repo(folder, repo, files=GIT_FILES,
                               commits=GIT_COMMITS)
    from trac.versioncontrol.api import DbRepositoryProvider
    from tracwsgiauth.accounts import AuthStore
    with trac_env(path) as env:
        for section, option, value in ini:
            env.config.set(section, option, value)
        env.config.save()
    with trac_env(path) as env:
        provider = DbRepositoryProvider(env)
        for repo in svn:
            provider.add_repository(repo, repos[repo], 'svn')
        for repo in git:
            provider.add_repository(repo, repos[repo], 'git')
        for user, password in users:
            AuthStore(env).set_password(user, secret(password))
    for relpath, text in files:
        write_file(os.path.join(path, relpath), text)
    target = deploy_ours(path).target
    return RepoEnv(name, path, target, repos)


def own(*envs):
    """Give the repositories of `envs` (back) to Apache's user, after
    open_up."""
    if APACHE_OWNER:
        paths = [p for env in envs for p in env.repos.values()]
        subprocess.run(['chown', '-R', APACHE_OWNER] + paths, check=True)


def serve(envs, extra=''):
    """A started Apache serving the Trac environments and the
    repositories (apache/repositories.conf) of the deployed `envs`, with
    `extra` lines (MPM settings)."""
    targets = [env.target for env in envs]
    body = include(*targets) + ''.join(
        'Include "%s/apache/repositories.conf"\n' % t for t in targets)
    # trac.conf's daemon preloads trac.wsgi, which answers the group
    # questions of repositories.wsgi: no daemon of the harness's own
    return Apache(body + extra, policy=False).start()


Response = namedtuple('Response', 'status body headers')


def basic(user, password):
    """The Authorization header value of Basic credentials, UTF-8."""
    token = ('%s:%s' % (user, secret(password))).encode('utf-8')
    return 'Basic ' + base64.b64encode(token).decode('ascii')


def send(port, method, path, user=None, password=None, body=None,
         headers=None, timeout=30):
    """One request of any `method` on a new connection, `path` sent as it
    is (no normalisation), with Basic credentials when `user` is given."""
    conn = http.client.HTTPConnection('127.0.0.1', port, timeout=timeout)
    try:
        conn.putrequest(method, path, skip_accept_encoding=True)
        sent = dict(headers or {})
        if user is not None:
            sent['Authorization'] = basic(user, password)
        data = body.encode('utf-8') if isinstance(body, str) else body
        if data is not None or method in ('POST', 'PUT'):
            sent['Content-Length'] = str(len(data or b''))
        for key, value in sent.items():
            conn.putheader(key, value)
        conn.endheaders(data)
        response = conn.getresponse()
        return Response(response.status, response.read(), response.headers)
    finally:
        conn.close()


def svnlook(*args):
    """svnlook's output (e.g. svnlook('youngest', repo))."""
    return subprocess.run(['svnlook'] + list(args), check=True,
                          capture_output=True, text=True).stdout


def youngest(repo):
    """The youngest revision of a Subversion repository."""
    return int(svnlook('youngest', repo))


def git_ref(repo, ref='refs/heads/main'):
    """The commit `ref` of a (bare) Git repository names, or None."""
    proc = subprocess.run(['git', '-c', 'safe.directory=*', '--git-dir',
                           repo, 'rev-parse', '-q', '--verify',
                           ref + '^{commit}'], capture_output=True, text=True)
    return proc.stdout.strip() or None


def git_show(repo, spec):
    """`git show spec` of a (bare) Git repository, e.g. main:README.txt."""
    return subprocess.run(['git', '-c', 'safe.directory=*', '--git-dir',
                           repo, 'show', spec], check=True,
                          capture_output=True, text=True).stdout


def explain(env_path, user, method, url):
    """(allowed, printed text) of ``trac-admin ENV wsgiauth explain``:
    allowed is its exit status 0."""
    proc = subprocess.run([TRAC_ADMIN, env_path, 'wsgiauth', 'explain',
                           user, method, url], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode in (0, 1), proc.stdout + proc.stderr
    return proc.returncode == 0, proc.stdout + proc.stderr


def write_authz(path, text):
    """Write an authz file as an administrator edits it, its modification
    time surely different from any it had."""
    exists = os.path.exists(path)
    write_file(path, text)
    os.chmod(path, 0o644)
    if exists:
        bump(path)
    return path

