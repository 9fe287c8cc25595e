"""A Trac session (its auth cookie) ends at the next request once its
user may no longer log in, through a real Apache serving the deployed
trac.conf, where only /login asks Apache and Trac's cookie carries the
session afterwards."""

import os
import time

import pytest

from tests.harness import (Apache, add_user, auth_location, deploy, include,
                           make_env, open_up, public_dir, secret, trac_admin,
                           trac_env, write_file)
from tests.trac_pages import get, trac_login, trac_shows
from tracwsgiauth import hashes

pytestmark = pytest.mark.apache

PAGE = '/sess/wiki/WikiStart'


@pytest.fixture(scope='module')
def site():
    parent = public_dir()
    env_path = make_env(parent, 'sess', extra_ini=(
        '\n[account-manager]\nlogin_attempt_max_count = 3\n'
        'user_lock_time = 3600\n'))
    for user in ('ann', 'ben', 'cat', 'dan', 'eva', 'fay'):
        add_user(env_path, user, user + '-pw')
    target = deploy(env_path, '--url=/sess',
                    target=os.path.join(parent, 'deploy')).target
    # Trac's About page behind another provider (a password file), as
    # SSPI or Kerberos would put a user in front of Trac
    users = write_file(os.path.join(parent, 'htpasswd'), 'kerb:%s\n' %
                       hashes.make('md5', 'kerb', secret('kerb-pw')))
    open_up(parent)
    apache = Apache(include(target) + auth_location(
        '/sess/about', None, user_file=users)).start()
    apache.env_path = env_path
    yield apache
    apache.stop()


def _set(env_path, user, name, value):
    with trac_env(env_path) as env:
        env.db_transaction("INSERT INTO session_attribute "
                           "VALUES (%s, 1, %s, %s)", (user, name, value))


def _sessions(env_path, user):
    with trac_env(env_path) as env:
        return env.db_query("SELECT COUNT(*) FROM auth_cookie "
                            "WHERE name=%s", (user,))[0][0]


def _lock(env_path, user):
    _set(env_path, user, 'failed_logins_count', '3')
    _set(env_path, user, 'failed_logins',
         repr([{'ipnr': '127.0.0.1', 'time': int(time.time())}]))


def _delete_in_accountmanager(env_path, user):
    from acct_mgr.model import delete_user
    with trac_env(env_path) as env:
        delete_user(env, user)


REVOCATIONS = {
    'ann': lambda path, user: trac_admin(path, 'wsgiauth', 'remove', user),
    'ben': _lock,
    'cat': lambda path, user: _set(path, user, 'approval', 'revoked'),
    'eva': _delete_in_accountmanager,
}


@pytest.mark.parametrize('user', sorted(REVOCATIONS))
def test_revoked_user_is_anonymous_on_the_next_request(site, user):
    cookie = trac_login(site.port, '/sess', user, user + '-pw')
    assert trac_shows(site.port, PAGE, cookie) == user
    assert trac_shows(site.port, PAGE, cookie) == user
    REVOCATIONS[user](site.env_path, user)
    assert trac_shows(site.port, PAGE, cookie) is None
    assert _sessions(site.env_path, user) == 0
    assert trac_shows(site.port, PAGE, cookie) is None


def test_others_keep_their_session(site):
    fay = trac_login(site.port, '/sess', 'fay', 'fay-pw')
    other = trac_login(site.port, '/sess', 'fay', 'fay-pw')
    _set(site.env_path, 'fay', 'failed_logins_count', '1')   # tries left
    assert trac_shows(site.port, PAGE, fay) == 'fay'
    assert trac_shows(site.port, PAGE, other) == 'fay'


def _session_without_password(env_path, user, cookie):
    """What a login through another provider (SSPI, Kerberos) leaves: a
    Trac session of a user with no password here."""
    with trac_env(env_path) as env:
        env.db_transaction("INSERT INTO auth_cookie VALUES "
                           "(%s, %s, '127.0.0.1', %s)",
                           (cookie, user, int(time.time())))
    return 'trac_auth=' + cookie


def test_user_of_another_provider_is_left_alone_unless_refused(site):
    sso = _session_without_password(site.env_path, 'sso', 'f' * 32)
    unverified = _session_without_password(site.env_path, 'sso2', 'e' * 32)
    _set(site.env_path, 'sso2', 'email_verification_token', 'x2')
    assert trac_shows(site.port, PAGE, sso) == 'sso'
    assert trac_shows(site.port, PAGE, unverified) == 'sso2'
    _set(site.env_path, 'sso', 'approval', 'pending')
    assert trac_shows(site.port, PAGE, sso) is None
    assert _sessions(site.env_path, 'sso') == 0


def test_log_names_the_reason_never_the_password(site):
    log = site.error_log()
    assert 'ann-pw' not in log and 'ben-pw' not in log


def test_a_user_of_another_provider_is_refused_while_refused(site):
    def about():
        status, body, _ = get(site.port, '/sess/about', b'kerb', b'kerb-pw')
        return status, 'logged in as' in body
    assert about() == (200, True)
    _set(site.env_path, 'kerb', 'approval', 'revoked')
    assert about() == (403, False)
    with trac_env(site.env_path) as env:
        env.db_transaction("DELETE FROM session_attribute WHERE sid='kerb'")
    assert about() == (200, True)


def test_an_unverified_address_keeps_the_session_to_verify_it(site):
    cookie = trac_login(site.port, '/sess', 'dan', 'dan-pw')
    _set(site.env_path, 'dan', 'email_verification_token', 'x1')
    assert trac_shows(site.port, PAGE, cookie) == 'dan'
    assert trac_login(site.port, '/sess', 'dan', 'dan-pw')
