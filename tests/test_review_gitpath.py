"""An outside review of how repositories.conf hands git-http-backend its
PATH_INFO (98f1d16: ScriptAliasMatch of the whole URL, SetEnvIf
Request_URI "^URL(/.*)$" PATH_INFO=$1), attacked with a real Apache
and real git clients.

The module's Apache is the site of tests/test_review_subreq.py (a login
at "/", public SSI pages) with ``AllowEncodedSlashes On``, SSI pages at
/ssi (IncludesNOEXEC, public), and two environments:

* gp: /git/a, /git/a.b, /git/a-b (names beginning with another) and a
  unicode name, private;
  alice commits, bob reads, carol is a user without permission;
* gq: git_url = /gi.t (a regex-special option), code readable by anyone.
"""

import os
import subprocess
from urllib.parse import quote

import pytest

from tests.harness import (Apache, open_up, public_dir, set_password,
                           write_file)
from tests.repoapache import git_ref, send
from tests.repoclients import git, git_commit_push
from tests.test_repository_deploy import express, new_env
from tests.test_review_subreq import site_body

PW = {'alice': 'alice-gitpath-pw', 'bob': 'bob-gitpath-pw',
      'carol': 'carol-gitpath-pw'}
NAMES = ('a', 'a.b', 'a-b', '\u00e9t\u00e9')


def gp_env():
    env = new_env('gp', git_repos=[(n, i + 1) for i, n in enumerate(NAMES)])
    set_password(env.path, 'alice', PW['alice'], 'REPOSITORY_COMMIT')
    set_password(env.path, 'bob', PW['bob'], 'BROWSER_VIEW', 'FILE_VIEW')
    set_password(env.path, 'carol', PW['carol'])
    env.admin('permission', 'remove', 'anonymous', 'BROWSER_VIEW',
              'FILE_VIEW')
    env.deploy()
    return env


def ssi_site(gp, gq):
    """/ssi: a content author's SSI page (IncludesNOEXEC) that sets the
    variables git-http-backend reads, then includes the public repo."""
    top = public_dir()
    page = ''.join('<!--#set var="%s" value="%s" -->' % kv for kv in (
        ('GIT_PROJECT_ROOT', gp.repos['a']), ('PATH_INFO', '/info/refs'),
        ('GIT_HTTP_EXPORT_ALL', '1')))
    for name, url in (('exact', '/gi.t/code'), ('slash', '/gi.t/code/'),
                      ('refs', '/gi.t/code/info/refs')):
        write_file('%s/%s.shtml' % (top, name),
                   page + 'got:<!--#include virtual="%s" -->\n' % url)
    include = 'got:<!--#include virtual="/gi.t/code/info/refs" -->\n'
    write_file(top + '/plain.shtml', include)
    write_file(top + '/config.shtml', '<!--#set var="GIT_CONFIG_PARAMETERS" '
               'value="\'transfer.hiderefs\'=\'refs/heads\'" -->' + include)
    open_up(top)
    return ('AllowEncodedSlashes On\nAlias /ssi "{0}"\n<Directory "{0}">\n'
            '    Options +IncludesNOEXEC\n    AddOutputFilter INCLUDES '
            '.shtml\n</Directory>\n<Location /ssi>\n    Require all granted'
            '\n</Location>\n'.format(top))


@pytest.fixture(scope='module')
def world():
    gp = gp_env()
    gq = new_env('gq', ini='[wsgiauth]\ngit_url = /gi.t\n',
                 git_repos=[('code', 9)])
    gq.deploy()
    body = site_body(gp) + ssi_site(gp, gq) + gq.include()
    apache = Apache(body, policy=False).start()
    apache.gp, apache.gq = gp, gq
    apache.tokens = {s: gp.app_password('alice', s)
                     for s in ('read', 'commit')}
    yield apache
    apache.stop()


def get(world, path, user=None, method='GET', **kw):
    return send(world.port, method, path, user, PW.get(user), **kw)


def private_hashes(world):
    return [git_ref(world.gp.repos[n]) for n in NAMES]


def leaks(world, body):
    """Whether a response body shows a commit of a private repository."""
    return any(h.encode() in body for h in private_hashes(world))


# -- clients ---------------------------------------------------------------

@pytest.mark.apache
@pytest.mark.parametrize('name', NAMES)
def test_ok_prefix_named_repositories_serve_their_own(world, name):
    """/git/a, /git/a.b, /git/a-b: each URL serves its own folder."""
    url = world.url + '/git/' + quote(name)
    out = git(['ls-remote', url], 'alice', PW['alice'])
    assert out.returncode == 0, out.stderr
    assert out.stdout.split()[0] == git_ref(world.gp.repos[name]), \
        (name, out.stdout)
    name = quote(name)
    for path in ('/HEAD', '/info/refs'):
        r = get(world, '/git/' + name + path, 'alice')
        assert r.status == 200, (path, r.status)
    for user, code in ((None, 401), ('carol', 403)):
        r = get(world, '/git/%s/info/refs?service=git-upload-pack' % name,
                user)
        assert r.status == code and not leaks(world, r.body), (user, r)


@pytest.mark.apache
def test_ok_clone_fetch_push_and_refused_push(world):
    work = public_dir()
    url = world.url + '/git/a/'          # a trailing slash on the repo URL
    out = git(['clone', '-q', url, work + '/c'], 'alice',
              world.tokens['commit'])
    assert out.returncode == 0, out.stderr
    out = git_commit_push(work + '/c', 'new.txt', 'x\n', 'by alice',
                          'alice', world.tokens['commit'])
    assert out.returncode == 0, out.stderr
    head = git_ref(world.gp.repos['a'])
    out = git(['fetch', '-q', 'origin'], 'bob', PW['bob'], cwd=work + '/c')
    assert out.returncode == 0, out.stderr
    for user, password in (('bob', PW['bob']),
                           ('alice', world.tokens['read'])):
        out = git_commit_push(work + '/c', 'r.txt', user, 'no', user,
                              password)
        assert out.returncode != 0 and '403' in out.stderr, out.stderr
    assert git_ref(world.gp.repos['a']) == head
    log = world.access_log() + world.error_log()
    assert not [t for t in list(world.tokens.values()) + list(PW.values())
                if t in log]
    # no second login of a git request (the site's ErrorDocument of the
    # refused push includes /vault, which refuses the app password)
    assert not [line for line in world.error_log().splitlines()
                if 'authentication failure' in line and '/git/' in line]


@pytest.mark.apache
def test_ok_anonymous_clone_of_public_repository_under_regex_url(world):
    work = public_dir()
    out = git(['clone', '-q', world.url + '/gi.t/code', work + '/c'])
    assert out.returncode == 0, out.stderr
    out = git_commit_push(work + '/c', 'x.txt', 'x', 'anon', None, None)
    assert out.returncode != 0, out.stderr
    # '.' of git_url is escaped: /git/code, /gixt/code are not /gi.t/code
    for path in ('/gixt/code/info/refs', '/git/code/info/refs'):
        assert get(world, path).status in (401, 404), path


# -- dumb HTTP -------------------------------------------------------------

def dumb_files(repo):
    """URL paths below a repository of its pack and one loose object."""
    packs = os.listdir(os.path.join(repo, 'objects', 'pack'))
    pack = [p for p in packs if p.endswith('.pack')][0]
    loose = [d + '/' + f for d in os.listdir(repo + '/objects')
             if len(d) == 2 for f in os.listdir(repo + '/objects/' + d)]
    return ['/objects/pack/' + pack] + ['/objects/' + o for o in loose[:1]]


@pytest.mark.apache
def test_ok_dumb_http_for_readers_only(world):
    repo = world.gp.repos['a-b']
    cmd = ['git', '-c', 'safe.directory=*', '--git-dir', repo]
    subprocess.run(cmd + ['repack', '-adq'], check=True)
    blob = subprocess.run(cmd + ['hash-object', '-w', '--stdin'],
                          input=b'loose\n', capture_output=True,
                          check=True).stdout.decode().strip()
    open_up(repo)
    paths = ['/HEAD', '/info/refs', '/objects/info/packs',
             '/objects/%s/%s' % (blob[:2], blob[2:])] + dumb_files(repo)
    for path in paths:
        r = get(world, '/git/a-b' + path, 'bob')
        assert r.status == 200, (path, r.status, r.body[:200])
        if path.startswith('/objects/') and 'info' not in path:
            with open(repo + path, 'rb') as f:
                assert r.body == f.read(), path
        for user, code in ((None, 401), ('carol', 403)):
            for method in ('GET', 'HEAD'):
                r = get(world, '/git/a-b' + path, user, method)
                assert r.status == code and not leaks(world, r.body), \
                    (path, user, method, r.status)


# -- PATH_INFO attacks -----------------------------------------------------

TRICKS = ['/..%2f..%2f{o}%2fa.git%2finfo%2frefs', '/..%2F{o}/a.git/HEAD',
          '/%2e%2e/%2e%2e/{o}/a.git/info/refs', '/.%2e/a/info/refs',
          '/..\\..\\{o}\\a.git\\info\\refs', '/..%5c..%5c{o}%5ca.git%5cHEAD',
          '//..//..//{o}//a.git//info//refs', '/info/refs%00',
          '/a%00/info/refs', '/info/refs%0a', '/info/refs;x',
          '/%c0%ae%c0%ae/{o}/a.git/HEAD', '/%e2%80%a5/{o}/a.git/HEAD',
          '/' + 'x/' * 3000 + 'info/refs', '/..%252f{o}%252fa.git/HEAD',
          '/info/refs?PATH_INFO=/../../{o}/a.git/info/refs']


@pytest.mark.apache
@pytest.mark.parametrize('trick', TRICKS)
def test_ok_public_repository_url_reaches_no_other_folder(world, trick):
    """Anonymous may read /gi.t/code: no form of the rest of its URL makes
    git-http-backend read gp's private repositories."""
    up = os.path.basename(world.gp.parent)
    path = '/gi.t/code' + trick.format(o=up)
    for user in (None, 'carol'):
        r = get(world, path, user)
        assert not leaks(world, r.body), (path[:80], r.status)


@pytest.mark.apache
@pytest.mark.parametrize('header', ['PATH_INFO', 'Path-Info', 'Path_Info',
                                    'Git-Project-Root', 'Request-URI'])
def test_ok_headers_set_no_path_info(world, header):
    value = world.gp.repos['a'] if 'Root' in header else \
        '/../../%s/a.git/info/refs' % os.path.basename(world.gp.parent)
    for path in ('/gi.t/code', '/gi.t/code/', '/gi.t/code/info/refs'):
        r = get(world, path, headers={header: value})
        assert not leaks(world, r.body), (path, r.status)
    r = get(world, '/gi.t/code/info/refs', headers={header: value})
    assert r.status == 200 and b'refs/heads/main' in r.body


@pytest.mark.apache
@pytest.mark.parametrize('page', ['exact', 'slash', 'refs'])
def test_ok_ssi_variables_do_not_redirect_git(world, page):
    """An SSI author sets GIT_PROJECT_ROOT and PATH_INFO, then includes the
    public repository: git-http-backend still serves only /gi.t/code."""
    r = get(world, '/ssi/%s.shtml' % page)
    assert not leaks(world, r.body), (r.status, r.body[:300])


@pytest.mark.apache
@pytest.mark.parametrize('page', ['plain', 'config'])
def test_ok_ssi_page_cannot_run_git_with_its_variables(world, page):
    """An SSI page's variables (here GIT_CONFIG_PARAMETERS) would reach a
    CGI it includes; a Git location runs git-http-backend only for a main
    request (SetEnvIf, which sets its PATH_INFO, runs for those alone), so
    an included Git URL serves nothing, with or without them."""
    r = get(world, '/ssi/%s.shtml' % page)
    assert r.status == 200 and b'refs/' not in r.body, r.body[:300]


@pytest.mark.apache
@pytest.mark.parametrize('method', ['OPTIONS', 'PROPFIND', 'PUT', 'DELETE',
                                    'FOO', 'POST'])
def test_ok_other_methods_are_writes(world, method):
    for path in ('/gi.t/code/info/refs', '/gi.t/code/HEAD', '/gi.t/code',
                 '/gi.t/code/git-receive-pack'):
        r = get(world, path, method=method, body='0000')
        assert r.status in (401, 405, 413, 501), (method, path, r.status)
    for path in ('/git/a', '/git/a/HEAD', '/git/a/git-receive-pack'):
        for user in ('carol', 'bob'):
            r = get(world, path, user, method)
            assert r.status in (403, 405, 413, 501), (path, user, r.status)


@pytest.mark.apache
def test_ok_repository_url_without_slash_serves_nothing(world):
    for user in (None, 'carol', 'bob', 'alice'):
        for path in ('/git/a', '/git/a.b', '/gi.t/code', '/git/a%0a'):
            r = get(world, path, user)
            assert r.status != 200 and not leaks(world, r.body), \
                (user, path, r.status)


def test_ok_deploy_refuses_regex_git_url():
    env = new_env('gr', ini='[wsgiauth]\ngit_url = /g+it\n',
                  git_repos=[('code', 1)])
    with pytest.raises(Exception) as e:
        env.deploy()
    assert 'git_url' in str(e.value)


# -- mod_wsgi-express ---------------------------------------------------------

@pytest.mark.apache
def test_ok_express_command_serves_git(world):
    gp = world.gp
    with express(gp.target) as url:
        work, port = public_dir(), int(url.rsplit(':', 1)[1])
        out = git(['clone', '-q', url + '/git/a.b', work + '/c'], 'alice',
                  world.tokens['commit'])
        assert out.returncode == 0, out.stderr
        out = git_commit_push(work + '/c', 'e.txt', 'e\n', 'express',
                              'alice', world.tokens['commit'])
        assert out.returncode == 0, out.stderr
        out = git_commit_push(work + '/c', 'f.txt', 'f\n', 'no', 'bob',
                              PW['bob'])
        assert out.returncode != 0 and '403' in out.stderr, out.stderr
        for user, code in ((None, 401), ('carol', 403), ('bob', 200)):
            r = send(port, 'GET', '/git/a.b/HEAD', user, PW.get(user))
            assert r.status == code, (user, r.status)
        logs = ''.join(open(os.path.join(gp.target, 'express', f),
                            errors='replace').read()
                       for f in ('error_log', 'access_log')
                       if os.path.exists(os.path.join(gp.target, 'express',
                                                      f)))
        assert 'authentication failure' not in logs
        assert not [s for s in list(world.tokens.values()) +
                    list(PW.values()) if s in logs]
