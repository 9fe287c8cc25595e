"""What ``deploy`` writes for an environment's repositories
(apache/repositories.conf, cgi-bin/repositories.wsgi, the commit hooks),
used as a site uses it: real Trac environments, a real Apache, real
``svn`` and ``git`` clients.

* the hooks, installed with the ``ln -sf`` lines deploy prints, bring
  commits and pushes made through Apache into Trac without a resync
  (changesets, timeline, CommitTicketUpdater), also several commits and
  new branches in one push;
* every repository Trac knows is served (trac.ini and the database, the
  default repository at /svn/default), aliases are not, odd names are
  refused with a note; deploy says which repositories anonymous may read,
  and private ones are private through Apache;
* ``[wsgiauth] svn_url``/``git_url`` move the locations after a deploy,
  and fail closed before it;
* a repository added later is served after a deploy and a graceful
  restart only;
* the generated ``apache/mod_wsgi-express`` serves them
  (``--include-file``), also to a Git client with an app password, which
  its login for the whole site would refuse;
* repositories.conf loads its modules in an Apache that has none of them,
  and is quiet in one that has them all; Apache's children load the auth
  script when they start, before a repository request;
* two environments in one Apache, each with its own URLs and a repository
  named ``main``, each with its own users and permissions.

One Apache serves the environments proj (default URLs), other
(``/b/svn``, ``/b/git``, private) and mv (moved by a test) for the whole
module; solo (private) is served on its own by mod_wsgi-express and by
Apaches with and without the modules.

Tests whose assertion message starts with "BUG:" show product bugs found
here: the post-receive hook misses a commit pushed as two new branches at
once and announces a pushed branch's commits again when it is merged;
deploy writes locations for ``svn_url``/``git_url`` values Apache cannot
match or parse; ``svn_url = git_url`` makes git reads count as writes;
the README's ``svn_url = /svn/NAME`` beside an environment at ``/svn``
with a repository NAME leaves the second environment unreachable.
"""

import contextlib
import os
import re
import subprocess

import pytest

from tests.harness import (APACHE, MODULES, TRAC_ADMIN, Apache, curl,
                           deploy_ours, edit_ini, free_port, load_modules,
                           make_env, module_config, open_up, private_dir,
                           public_dir, read_text, require, secret,
                           set_password,
                           started, stop_group, trac_admin, trac_env,
                           wait_for)
from tests.repoclients import (git, git_commit_push, git_repo, svn,
                               svn_commit_file, svn_repo)

#: what every environment here enables besides the plugin
COMPONENTS = """\
tracopt.versioncontrol.svn.* = enabled
tracopt.versioncontrol.git.* = enabled
tracopt.ticket.commit_updater.* = enabled
"""

#: the passwords of alice, who is a user of proj, other and mv with a
#: different password in each
PW = {'proj': 'alice-proj-pw', 'other': 'alice-other-pw',
      'mv': 'alice-mv-pw', 'solo': 'alice-solo-pw'}

#: the modules repositories.conf loads when Apache lacks them
REPO_MODULES = ('dav', 'dav_svn', 'cgid', 'env', 'setenvif', 'alias',
                'access_compat')

RUNUSER = ['runuser', '-u', 'nobody', '--'] if os.geteuid() == 0 else []


class Env(object):
    """A Trac environment of this module: its folders, the folders of its
    repositories by Trac name, and the output of its last deploy."""

    def __init__(self, name, parent, path, repos):
        self.name, self.parent, self.path, self.repos = \
            name, parent, path, repos
        self.target = os.path.join(parent, 'deploy-' + name)
        self.output = ''

    def deploy(self):
        """Deploy (again) as an administrator does, then install the
        hooks with the ``ln -sf`` lines deploy printed; the output."""
        self.output = deploy_ours(self.path, target=self.target).output
        for line in re.findall(r'^\s*(ln -sf .*)$', self.output, re.M):
            subprocess.run(['sh', '-c', line], check=True)
        open_up(self.path)   # trac-admin as root may have written there
        return self.output

    def conf(self):
        with open(os.path.join(self.target, 'apache', 'repositories.conf'),
                  encoding='utf-8') as f:
            return f.read()

    def include(self):
        return ('Include "{0}/apache/trac.conf"\n'
                'Include "{0}/apache/repositories.conf"\n'
                .format(self.target))

    def admin(self, *args):
        """trac-admin as root (an administrator), the environment opened
        up to Apache's user afterwards."""
        out = trac_admin(self.path, *args).stdout
        open_up(self.path)
        return out

    def set_option(self, section, option, value):
        edit_ini(self.path, section, option, value)
        open_up(self.path)

    def app_password(self, user, scope):
        """A new app password of `user` (``wsgiauth token add``)."""
        out = self.admin('wsgiauth', 'token', 'add', user, 'test-' + scope,
                         scope)
        return secret(re.search(r'tracapp_\w+', out).group(0))


def new_env(name, ini='', svn_repos=(), git_repos=(), added=()):
    """An environment `name` in a fresh public folder with repositories:
    `svn_repos`/`git_repos` ((Trac name, files) each) are declared in
    trac.ini's [repositories] (Trac's default repository for the name
    ''), `added` ((Trac name, kind, files)) are added with ``trac-admin
    repository add``. Apache's user may write the environment."""
    parent = public_dir()
    repos, lines = {}, ['[repositories]']
    for kind, specs in (('svn', svn_repos), ('git', git_repos)):
        for repo, files in specs:
            repos[repo] = make_repo(parent, kind, repo, files)
            lines += ['%s.dir = %s' % (repo, repos[repo]),
                      '%s.type = %s' % (repo, kind)]
    path = make_env(parent, name, extra_ini=COMPONENTS + ini + '\n' +
                    '\n'.join(lines) + '\n')
    env = Env(name, parent, path, repos)
    for repo, kind, files in added:
        env.repos[repo] = make_repo(parent, kind, repo, files)
        trac_admin(path, 'repository', 'add', repo, env.repos[repo], kind)
    open_up(path)
    return env


def make_repo(parent, kind, name, files):
    folder = (name or 'default').replace(' ', '-')
    if kind == 'svn':
        return svn_repo(parent, folder + '-svn', files=files)
    return git_repo(parent, folder + '.git', files=files)


def as_apache_user(*args):
    """A command run as Apache's user (as the hooks run), which owns the
    repositories (git refuses others') and may write the environments."""
    proc = subprocess.run(RUNUSER + list(args), capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def new_ticket(env_path, summary):
    from trac.ticket.model import Ticket
    with trac_env(env_path) as env:
        ticket = Ticket(env)
        ticket.populate({'summary': summary, 'reporter': 'alice',
                         'status': 'new', 'description': summary})
        return ticket.insert()


def ticket_comments(env_path, number):
    """The comments of ticket `number`, oldest first."""
    from trac.ticket.model import Ticket
    with trac_env(env_path) as env:
        return [change[4] for change in Ticket(env, number).get_changelog()
                if change[2] == 'comment' and change[4]]


# -- the module's Apache -----------------------------------------------------

def proj_env():
    """proj: default URLs; main (svn) and the default repository (svn) in
    trac.ini, code (git, cached as Trac caches svn, so its timeline needs
    the hook too) and an odd name added, an alias; alice may commit, bob
    may not; ticket #1."""
    env = new_env('proj', ini='[git]\ncached_repository = true\n',
                  svn_repos=[('main', 2), ('', 1)],
                  added=[('code', 'git', 2), ('odd name', 'svn', 1)])
    env.admin('repository', 'alias', 'al', 'main')
    set_password(env.path, 'alice', PW['proj'], 'REPOSITORY_COMMIT')
    set_password(env.path, 'bob', 'bob-proj-pw')
    assert new_ticket(env.path, 'Hooked ticket') == 1
    assert new_ticket(env.path, 'Fixed by a commit') == 2
    open_up(env.path)
    # what the cache holds before the first commit over HTTP (an
    # administrator's resync after adding repositories, as Apache's user)
    as_apache_user(TRAC_ADMIN, env.path, 'repository', 'resync', '*')
    env.listed = trac_admin(env.path, 'repository', 'list').stdout
    env.deploy()
    env.first_output, env.first_conf = env.output, env.conf()
    return env


def other_env():
    """other: /b/svn and /b/git, a private main (svn) and code (git) of
    their own; alice (another password) and bob may commit here, carol
    may read."""
    env = new_env('other', ini='[wsgiauth]\nsvn_url = /b/svn\n'
                  'git_url = /b/git\n', svn_repos=[('main', 5)],
                  git_repos=[('code', 5)])
    set_password(env.path, 'alice', PW['other'], 'REPOSITORY_COMMIT')
    set_password(env.path, 'bob', 'bob-other-pw', 'REPOSITORY_COMMIT')
    set_password(env.path, 'carol', 'carol-other-pw', 'BROWSER_VIEW',
                 'FILE_VIEW')
    env.admin('permission', 'remove', 'anonymous', 'BROWSER_VIEW',
              'FILE_VIEW')
    env.deploy()
    return env


def mv_env():
    """mv: default URLs (beside proj) until a test moves them."""
    env = new_env('mv', svn_repos=[('mvsvn', 1)], git_repos=[('mvgit', 1)])
    set_password(env.path, 'alice', PW['mv'], 'REPOSITORY_COMMIT')
    env.deploy()
    return env


@pytest.fixture(scope='module')
def proj():
    return proj_env()


@pytest.fixture(scope='module')
def site(proj):
    """proj, other and mv in one Apache, as a Debian site Includes them
    (the harness's Apache loads none of dav, dav_svn, cgid, env and
    access_compat: repositories.conf does)."""
    require(os.path.exists(MODULES + '/mod_dav_svn.so'),
            'mod_dav_svn (apt-get install libapache2-mod-svn)')
    envs = {'proj': proj, 'other': other_env(), 'mv': mv_env()}
    apache = Apache(''.join(e.include() for e in envs.values()),
                    policy=False)
    apache.start()
    apache.envs = envs
    yield apache
    apache.stop()


def graceful(apache):
    """A graceful restart, as an administrator makes one; the Apache
    parent process stays."""
    out = subprocess.run([APACHE, '-k', 'graceful', '-f', apache.conf],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert apache.proc.poll() is None


def page(apache, path):
    """A Trac page through the same Apache (anonymous)."""
    status, body = curl(apache.url + path)
    assert status == 200, (path, status, body[:2000])
    return body


# -- 1. hooks ----------------------------------------------------------------

@pytest.mark.apache
def test_svn_commit_shows_in_trac_and_updates_the_ticket(site):
    proj = site.envs['proj']
    wc = os.path.join(public_dir(), 'wc')
    url = site.url + '/svn/main'
    svn(['checkout', '-q', url, wc], check=True)
    out = svn_commit_file(wc, 'trunk/hooked.txt', 'hooked\n',
                          'Svn-hook-token-1 Refs #1, Fixes #2', 'alice',
                          PW['proj'])
    # no "post-commit hook failed" warning
    assert out.returncode == 0 and not out.stderr, out.stdout + out.stderr
    rev = re.search(r'Committed revision (\d+)', out.stdout).group(1)
    body = page(site, '/proj/changeset/%s/main' % rev)
    assert 'Svn-hook-token-1' in body
    assert 'Svn-hook-token-1' in page(site, '/proj/timeline?changeset=on')
    comments = ticket_comments(proj.path, 1)
    assert any('Svn-hook-token-1' in c and '%s/main' % rev in c
               for c in comments), comments
    assert 'Svn-hook-token-1' in page(site, '/proj/ticket/1')
    from trac.ticket.model import Ticket
    with trac_env(proj.path) as env:
        fixed = Ticket(env, 2)
        assert (fixed['status'], fixed['resolution']) == ('closed', 'fixed')


@pytest.mark.apache
def test_svn_commit_to_the_default_repository_shows_in_trac(site):
    wc = os.path.join(public_dir(), 'wc')
    svn(['checkout', '-q', site.url + '/svn/default', wc], check=True)
    out = svn_commit_file(wc, 'trunk/default.txt', 'default\n',
                          'Default-hook-token', 'alice', PW['proj'])
    assert out.returncode == 0 and not out.stderr, out.stdout + out.stderr
    rev = re.search(r'Committed revision (\d+)', out.stdout).group(1)
    assert 'Default-hook-token' in page(site, '/proj/changeset/%s' % rev)


@pytest.mark.apache
def test_git_pushes_of_several_commits_and_new_branches_all_reach_trac(site):
    proj = site.envs['proj']
    clone = os.path.join(public_dir(), 'clone')
    git(['clone', '-q', site.url + '/git/code', clone], check=True)
    # three commits in one push
    tokens = ['Git-hook-token-%d' % n for n in (1, 2, 3)]
    for token in tokens[:2]:
        write_commit(clone, token)
    out = git_commit_push(clone, 'pushed/%s.txt' % tokens[2], 'x\n',
                          tokens[2] + ' Refs #1', 'alice', PW['proj'])
    # the hook said nothing (git shows its output as "remote:" lines)
    assert out.returncode == 0 and 'remote:' not in out.stderr, out.stderr
    # a new branch of two new commits
    git(['checkout', '-q', '-b', 'topic'], cwd=clone, check=True)
    tokens += ['Git-branch-token-1', 'Git-branch-token-2']
    write_commit(clone, tokens[3])
    out = git_commit_push(clone, 'pushed/%s.txt' % tokens[4], 'x\n',
                          tokens[4] + ' Refs #1', 'alice', PW['proj'],
                          branch='topic')
    assert out.returncode == 0 and 'remote:' not in out.stderr, out.stderr
    timeline = page(site, '/proj/timeline?changeset=on')
    comments = '\n'.join(ticket_comments(proj.path, 1))
    for token in tokens:
        assert token in timeline, token
        assert token in comments, token
        sha = git(['log', '--format=%H', '-1', '--grep', token],
                  cwd=clone).stdout.strip()
        assert token in page(site, '/proj/changeset/%s/code' % sha)


def write_commit(clone, token):
    """A commit of a new file, message `token` Refs #1, not pushed."""
    with open(os.path.join(clone, token + '.txt'), 'w') as f:
        f.write(token + '\n')
    git(['add', token + '.txt'], cwd=clone, check=True)
    git(['commit', '-q', '-m', token + ' Refs #1'], cwd=clone, check=True)


@pytest.mark.apache
def test_git_push_of_two_new_branches_at_one_new_commit_reaches_trac(site):
    proj = site.envs['proj']
    clone = os.path.join(public_dir(), 'clone')
    git(['clone', '-q', site.url + '/git/code', clone], check=True)
    write_commit(clone, 'Twin-branch-token')
    out = git(['push', 'origin', 'HEAD:refs/heads/twin-a',
               'HEAD:refs/heads/twin-b'], 'alice', PW['proj'], cwd=clone)
    assert out.returncode == 0, out.stderr
    sha = git(['rev-parse', 'HEAD'], cwd=clone).stdout.strip()
    status = curl(site.url + '/proj/changeset/%s/code' % sha)[0]
    comments = '\n'.join(ticket_comments(proj.path, 1))
    assert status == 200 and 'Twin-branch-token' in comments, (
        'BUG: a commit pushed as two new branches at once never reaches '
        'Trac (changeset page %d, no ticket comment): for each ref, '
        'post-receive excludes the commits of every OTHER ref, and the '
        'other new branch already holds it' % status)


@pytest.mark.apache
def test_git_fast_forward_to_a_pushed_branch_comments_once(site):
    proj = site.envs['proj']
    clone = os.path.join(public_dir(), 'clone')
    git(['clone', '-q', site.url + '/git/code', clone], check=True)
    git(['checkout', '-q', '-b', 'feature'], cwd=clone, check=True)
    out = git_commit_push(clone, 'feature.txt', 'f\n',
                          'Merged-once-token Refs #1', 'alice', PW['proj'],
                          branch='feature')
    assert out.returncode == 0, out.stderr
    before = ticket_comments(proj.path, 1)
    assert sum('Merged-once-token' in c for c in before) == 1, before
    # main takes the pushed branch over (a fast-forward merge)
    out = git(['push', 'origin', 'HEAD:refs/heads/main'], 'alice',
              PW['proj'], cwd=clone)
    assert out.returncode == 0, out.stderr
    after = ticket_comments(proj.path, 1)
    assert after == before, (
        'BUG: merging a branch Trac already knows into main announces its '
        'commits again (post-receive lists $old..$new without excluding '
        'what other refs hold), so CommitTicketUpdater comments twice: %r'
        % after[len(before):])


# -- 2. what deploy serves and says ------------------------------------------

def listed_repositories(text):
    """(name, alias) of each row of `trac-admin ENV repository list`."""
    lines = text.splitlines()
    header = next(i for i, line in enumerate(lines)
                  if line.startswith('Name'))
    width = lines[header].index('Type')
    alias = lines[header].index('Alias'), lines[header].index('Directory')
    return [(line[:width].strip(), line[alias[0]:alias[1]].strip())
            for line in lines[header + 2:] if line.strip()]


def locations(conf):
    """URL path -> the lines of its <Location> (and ScriptAliasMatch)."""
    found = {}
    for url, target in re.findall(
            r'^ScriptAliasMatch "\^(.+)\(/\.\*\)\?\$" "([^"]+)"$', conf, re.M):
        found[re.sub(r'\\(.)', r'\1', url)] = 'ScriptAlias %s\n' % target
    for url, body in re.findall(r'^<Location "([^"]+)">\n(.*?)^</Location>',
                                conf, re.M | re.S):
        found[url] = found.get(url, '') + body
    return found


def test_deploy_serves_every_repository_trac_lists(proj):
    rows = dict(listed_repositories(proj.listed))
    assert rows == {'(default)': '', 'al': 'main', 'code': '',
                    'main': '', 'odd name': ''}, proj.listed
    served = locations(proj.first_conf)
    assert sorted(served) == ['/git/code', '/svn/default', '/svn/main']
    main, default, code = (served[u] for u in ('/svn/main', '/svn/default',
                                               '/git/code'))
    # main and the default repository from trac.ini, code from the database
    assert 'DAV svn' in main and \
        'SVNPath "%s"' % proj.repos['main'] in main
    assert 'SVNPath "%s"' % proj.repos[''] in default
    assert 'git-http-backend' in code and \
        'SetEnv GIT_PROJECT_ROOT "%s"' % proj.repos['code'] in code
    for body in served.values():
        assert 'Require wsgi-group trac-repository-access' in body
        assert 'cgi-bin/repositories.wsgi' in body
    out = proj.first_output
    # the alias is not served (its repository is), the odd name is refused
    assert '/al' not in proj.first_conf and ' al ' not in out
    assert 'odd name' not in proj.first_conf
    assert re.search(r'^\s*svn repository odd name is not served: .+$', out,
                     re.M), out
    for url, kind in (('/svn/main', 'svn'), ('/svn/default', 'svn'),
                      ('/git/code', 'git')):
        assert re.search(r'^\s*%s\s+%s, ANONYMOUS MAY READ it$'
                         % (url, kind), out, re.M), out
    assert 'take BROWSER_VIEW and FILE_VIEW from anonymous' in out
    # one hook per served repository, printed to install
    links = re.findall(r'^\s*ln -sf (\S+) (\S+)$', out, re.M)
    assert sorted(link for _, link in links) == sorted([
        proj.repos['main'] + '/hooks/post-commit',
        proj.repos[''] + '/hooks/post-commit',
        proj.repos['code'] + '/hooks/post-receive'])
    for hook, link in links:
        assert os.path.realpath(link) == hook and os.access(hook, os.X_OK)


@pytest.mark.apache
def test_taking_read_from_anonymous_makes_repositories_private(site):
    proj = site.envs['proj']
    public = site.url + '/svn/main/'
    assert curl(public)[0] == 200
    proj.admin('permission', 'remove', 'anonymous', 'BROWSER_VIEW',
               'FILE_VIEW')
    try:
        out = proj.deploy()
        assert 'ANONYMOUS MAY READ' not in out and 'take BROWSER_VIEW' \
            not in out, out
        for url in ('/svn/main', '/svn/default', '/git/code'):
            assert re.search(r'^\s*%s\s+\w+, only users Trac lets read it$'
                             % url, out, re.M), out
        status, _, headers = curl(public, headers=True)
        assert status == 401 and 'WWW-Authenticate: Basic' in headers
        assert curl(site.url + '/git/code/info/refs?service=git-upload-pack'
                    )[0] == 401
        work = public_dir()
        refused = svn(['checkout', site.url + '/svn/main', work + '/wc'])
        assert refused.returncode != 0 and \
            not os.path.exists(work + '/wc/trunk'), refused.stderr
        refused = git(['clone', site.url + '/git/code', work + '/clone'])
        assert refused.returncode != 0 and \
            not os.path.exists(work + '/clone/README.txt'), refused.stderr
        # bob is a user, but Trac lets him read nothing now: 403, no prompt
        assert curl(public, 'bob', 'bob-proj-pw')[0] == 403
        svn(['checkout', '-q', site.url + '/svn/main', work + '/alice'],
            'alice', PW['proj'], check=True)
        git(['clone', '-q', site.url + '/git/code', work + '/alice-git'],
            'alice', PW['proj'], check=True)
    finally:
        proj.admin('permission', 'add', 'anonymous', 'BROWSER_VIEW',
                   'FILE_VIEW')
    assert curl(public)[0] == 200


# -- 3. moving the locations -------------------------------------------------

@pytest.mark.apache
def test_svn_url_and_git_url_move_the_locations_after_a_deploy(site):
    mv = site.envs['mv']
    url, pw = site.url, PW['mv']
    assert curl(url + '/svn/mvsvn/')[0] == 200
    assert curl(url + '/git/mvgit/info/refs?service=git-upload-pack')[0] \
        == 200
    mv.set_option('wsgiauth', 'svn_url', '/code/svn')
    mv.set_option('wsgiauth', 'git_url', '/code/git')
    # not deployed again: the old locations refuse everything (fail
    # closed), the new ones are not served
    old = [('/svn/mvsvn/', ()), ('/svn/mvsvn/x', ('-X', 'MKCOL')),
           ('/git/mvgit/info/refs?service=git-upload-pack', ()),
           ('/git/mvgit/info/refs?service=git-receive-pack', ())]
    for path, extra in old:
        assert curl(url + path, extra=extra)[0] == 401, path
        assert curl(url + path, 'alice', pw, extra=extra)[0] == 403, path
    work = public_dir()
    assert svn(['checkout', url + '/svn/mvsvn', work + '/wc'], 'alice',
               pw).returncode != 0
    assert git(['clone', url + '/git/mvgit', work + '/clone'], 'alice',
               pw).returncode != 0
    assert curl(url + '/code/svn/mvsvn/')[0] == 404
    assert curl(url + '/code/git/mvgit/info/refs?service=git-upload-pack'
                )[0] == 404
    out = mv.deploy()
    assert re.search(r'^\s*/code/svn/mvsvn\s', out, re.M), out
    graceful(site)
    assert wait_for(lambda: curl(url + '/code/svn/mvsvn/')[0] == 200)
    svn(['checkout', '-q', url + '/code/svn/mvsvn', work + '/wc'],
        check=True)
    out = svn_commit_file(work + '/wc', 'trunk/moved.txt', 'm\n', 'Moved',
                          'alice', pw)
    assert out.returncode == 0, out.stderr
    git(['clone', '-q', url + '/code/git/mvgit', work + '/clone'],
        check=True)
    out = git_commit_push(work + '/clone', 'moved.txt', 'm\n', 'Moved',
                          'alice', pw)
    assert out.returncode == 0, out.stderr
    for path, extra in old:   # served by nothing (no DAV for MKCOL)
        assert curl(url + path, 'alice', pw, extra=extra)[0] == \
            (405 if extra else 404), path


# -- 4. a repository added after deploy ---------------------------------------

@pytest.mark.apache
def test_repository_added_later_is_served_after_deploy_and_graceful(site):
    proj = site.envs['proj']
    url = site.url
    late_svn = svn_repo(proj.parent, 'late-svn', files=1)
    late_git = git_repo(proj.parent, 'late.git', files=1)
    proj.admin('repository', 'add', 'late', late_svn, 'svn')
    proj.admin('repository', 'add', 'late-git', late_git, 'git')
    checks = ['/svn/late/', '/git/late-git/info/refs?service=git-upload-pack']
    for path in checks:
        assert curl(url + path)[0] == 404, path
    out = proj.deploy()
    assert re.search(r'^\s*/svn/late\s+svn, ANONYMOUS MAY READ it$', out,
                     re.M), out
    assert re.search(r'^\s*/git/late-git\s+git, ANONYMOUS MAY READ it$',
                     out, re.M), out
    for path in checks:   # deployed, but Apache has not read it yet
        assert curl(url + path)[0] == 404, path
    parent = site.proc.pid
    graceful(site)
    assert wait_for(lambda: curl(url + checks[0])[0] == 200)
    assert site.proc.pid == parent and site.proc.poll() is None
    work = public_dir()
    svn(['checkout', '-q', url + '/svn/late', work + '/wc'], check=True)
    assert os.path.exists(work + '/wc/trunk')
    git(['clone', '-q', url + '/git/late-git', work + '/clone'], check=True)
    assert os.path.exists(work + '/clone/README.txt')
    # the others are still served, and the new hook works
    assert curl(url + '/svn/main/')[0] == 200
    out = svn_commit_file(work + '/wc', 'trunk/late.txt', 'l\n',
                          'Late-hook-token', 'alice', PW['proj'])
    assert out.returncode == 0 and not out.stderr, out.stderr
    rev = re.search(r'Committed revision (\d+)', out.stdout).group(1)
    assert 'Late-hook-token' in page(site, '/proj/changeset/%s/late' % rev)


# -- 7. two environments -----------------------------------------------------

def svn_uuid(path):
    return subprocess.run(['svnlook', 'uuid', path], capture_output=True,
                          text=True, check=True).stdout.strip()


def served_uuid(url, *credentials):
    out = svn(['info', '--show-item', 'repos-uuid', url], *credentials)
    return out.stdout.strip() if out.returncode == 0 else None


def git_head(url, *credentials):
    out = git(['ls-remote', url, 'refs/heads/main'], *credentials)
    return out.stdout.split()[0] if out.returncode == 0 else None


def local_head(path):
    return git(['--git-dir', path, 'rev-parse', 'main'],
               check=True).stdout.strip()


@pytest.mark.apache
def test_two_environments_serve_their_own_main_to_their_own_users(site):
    proj, other = site.envs['proj'], site.envs['other']
    url = site.url
    # each URL serves its own environment's repository
    assert served_uuid(url + '/svn/main') == svn_uuid(proj.repos['main'])
    assert served_uuid(url + '/b/svn/main', 'alice', PW['other']) == \
        svn_uuid(other.repos['main'])
    assert git_head(url + '/b/git/code', 'alice', PW['other']) == \
        local_head(other.repos['code'])
    assert git_head(url + '/git/code') == local_head(proj.repos['code'])
    # other's repositories are private, to other's users only
    for creds in ((), ('alice', PW['proj']), ('bob', 'bob-proj-pw')):
        assert served_uuid(url + '/b/svn/main', *creds) is None, creds
        assert git_head(url + '/b/git/code', *creds) is None, creds
    assert served_uuid(url + '/b/svn/main', 'carol', 'carol-other-pw') == \
        svn_uuid(other.repos['main'])
    # permissions: bob may commit to other's main, not to proj's
    work = public_dir()
    for base, pw, ok in (('/b', 'bob-other-pw', True),
                         ('', 'bob-proj-pw', False)):
        wc = work + '/wc' + base.replace('/', '-')
        svn(['checkout', '-q', url + base + '/svn/main', wc], 'bob', pw,
            check=True)
        out = svn_commit_file(wc, 'trunk/bob.txt', 'b\n', 'By bob', 'bob', pw)
        assert (out.returncode == 0) == ok, (base, out.stderr)
        clone = work + '/clone' + base.replace('/', '-')
        git(['clone', '-q', url + base + '/git/code', clone], 'bob', pw,
            check=True)
        out = git_commit_push(clone, 'bob.txt', 'b\n', 'By bob', 'bob', pw)
        assert (out.returncode == 0) == ok, (base, out.stderr)
        if not ok:
            assert '403' in out.stderr, out.stderr
    # carol reads other's, but may not commit there; in proj she is nobody
    assert curl(url + '/b/svn/main/x', 'carol', 'carol-other-pw',
                extra=('-X', 'MKCOL'))[0] == 403
    assert curl(url + '/svn/main/x', 'carol', 'carol-other-pw',
                extra=('-X', 'MKCOL'))[0] == 401


# -- 5. and 6. one environment's repositories on their own -----------------

@pytest.fixture(scope='module')
def solo():
    """solo: a private main (svn) and code (git); alice may commit."""
    env = new_env('solo', svn_repos=[('main', 1)], git_repos=[('code', 1)])
    set_password(env.path, 'alice', PW['solo'], 'REPOSITORY_COMMIT')
    env.admin('permission', 'remove', 'anonymous', 'BROWSER_VIEW',
              'FILE_VIEW')
    env.deploy()
    assert 'ANONYMOUS MAY READ' not in env.output
    return env


def check_private_repositories(url):
    """svn checkout and git clone of solo's private repositories at `url`
    work with alice's password, and fail without it."""
    work = public_dir()
    refused = svn(['checkout', url + '/svn/main', work + '/anon'])
    assert refused.returncode != 0, refused.stdout
    assert 'E170013' in refused.stderr or 'E215004' in refused.stderr, \
        refused.stderr
    refused = git(['clone', url + '/git/code', work + '/anon-git'])
    assert refused.returncode != 0 and \
        'terminal prompts disabled' in refused.stderr, refused.stderr
    wrong = git(['clone', url + '/git/code', work + '/wrong'], 'alice', 'no')
    assert wrong.returncode != 0
    out = svn(['checkout', '-q', url + '/svn/main', work + '/wc'], 'alice',
              PW['solo'])
    assert out.returncode == 0 and os.path.isdir(work + '/wc/trunk'), \
        out.stderr
    out = git(['clone', '-q', url + '/git/code', work + '/clone'], 'alice',
              PW['solo'])
    assert out.returncode == 0 and \
        os.path.exists(work + '/clone/README.txt'), out.stderr


@contextlib.contextmanager
def express(target):
    """The generated apache/mod_wsgi-express command of the deploy folder
    `target`, started on a free port (as nobody when run as root): its
    base URL."""
    port = free_port()
    command = ['sh', os.path.join(target, 'apache', 'mod_wsgi-express'),
               '--startup-timeout', '20']
    if os.geteuid() == 0:
        command += ['--user', 'nobody', '--group', 'nogroup']
    proc = subprocess.Popen(command, env=dict(os.environ, PORT=str(port),
                                              HOST='127.0.0.1'),
                            cwd=private_dir(), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, start_new_session=True)
    try:
        started(port, proc, 'mod_wsgi-express', timeout=60)
        yield 'http://127.0.0.1:%d' % port
    finally:
        stop_group(proc, timeout=30)


@pytest.mark.apache
def test_generated_express_command_serves_the_repositories(solo):
    with express(solo.target) as url:
        check_private_repositories(url)
        log = os.path.join(solo.target, 'express', 'error_log')
        before = refusals(read_text(log))
        out = git(['clone', '-q', url + '/git/code', public_dir() + '/c'],
                  'alice', solo.app_password('alice', 'read'))
        assert out.returncode == 0, out.stderr
        assert refusals(read_text(log)) == before


def refusals(error_log):
    """The logins the text of Apache's error log says were refused."""
    return [line for line in error_log.splitlines()
            if 'authentication failure' in line]


def without_modules(apache, names):
    """Take the LoadModule lines of `names` out of the harness's main
    configuration (a Debian Apache where they are not enabled)."""
    with open(apache.conf, encoding='utf-8') as f:
        text = f.read()
    for name in names:
        text = re.sub(r'^LoadModule %s_module .*\n' % name, '', text,
                      flags=re.M)
    with open(apache.conf, 'w', encoding='utf-8') as f:
        f.write(text)


def preloaded(apache, script):
    """Whether Apache's children loaded `script` by themselves, before
    any request to a repository (``WSGIImportScript``, LogLevel info)."""
    line = "Loading WSGI script '%s' into main interpreter in embedded " \
        "mode" % script
    return wait_for(lambda: line in apache.error_log())


@pytest.mark.apache
@pytest.mark.parametrize('loaded', [False, True],
                         ids=['modules-missing', 'modules-loaded'])
def test_repositories_conf_loads_only_the_modules_apache_lacks(solo, loaded):
    apache_dir = os.path.join(solo.target, 'apache')
    if loaded:   # all of them, and the whole of trac.conf
        body = ''.join('LoadModule %s_module %s/mod_%s.so\n'
                       % (name, MODULES, name) for name in REPO_MODULES
                       if name != 'alias') + solo.include()
    else:        # without mod_alias: only Trac's daemon process
        body = ''.join('Include "%s/%s"\n' % (apache_dir, name) for name in
                       ('trac-daemon.conf', 'repositories.conf'))
    apache = Apache(body, policy=False)
    if not loaded:
        without_modules(apache, REPO_MODULES)
    with open(apache.conf, encoding='utf-8') as f:
        main = f.read().split('Include')[0]
    for name in REPO_MODULES:
        assert ('LoadModule %s_module' % name in main) == loaded, name
    syntax = apache.check_syntax()
    assert syntax.returncode == 0, syntax.stderr
    assert 'already loaded' not in syntax.stderr, syntax.stderr
    apache.start()
    try:
        assert preloaded(apache, os.path.join(solo.target, 'cgi-bin',
                                              'repositories.wsgi'))
        check_private_repositories(apache.url)
        assert 'already loaded' not in apache.error_log()
    finally:
        apache.stop()


# -- URL options deploy cannot serve ------------------------------------------

def repositories_conf_syntax(target):
    """`apache2 -t` of a server that Includes only the repositories.conf
    deploy wrote into `target` (it loads its own modules)."""
    conf = os.path.join(target, 'httpd-check.conf')
    with open(conf, 'w', encoding='utf-8') as f:
        f.write('ServerRoot "{0}"\nServerName 127.0.0.1\nErrorLog '
                '"{0}/error.log"\nPidFile "{0}/httpd.pid"\n'.format(target) +
                load_modules() + '\n' + module_config() +
                '\nInclude "%s/apache/repositories.conf"\n' % target)
    return subprocess.run([APACHE, '-t', '-f', conf], capture_output=True,
                          text=True)


@pytest.fixture(scope='module')
def urls():
    return new_env('urls', svn_repos=[('main', 1)], git_repos=[('code', 1)])


@pytest.mark.apache      # needs Apache's apache2 -t, starts none
@pytest.mark.parametrize('option, value', [
    ('svn_url', 'svn'), ('svn_url', '/x/../svn'), ('git_url', '/${GIT}')])
def test_deploy_writes_no_location_apache_cannot_match(urls, option, value):
    require(APACHE, 'Apache httpd')
    urls.set_option('wsgiauth', option, value)
    try:
        target = public_dir()
        proc = trac_admin(urls.path, 'deploy', target, check=False)
        if proc.returncode != 0:      # refused, naming the option: fine
            assert option in proc.stdout + proc.stderr
            return
        syntax = repositories_conf_syntax(target)
        assert syntax.returncode == 0, (
            'BUG: [wsgiauth] %s = %r: deploy succeeded but wrote a '
            'repositories.conf Apache refuses (a graceful restart then '
            'fails): %s' % (option, value, syntax.stderr.strip()))
        printed = re.findall(r'^\s*(\S+)\s+(?:svn|git), ', proc.stdout,
                             re.M)
        assert printed
        for url in printed:
            assert url.startswith('/') and '//' not in url and not \
                {'.', '..'} & set(url.split('/')), (
                    'BUG: [wsgiauth] %s = %r: deploy says it serves %s, a '
                    'URL path no request matches (deploy refuses such '
                    'a --url)' % (option, value, url))
    finally:
        urls.set_option('wsgiauth', option, '/' + option[:3])


@pytest.mark.apache
def test_svn_and_git_under_one_url(urls):
    """[wsgiauth] svn_url = git_url: both kinds side by side under /repos
    (nothing says they must differ)."""
    urls.set_option('wsgiauth', 'svn_url', '/repos')
    urls.set_option('wsgiauth', 'git_url', '/repos')
    try:
        proc = trac_admin(urls.path, 'deploy', urls.target, check=False)
        if proc.returncode != 0:      # refused, naming the options: fine
            assert 'git_url' in proc.stdout + proc.stderr
            return
        assert re.search(r'^\s*/repos/code\s+git, ANONYMOUS MAY READ it$',
                         proc.stdout, re.M), proc.stdout
        open_up(urls.path)
        apache = Apache(urls.include(), policy=False).start()
        try:
            work = public_dir()
            svn(['checkout', '-q', apache.url + '/repos/main',
                 work + '/wc'], check=True)
            out = git(['clone', '-q', apache.url + '/repos/code',
                       work + '/clone'])
            assert out.returncode == 0, (
                'BUG: with svn_url = git_url = /repos deploy says anonymous '
                'may read git repository code, but an anonymous git clone '
                'is refused: repos.locate takes /repos/code for Subversion, '
                'so POST git-upload-pack counts as a write: ' + out.stderr)
        finally:
            apache.stop()
    finally:
        urls.set_option('wsgiauth', 'svn_url', '/svn')
        urls.set_option('wsgiauth', 'git_url', '/git')
