"""App passwords end to end: a real headless Chromium (Debian's, driven
by Playwright) logs in to Trac through a real Apache (Basic, at /login),
creates app passwords in Preferences > App passwords and revokes them
there and in Admin > Accounts > App passwords; the real ``svn`` and
``git`` clients use the secrets read from the page against the
repositories.conf that ``trac-admin ENV deploy`` writes.

One environment ``proj`` (module fixture `site`), private: anonymous may
read nothing, ``authenticated`` may read, alice, bob, carol and erin may
commit (REPOSITORY_COMMIT), dave only reads, root is TRAC_ADMIN; svn
``code``, git ``tools``. Accounts lock after 20 failed logins. Every test
leaves trac.ini as it found it.

One in-process test shows a product bug found on the way (its message
begins with BUG:): saving Trac's session writes back a password that
``wsgiauth remove`` removed meanwhile.
"""

import os
import re
import shlex
import time

import pytest

from tests.harness import (edit_ini, make_env, open_up, public_dir, request,
                           require, secret, set_password, trac_admin,
                           trac_env, wait_for)
from tests.repoapache import git_ref, git_show, own, repo_env, serve, \
    svnlook, youngest
from tests.repoclients import git, git_commit_push, svn, svn_commit_file

pytestmark = pytest.mark.apache

CHROMIUM = '/usr/bin/chromium'

PW = {name: secret(name + '-account-pw') for name in
      ('alice', 'bob', 'carol', 'dave', 'erin', 'root')}

#: what an app password looks like (tracwsgiauth.apptokens)
FORM = re.compile(r'\Atracapp_([0-9a-f]{8})_([a-z2-7]{32})\Z')

#: every app password the tests saw, for the final look at the logs
SEEN = []


class Site(object):
    def __init__(self, apache, env, browser):
        self.apache, self.env, self.browser = apache, env, browser
        self.url, self.port = apache.url, apache.port
        self.trac = apache.url + '/proj'


@pytest.fixture(scope='module')
def site():
    require(os.path.exists(CHROMIUM), 'chromium (apt-get install chromium)')
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        require(False, 'playwright (pip install playwright)')
    parent = public_dir()
    env = repo_env(parent, 'proj', svn=['code'], git=['tools'],
                   users=list(PW.items()),
                   ini=[('account-manager', 'login_attempt_max_count', '20'),
                        ('account-manager', 'user_lock_time', '0')])
    trac_admin(env.path, 'permission', 'remove', 'anonymous',
               'BROWSER_VIEW', 'FILE_VIEW')
    trac_admin(env.path, 'permission', 'add', 'authenticated',
               'BROWSER_VIEW', 'FILE_VIEW')
    for user in ('alice', 'bob', 'carol', 'erin'):
        trac_admin(env.path, 'permission', 'add', user, 'REPOSITORY_COMMIT')
    trac_admin(env.path, 'permission', 'add', 'root', 'TRAC_ADMIN')
    open_up(parent)
    own(env)
    apache = serve([env])
    playwright = sync_playwright().start()
    try:
        # Debian's Chromium, never a downloaded one; root needs no sandbox
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=['--no-sandbox'])
        try:
            yield Site(apache, env, browser)
        finally:
            browser.close()
    finally:
        playwright.stop()
        apache.stop()


# -- helpers --------------------------------------------------------------

def ok(proc):
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def refused(proc, *texts):
    """The client failed, saying one of `texts`."""
    assert proc.returncode != 0, proc.stdout + proc.stderr
    assert any(text in proc.stderr for text in texts), proc.stderr
    return proc


UNAUTHORIZED = ('Authentication failed',)
GIT_FORBIDDEN = ('The requested URL returned error: 403',)
SVN_FORBIDDEN = ("Access to '/svn/code/!svn/me' forbidden",)


def workdir(name='wc'):
    return os.path.join(public_dir('twa-wc-'), name)


def seen(password):
    """An app password read from a page or trac-admin: registered as a
    secret no log may show."""
    assert FORM.match(password), password
    SEEN.append(secret(password))
    return password


def token_id(password):
    return FORM.match(password).group(1)


def ls_remote(site, user, password):
    return git(['ls-remote', site.url + '/git/tools'], user, password)


def svn_ls(site, user, password):
    return svn(['ls', site.url + '/svn/code'], user, password)


def added(site, user, label, scope, days=None):
    """An app password made by ``trac-admin ENV wsgiauth token add``."""
    args = ['wsgiauth', 'token', 'add', user, label, scope]
    out = trac_admin(site.env.path, *(args + ([days] if days else []))
                     ).stdout
    return seen(re.search(r'tracapp_\w+', out).group(0))


def listed(site, user=None):
    from tracwsgiauth.apppasswords import AppPasswords
    with trac_env(site.env.path) as env:
        return AppPasswords(env).listing(user)


def attributes(site, user):
    """A user's session attributes, as stored."""
    with trac_env(site.env.path) as env:
        return sorted(env.db_query(
            "SELECT name, value FROM session_attribute "
            "WHERE sid=%s AND authenticated=1", (user,)))


def logged_in(site, user, **options):
    """A browser page of a new context logged in to Trac as `user`
    through Apache's Basic authentication at /login."""
    context = site.browser.new_context(
        http_credentials={'username': user, 'password': PW[user]},
        **options)
    page = context.new_page()
    page.set_default_timeout(15000)
    response = page.goto(site.trac + '/login')
    assert response.ok, response.status
    assert re.search(r'logged in as\s+%s' % user,
                     page.inner_text('#metanav')), page.inner_text('body')
    return page


def prefs(site, page):
    """Open Preferences > App passwords as a user gets there: the
    Preferences link, then the tab."""
    page.click('#metanav a:text-is("Preferences")')
    page.click('#tab_apppasswords a')
    shown(page, '#app-password-create')
    assert page.url == site.trac + '/prefs/apppasswords'


def shown(page, selector):
    """Wait for `selector`; failing, say what the page shows."""
    try:
        page.wait_for_selector(selector, timeout=10000)
    except Exception:
        raise AssertionError('%s not on %s:\n%s' % (
            selector, page.url, page.inner_text('body')[:3000])) from None


def create(page, label, scope, days=''):
    """Create an app password with the form; the secret the page shows."""
    page.fill('#app-password-label', label)
    page.select_option('#app-password-scope', scope)
    page.fill('#app-password-days', days)
    page.click('#app-password-create-button')
    shown(page, '#app-password-secret')
    return seen(page.inner_text('#app-password-secret').strip())


def rows(page):
    """(label, scope) of each row of the page's list."""
    return [(row.query_selector('.label').inner_text().strip(),
             row.query_selector('.scope').inner_text().strip())
            for row in page.query_selector_all('#app-passwords tbody tr')
            if row.query_selector('.label')]


def usage(page):
    """The client command lines the page shows, by program."""
    lines = page.inner_text('#app-password-usage').strip().splitlines()
    return {shlex.split(line)[0]: shlex.split(line) for line in lines}


# -- Preferences > App passwords, the clients -------------------------------

def test_prefs_create_use_with_svn_and_git_and_revoke(site):
    page = logged_in(site, 'alice', permissions=[
        'clipboard-read', 'clipboard-write'])
    prefs(site, page)
    assert 'Preferences: App passwords' in page.title()
    # Trac's own preferences page, our tab active among its own
    assert page.inner_text('#tab_apppasswords').strip() == 'App passwords'
    assert page.query_selector('#tab_apppasswords.active')
    assert page.query_selector('#tab_localization a')
    assert 'You have no app passwords.' in page.inner_text('#app-passwords')

    read = create(page, 'laptop (read)', 'read')
    assert page.inner_text('#app-password-new-scope') == 'read'
    # the exact lines to use it, for the repositories alice may read
    lines = usage(page)
    assert lines['svn'] == ['svn', 'checkout', site.url + '/svn/code',
                            '--username', 'alice']
    assert lines['git'] == ['git', 'clone', site.url + '/git/tools']
    hints = page.inner_text('#app-password-hints')
    assert 'paste the app password' in hints and 'alice' in hints
    # the copy button puts it on the clipboard
    page.click('#app-password-copy')
    page.wait_for_selector('#app-password-copied:text("Copied.")')
    assert page.evaluate('navigator.clipboard.readText()') == read
    # shown once: a reload shows it no more, and creates no other (the
    # page's script made the reload a GET: the form was not sent again)
    page.reload()
    shown(page, '#app-password-create')
    assert not page.query_selector('#app-password-secret')
    assert read not in page.content()
    assert 'already sent' not in page.inner_text('body')
    assert rows(page) == [('laptop (read)', 'read')]

    commit = create(page, 'laptop (commit)', 'commit')
    assert commit != read
    # newest first; two made within one second in either order
    assert sorted(rows(page)) == [('laptop (commit)', 'read and commit'),
                                  ('laptop (read)', 'read')]

    # git, with the line the page gave: clone with either, push only with
    # the commit one (alice may push; the read one cannot even for her)
    repo = site.env.repos['tools']
    head = git_ref(repo)
    clone = workdir('alice')
    ok(git(lines['git'][1:] + [clone], 'alice', read))
    assert git_ref(repo) == head
    refused(git_commit_push(clone, 'r.txt', 'read\n', 'read scope', 'alice',
                            read), *GIT_FORBIDDEN)
    assert git_ref(repo) == head
    ok(git(['push', 'origin', 'HEAD:refs/heads/main'], 'alice', commit,
           cwd=clone))
    assert git_ref(repo) != head
    assert git_show(repo, 'main:r.txt') == 'read\n'

    # svn, with the line the page gave
    repo = site.env.repos['code']
    before = youngest(repo)
    wc = workdir()
    ok(svn(lines['svn'][1:] + [wc], password=read))
    refused(svn_commit_file(wc, 'trunk/r.txt', 'read\n', 'read scope',
                            'alice', read), *SVN_FORBIDDEN)
    assert youngest(repo) == before
    ok(svn(['commit', '-m', 'commit scope'], 'alice', commit, cwd=wc))
    assert youngest(repo) == before + 1
    assert svnlook('author', repo).strip() == 'alice'

    # the list says when and from where each was last used
    read_id, commit_id = token_id(read), token_id(commit)

    def last_used(token):
        page.reload()
        return page.inner_text('#app-password-%s .last-used' % token)
    assert wait_for(lambda: '127.0.0.1' in last_used(read_id), 10, 0.5)
    assert '127.0.0.1' in last_used(commit_id)

    # revoked in the browser: its very next use is refused, the other works
    with page.expect_navigation():
        page.click('#app-password-%s button' % read_id)
    assert 'revoked' in page.inner_text('#notice')
    assert rows(page) == [('laptop (commit)', 'read and commit')]
    refused(ls_remote(site, 'alice', read), *UNAUTHORIZED)
    refused(svn_ls(site, 'alice', read), *UNAUTHORIZED)
    ok(ls_remote(site, 'alice', commit))
    ok(svn_ls(site, 'alice', commit))
    page.context.close()


def test_prefs_form_sent_again_creates_no_second(site):
    """Without JavaScript a reload sends the form again: it creates
    nothing, the secret is not shown again."""
    page = logged_in(site, 'erin', java_script_enabled=False)
    page.goto(site.trac + '/prefs/apppasswords')
    password = create(page, 'no script', 'read')
    page.reload()
    assert not page.query_selector('#app-password-secret')
    assert password not in page.content()
    assert 'already sent' in page.inner_text('body')
    assert rows(page) == [('no script', 'read')]
    assert [t['label'] for t in listed(site, 'erin')] == ['no script']
    page.context.close()


def test_prefs_rejects_bad_expiry_and_scope(site):
    page = logged_in(site, 'dave')
    page.goto(site.trac + '/prefs/apppasswords')
    for days in ('0', '-1', 'soon', 'nan', '1e9'):
        page.fill('#app-password-label', 'bad')
        page.fill('#app-password-days', days)
        page.click('#app-password-create-button')
        page.wait_for_selector('#warning')
        assert 'Expires after' in page.inner_text('#warning')
        assert not page.query_selector('#app-password-secret')
    assert listed(site, 'dave') == []
    page.context.close()


def test_anonymous_has_no_app_passwords_panel(site):
    status, body, _ = request(site.port, '/proj/prefs/apppasswords')
    assert status == 404, body[:500]
    status, body, _ = request(site.port, '/proj/prefs')
    assert status == 200 and b'tab_apppasswords' not in body


def test_user_revokes_only_their_own(site):
    others = added(site, 'bob', 'bob ci', 'read')
    page = logged_in(site, 'alice')
    page.goto(site.trac + '/prefs/apppasswords')
    before = attributes(site, 'alice')
    mine = create(page, 'tampered', 'read')
    page.goto(site.trac + '/prefs/apppasswords')
    # the button of her own row, made to name bob's app password
    button = '#app-password-%s button' % token_id(mine)
    page.eval_on_selector(button, '(b, v) => b.value = v', token_id(others))
    with page.expect_navigation():
        page.click(button)
    assert 'no such app password' in page.inner_text('#warning')
    ok(ls_remote(site, 'bob', others))
    assert token_id(others) in [t['id'] for t in listed(site, 'bob')]
    # a revoke without Trac's form token is refused by Trac
    response = page.request.post(site.trac + '/prefs/apppasswords',
                                 form={'revoke': token_id(mine)})
    assert response.status == 400
    ok(ls_remote(site, 'alice', mine))
    # the panel never saved her Trac session (see appprefs): no attribute
    # was written back
    assert attributes(site, 'alice') == before
    page.context.close()


# -- the account's state and the token's limits -----------------------------

def test_expired_app_password_is_refused(site):
    from tracwsgiauth.apppasswords import AppPasswords
    with trac_env(site.env.path) as env:
        old = seen(AppPasswords(env).create(
            'erin', 'old', 'commit', time.time() - 60)[1])
    refused(ls_remote(site, 'erin', old), *UNAUTHORIZED)
    refused(svn_ls(site, 'erin', old), *UNAUTHORIZED)
    # about 1.7 s to live: works, then no more
    soon = added(site, 'erin', 'soon', 'read', '0.00002')
    ok(ls_remote(site, 'erin', soon))
    assert wait_for(lambda: ls_remote(site, 'erin', soon).returncode != 0,
                    10, 0.5)
    refused(svn_ls(site, 'erin', soon), *UNAUTHORIZED)


def test_locked_account_app_passwords_are_refused(site):
    password = added(site, 'carol', 'ci', 'commit')
    ok(ls_remote(site, 'carol', password))
    with trac_env(site.env.path) as env:
        with env.db_transaction as db:
            db("DELETE FROM session_attribute WHERE sid='carol' "
               "AND name='failed_logins_count'")
            db("INSERT INTO session_attribute (sid, authenticated, name, "
               "value) VALUES ('carol', 1, 'failed_logins_count', '20')")
    try:
        refused(ls_remote(site, 'carol', password), *UNAUTHORIZED)
        refused(svn_ls(site, 'carol', password), *UNAUTHORIZED)
    finally:
        trac_admin(site.env.path, 'wsgiauth', 'unlock', 'carol')
    ok(ls_remote(site, 'carol', password))


def test_removed_user_app_passwords_are_refused(site):
    password = added(site, 'dave', 'reader', 'read')
    ok(svn_ls(site, 'dave', password))
    out = trac_admin(site.env.path, 'wsgiauth', 'remove', 'dave').stdout
    refused(svn_ls(site, 'dave', password), *UNAUTHORIZED)
    refused(ls_remote(site, 'dave', password), *UNAUTHORIZED)
    assert listed(site, 'dave') == [], out


def test_scope_read_of_a_committer_cannot_write(site):
    """bob may push with his account password, not with a read app
    password; a commit one may."""
    read = added(site, 'bob', 'read only', 'read')
    commit = added(site, 'bob', 'writer', 'commit')
    clone = workdir('bob')
    ok(git(['clone', '-q', site.url + '/git/tools', clone], 'bob', read))
    refused(git_commit_push(clone, 'bob.txt', 'bob\n', 'read', 'bob', read),
            *GIT_FORBIDDEN)
    ok(git(['push', 'origin', 'HEAD:refs/heads/main'], 'bob', PW['bob'],
           cwd=clone))
    ok(git_commit_push(clone, 'bob2.txt', 'bob\n', 'commit', 'bob', commit))


# -- where app passwords are taken -------------------------------------------

def test_app_password_on_trac_login_only_when_everywhere(site):
    password = added(site, 'bob', 'web', 'read')
    assert request(site.port, '/proj/login', 'bob', password)[0] == 401
    assert request(site.port, '/proj/login', 'bob', PW['bob'])[0] in \
        (200, 302, 303)
    edit_ini(site.env.path, 'wsgiauth', 'app_passwords_everywhere', 'true')
    try:
        assert request(site.port, '/proj/login', 'bob', password)[0] in \
            (200, 302, 303)
    finally:
        edit_ini(site.env.path, 'wsgiauth', 'app_passwords_everywhere',
                 'false')
    assert request(site.port, '/proj/login', 'bob', password)[0] == 401


def test_repository_passwords_app_refuses_account_password(site):
    password = added(site, 'bob', 'only app', 'read')
    ok(ls_remote(site, 'bob', PW['bob']))
    edit_ini(site.env.path, 'wsgiauth', 'repository_passwords', 'app')
    try:
        refused(ls_remote(site, 'bob', PW['bob']), *UNAUTHORIZED)
        refused(svn_ls(site, 'bob', PW['bob']), *UNAUTHORIZED)
        ok(ls_remote(site, 'bob', password))
        ok(svn_ls(site, 'bob', password))
        # Trac's own login still takes the account password
        assert request(site.port, '/proj/login', 'bob', PW['bob'])[0] in \
            (200, 302, 303)
    finally:
        edit_ini(site.env.path, 'wsgiauth', 'repository_passwords',
                 'account, app')
    ok(ls_remote(site, 'bob', PW['bob']))


# -- Admin > Accounts > App passwords ----------------------------------------

def test_admin_panel_lists_and_revokes_anyones(site):
    password = added(site, 'bob', 'ci bot', 'commit')
    ok(ls_remote(site, 'bob', password))
    page = logged_in(site, 'root')
    page.click('#mainnav a:text-is("Admin")')
    page.click('#tabs a:text-is("App passwords")')
    assert page.url == site.trac + '/admin/accounts/apppasswords'
    assert 'Accounts' in page.inner_text('#tabs')
    row = '#app-password-%s' % token_id(password)
    assert page.inner_text(row + ' .user') == 'bob'
    assert page.inner_text(row + ' .label') == 'ci bot'
    assert page.inner_text(row + ' .scope') == 'read and commit'

    def last_used():
        page.reload()
        return page.inner_text(row + ' .last-used')
    assert wait_for(lambda: '127.0.0.1' in last_used(), 10, 0.5)
    # only bob's, by the filter
    page.fill('#app-password-filter input[name=user]', 'bob')
    with page.expect_navigation():
        page.click('#app-password-filter input[type=submit]')
    users = {u.strip() for u in page.eval_on_selector_all(
        '#app-passwords .user', 'cells => cells.map(c => c.textContent)')}
    assert users == {'bob'}
    with page.expect_navigation():
        page.click(row + ' button')
    assert 'revoked' in page.inner_text('#notice')
    assert not page.query_selector(row)
    refused(ls_remote(site, 'bob', password), *UNAUTHORIZED)
    page.context.close()

    # not for users without TRAC_ADMIN (Trac: 404 for one who has no
    # admin panel at all)
    others = added(site, 'bob', 'hidden', 'read')
    page = logged_in(site, 'alice')
    response = page.goto(site.trac + '/admin/accounts/apppasswords')
    assert response.status in (403, 404)
    assert token_id(others) not in page.content()
    assert not page.query_selector('#app-passwords')
    page.context.close()


# -- found on the way --------------------------------------------------------

def test_trac_session_save_does_not_restore_a_removed_password():
    """Saving Trac's session (any preference, a notice carried over a
    redirect) deletes all of the user's session attributes and writes
    back those the request read at its start -- the password hash and
    the lock counts among them. A request of the user in flight while
    ``wsgiauth remove`` runs (or a new password is set, or the account
    locks) undoes it. Shown in-process: the session a request loads,
    the removal, the request's save."""
    from trac.web.session import DetachedSession
    from tracwsgiauth.modwsgi import provider_for

    class Errors(list):
        write = list.append

        def flush(self):
            pass

    def login():
        return provider_for(path).check_password(
            {'REMOTE_ADDR': '192.0.2.1', 'REQUEST_URI': '/login',
             'wsgi.errors': Errors()}, 'alice', 'alice-account-pw')

    from tracwsgiauth.sessions import SessionGuard

    class Request(object):
        """What the filter needs of a Trac request: its session."""
        def __init__(self, session):
            self.session = session

    path = make_env(public_dir(), 'race')
    set_password(path, 'alice', 'alice-account-pw')
    assert login() is True
    with trac_env(path) as env:
        session = DetachedSession(env, 'alice')    # her request begins
        session.authenticated = True
        SessionGuard(env).pre_process_request(Request(session), None)
        trac_admin(path, 'wsgiauth', 'remove', 'alice')
        assert not login()
        session['name'] = 'Alice'                  # ... and saves
        session.save()
    assert not login(), (
        'a Trac session saved by a request that began before '
        '`wsgiauth remove alice` wrote her password hash back: the removed '
        'account logs in again (Trac\'s DetachedSession.save rewrites all '
        'attributes; a new password or a lock is undone the same way)')
    with trac_env(path) as env:
        assert DetachedSession(env, 'alice')['name'] == 'Alice'    # saved


def test_no_app_password_in_apache_logs(site):
    """Every secret seen (also registered for the suite's final check)
    stayed out of Apache's logs (this test runs last in the module)."""
    assert SEEN
    logs = site.apache.error_log() + site.apache.access_log()
    assert not [p for p in SEEN if p in logs]
    assert 'tracapp_' not in logs
