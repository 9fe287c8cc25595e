"""An outside review of how repositories.conf serves Git behind a site
that asks for a login at "/" (as the generated mod_wsgi-express command
does), attacked with a real Apache and real git clients, and of the
``WSGIImportScript`` of repositories.wsgi in Apache's children.

The module's site protects "/" with a login (trac.wsgi's users), keeps
hidden words at /vault, and has public SSI pages at /pub and /htp
(.htaccess with FileInfo): the pages a site gives its content authors.

The first fix for the Git client's second login (mod_cgid's
PATH_TRANSLATED sub-request, run under the site's login) was a
server-wide ``<If IS_SUBREQ && TRACWSGIAUTH_GIT> Require all granted``.
This review found that an SSI page (#set) or an .htaccess (SetEnv) can
set that variable, and then read /vault and the private repository
without a login. The Git locations now hand git-http-backend its
PATH_INFO by SetEnvIf, so there is no sub-request and nothing is
granted; the content author's attacks stay here as tests.
"""

import os
import socket
import subprocess
import threading
import time

import pytest

from tests.harness import (APACHE, Apache, free_port, open_up, public_dir,
                           set_password, wait_for, write_file)
from tests.repoapache import basic, send
from tests.repoclients import git
from tests.test_repository_deploy import new_env, refusals

SECRET = 'top-hidden-words-of-the-site-4711'
PW = {'alice': 'alice-subreq-pw', 'carol': 'carol-subreq-pw'}


def private_env(name, git_url='/git'):
    """An environment with a private git repository code at git_url/code:
    alice may commit, carol is a user without permission; deployed."""
    env = new_env(name, ini='[wsgiauth]\ngit_url = %s\n' % git_url,
                  git_repos=[('code', 1)])
    set_password(env.path, 'alice', PW['alice'], 'REPOSITORY_COMMIT')
    set_password(env.path, 'carol', PW['carol'])
    env.admin('permission', 'remove', 'anonymous', 'BROWSER_VIEW',
              'FILE_VIEW')
    env.deploy()
    open_up(env.path)
    return env


def site_body(env):
    """The site: the environment, a login at "/", hidden words, SSI pages."""
    top = public_dir()
    for sub in ('vault', 'pub', 'htp'):
        os.makedirs(os.path.join(top, sub))
    write_file(top + '/vault/hidden.txt', SECRET + '\n')
    inc = '<!--#include virtual="/vault/hidden.txt" -->\n'
    write_file(top + '/pub/plain.shtml', 'page:' + inc)
    write_file(top + '/pub/set.shtml',
               '<!--#set var="TRACWSGIAUTH_GIT" value="1" -->page:' + inc)
    write_file(top + '/pub/repo.shtml', '<!--#set var="TRACWSGIAUTH_GIT" '
               'value="1" --><!--#include virtual="/git/code/$QUERY_STRING"'
               ' -->\n')
    write_file(top + '/htp/page.shtml', 'page:' + inc)
    write_file(top + '/htp/.htaccess', 'SetEnv TRACWSGIAUTH_GIT 1\n')
    open_up(top)
    script = os.path.join(env.target, 'cgi-bin', 'trac.wsgi')
    # the site's own lines first: repositories.conf's <Location>s must
    # come after the site's <Location />
    return """
LoadModule include_module /usr/lib/apache2/modules/mod_include.so
LogLevel info authz_core:debug
ErrorDocument 401 /pub/plain.shtml
ErrorDocument 403 /pub/plain.shtml
Alias /vault "{top}/vault"
Alias /pub "{top}/pub"
Alias /htp "{top}/htp"
<Directory "{top}">
    Options +Includes
    AddOutputFilter INCLUDES .shtml
    AllowOverride FileInfo
</Directory>
<Location />
    AuthType Basic
    AuthName "site"
    AuthBasicProvider wsgi
    WSGIAuthUserScript "{script}" application-group=%{{GLOBAL}}
    Require valid-user
</Location>
<LocationMatch "^/(pub|htp)/">
    Require all granted
</LocationMatch>
""".format(top=top, script=script) + env.include()


@pytest.fixture(scope='module')
def world():
    env = private_env('rv')
    apache = Apache(site_body(env), policy=False).start()
    apache.env, apache.token = env, env.app_password('alice', 'read')
    yield apache
    apache.stop()


def raw(port, text):
    """The status of a request sent byte for byte."""
    with socket.create_connection(('127.0.0.1', port), 10) as sock:
        sock.sendall(text.encode('latin-1'))
        return int(sock.recv(64).split()[1])


def status_of(apache, path, user=None, **kw):
    return send(apache.port, kw.pop('method', 'GET'), path, user,
                PW.get(user), **kw)


# -- Git behind a login at / -----------------------------------------------

@pytest.mark.apache
def test_ok_app_password_clone_through_a_site_login_at_root(world):
    before = refusals(world.error_log())
    out = git(['clone', '-q', world.url + '/git/code', public_dir() + '/c'],
              'alice', world.token)
    assert out.returncode == 0, out.stderr
    assert refusals(world.error_log()) == before
    assert world.token not in world.access_log() + world.error_log()


@pytest.mark.apache
@pytest.mark.parametrize('user, code', [(None, 401), ('carol', 403)])
def test_ok_private_repository_stays_private(world, user, code):
    out = git(['ls-remote', world.url + '/git/code'], user,
              PW.get(user) if user else None)
    assert out.returncode != 0 and (user is None or '403' in out.stderr), \
        out.stderr
    refs = '/info/refs?service=git-upload-pack'
    forms = ['/git/code' + refs, '//git/code' + refs, '/git//code' + refs,
             '/git/./code' + refs, '/git/x/../code' + refs,
             '/git/%63ode' + refs, '/git/code%2finfo%2frefs',
             '/git/code;x' + refs, '/git/code/HEAD', '/git/code/./HEAD',
             '/git/code/info/../HEAD', '/git/code/' + 'a/' * 2000 + 'HEAD',
             '/GIT/code/HEAD']
    for path in forms:
        r = status_of(world, path, user)
        assert r.status not in (200, 304) and b'refs/heads' not in r.body, \
            (path[:80], r.status)
    for method in ('POST', 'PROPFIND', 'OPTIONS', 'PUT'):
        r = status_of(world, '/git/code/git-upload-pack', user,
                      method=method, body='0000')
        assert r.status in (401, 403, 405), (method, r.status)
    chunked = status_of(world, '/git/code/git-upload-pack', user,
                        method='POST', headers={'Transfer-Encoding':
                                                'chunked'}, body=b'0\r\n\r\n')
    assert chunked.status in (code, 400), chunked.status
    auth = '' if user is None else 'Authorization: %s\r\n' % basic(
        user, PW[user])
    for line, host in (('GET %s/git/code/HEAD HTTP/1.1' % world.url, 'x'),
                       ('GET /git/code/HEAD HTTP/1.0', ''),
                       ('GET /git/code/HEAD HTTP/1.1', 'other.example')):
        head = line + '\r\n' + (host and 'Host: %s\r\n' % host) + auth
        assert raw(world.port, head + 'TRACWSGIAUTH-GIT: 1\r\n\r\n') \
            == code, line


@pytest.mark.apache
@pytest.mark.parametrize('user', [None, 'carol', 'alice'])
def test_ok_path_info_naming_protected_urls_reveals_nothing(world, user):
    """PATH_INFO is looked up as a URL (granted now), but only for
    PATH_TRANSLATED, which git-http-backend does not read."""
    for rest in ('/vault/hidden.txt', '/pub/plain.shtml', '/rv/login',
                 '/%2e%2e/vault/hidden.txt', '/..%2fvault/hidden.txt',
                 '/git/code/vault/hidden.txt'):
        r = status_of(world, '/git/code' + rest, user)
        # the refusal's ErrorDocument includes /vault for a site user
        assert user or SECRET.encode() not in r.body, (rest, r.status)
        assert b'refs/heads' not in r.body, (rest, r.status)
        assert r.status != 200 or user == 'alice', (rest, r.status)


@pytest.mark.apache
@pytest.mark.parametrize('headers, query', [
    ({'TRACWSGIAUTH_GIT': '1'}, ''), ({'TRACWSGIAUTH-GIT': '1'}, ''),
    ({'Tracwsgiauth-Git': '1', 'X-Is-Subreq': 'true'}, ''),
    ({}, '?TRACWSGIAUTH_GIT=1')])
def test_ok_client_cannot_set_the_marker(world, headers, query):
    r = status_of(world, '/pub/plain.shtml' + query, headers=headers)
    assert r.status == 200 and SECRET.encode() not in r.body, r.body


@pytest.mark.apache
@pytest.mark.parametrize('path, user, code', [
    ('/pub/plain.shtml', None, 200), ('/git/code/HEAD', None, 401),
    ('/git/code/HEAD', 'carol', 403), ('/vault/hidden.txt', None, 401)])
def test_ok_ssi_include_and_error_documents_get_no_grant(world, path, user,
                                                         code):
    """Its include of /vault is refused, also as the ErrorDocument of a
    refused Git request (an internal redirect, not a sub-request)."""
    r = status_of(world, path, user)   # carol may read /vault: a user
    assert r.status == code and (user or SECRET.encode() not in r.body), \
        r.body
    assert code == 200 or b'page:' in r.body, r.body


@pytest.mark.apache
@pytest.mark.parametrize('page', ['/pub/set.shtml', '/htp/page.shtml'],
                         ids=['ssi-set-var', 'htaccess-setenv'])
def test_ok_content_author_sets_marker_and_reads_nothing(world, page):
    """An author of an SSI page (<!--#set var-->) or of an .htaccess
    (SetEnv) sets the variable the first fix trusted, then includes
    /vault: the include is refused."""
    r = status_of(world, page)
    assert SECRET.encode() not in r.body, (page, r.status, r.body[:80])


@pytest.mark.apache
def test_ok_ssi_page_with_marker_gets_no_private_repository(world):
    """The same page includes a private repository's HEAD: refused."""
    r = status_of(world, '/pub/repo.shtml?HEAD')
    assert b'refs/heads/main' not in r.body, (r.status, r.body[:80])


# -- WSGIImportScript --------------------------------------------------------

def solo_apache(env):
    return Apache(env.include(), policy=False).start()


def ls_remote(apache, user='alice', password=PW['alice']):
    return git(['ls-remote', apache.url + '/git/code'], user, password)


@pytest.mark.apache
@pytest.mark.parametrize('breakage', ['ini-syntax', 'db-missing'])
def test_ok_broken_environment_at_child_start_fails_closed_and_recovers(
        breakage):
    env = private_env('br')
    ini = os.path.join(env.path, 'conf', 'trac.ini')
    db = os.path.join(env.path, 'db', 'trac.db')
    good = open(ini, encoding='utf-8').read()
    if breakage == 'ini-syntax':
        write_file(ini, '[trac\nbroken = = =\n' + good)
    else:
        os.rename(db, db + '.away')
    apache = solo_apache(env)
    try:
        for user in (None, 'alice', 'carol'):
            r = status_of(apache, '/git/code/info/refs', user)
            assert r.status != 200 and b'refs/heads' not in r.body, \
                (user, r.status)
        if breakage == 'ini-syntax':
            write_file(ini, good)
            os.utime(ini, None)
        else:
            os.rename(db + '.away', db)
        open_up(env.path)
        assert wait_for(lambda: ls_remote(apache).returncode == 0, 30), \
            (ls_remote(apache).stderr, apache.error_log()[-3000:])
        assert status_of(apache, '/git/code/info/refs').status == 401
        assert status_of(apache, '/git/code/info/refs', 'carol').status \
            == 403
    finally:
        apache.stop()


@pytest.mark.apache
def test_ok_graceful_restarts_while_git_clients_run(world):
    env = world.env
    apache = Apache(env.include() + '\nStartServers 2\nThreadsPerChild 5\n',
                    policy=False).start()
    failures, done = [], threading.Event()

    def client():
        while not done.is_set():
            out = ls_remote(apache, 'alice', world.token)
            if out.returncode != 0:
                failures.append(out.stderr)
    threads = [threading.Thread(target=client) for _ in range(4)]
    try:
        for t in threads:
            t.start()
        for _ in range(3):
            out = subprocess.run([APACHE, '-k', 'graceful', '-f',
                                  apache.conf], capture_output=True,
                                 text=True, timeout=30)
            assert out.returncode == 0, out.stderr
            time.sleep(1.5)
        done.set()
        for t in threads:
            t.join(60)
        assert not failures, failures[:3]
        assert apache.proc.poll() is None
        assert 'Traceback' not in apache.error_log()
    finally:
        done.set()
        apache.stop()


@pytest.mark.apache
def test_ok_two_environments_and_two_vhosts_preload_and_serve():
    one, two = private_env('one'), private_env('two', '/two/git')
    port = str(free_port())
    vhost = ('Listen 127.0.0.1:%s\n<VirtualHost 127.0.0.1:%s>\n%s'
             '</VirtualHost>\n' % (port, port, ''.join(
                 'Include "%s/apache/repositories.conf"\n' % e.target
                 for e in (one, two))))
    apache = Apache(one.include() + two.include() + vhost,
                    policy=False).start()
    try:
        log = apache.error_log
        for e in (one, two):
            script = os.path.join(e.target, 'cgi-bin', 'repositories.wsgi')
            assert wait_for(lambda s=script: s in log(), 10), log()[-2000:]
        url2 = 'http://127.0.0.1:' + port
        for base in (apache.url, url2):
            for repo in ('/git/code', '/two/git/code'):
                out = git(['ls-remote', base + repo], 'alice', PW['alice'])
                assert out.returncode == 0, (base, repo, out.stderr)
                assert send(int(base.rsplit(':', 1)[1]), 'GET',
                            repo + '/HEAD').status == 401
        assert 'Traceback' not in log() and 'Failed to' not in log()
    finally:
        apache.stop()

