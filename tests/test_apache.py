"""The mod_wsgi entry points behind a real Apache httpd, driven by curl."""

import os

import pytest
from trac.perm import PermissionSystem

from tracwsgiauth import hashes
from tracwsgiauth.accounts import AuthStore

from tests.harness import (Apache, auth_location, auth_script, curl, hammer,
                           make_env, open_up, public_dir, request, secret,
                           trac_env, write_file)
from tests.users import REALM, populate

pytestmark = pytest.mark.apache

APPLICATION = '''def application(environ, start_response):
    start_response('200 OK', [('Content-Type', 'text/plain; charset=utf-8')])
    user = environ.get('REMOTE_USER')
    return [('user=%s' % user).encode('latin-1')]
'''


def locations(script, missing, htpasswd):
    """/app: the application; below it, each way of protecting it."""
    return ''.join([
        'WSGIScriptAlias /app "%s" application-group=%%{GLOBAL}\n' % script,
        auth_location('/app/basic', script, realm=REALM),
        auth_location('/app/group', script, 'developers', realm=REALM),
        auth_location('/app/staff', script, 'staff', realm=REALM),
        auth_location('/app/everyone', script, 'everyone', realm=REALM),
        auth_location('/app/digest', script, kind='Digest', realm=REALM),
        auth_location('/app/missing', missing, realm=REALM),
        auth_location('/app/htpasswd-group', script, 'developers',
                      realm=REALM, user_file=htpasswd),
        '<Location /app/hosts>\n'
        '    WSGIAccessScript "%s" application-group=%%{GLOBAL}\n'
        '</Location>\n' % script])


@pytest.fixture(scope='module')
def server():
    parent = public_dir()
    env_path = make_env(parent, extra_ini='\n[wsgiauth]\n'
                        'deny_hosts = 10.0.0.0/8\n')
    with trac_env(env_path) as env:
        populate(env)
    script = auth_script(os.path.join(parent, 'auth.wsgi'), env_path,
                         application=APPLICATION)
    missing = auth_script(os.path.join(parent, 'missing.wsgi'),
                          os.path.join(parent, 'gone'),
                          application=APPLICATION)
    # a user another provider authenticates (mod_authn_file here)
    htpasswd = write_file(os.path.join(parent, 'htpasswd'), 'gina:%s\n' %
                          hashes.make('md5', 'gina', secret('gina-pw')))
    open_up(parent)
    apache = Apache(locations(script, missing, htpasswd)).start()
    apache.env_path = env_path
    yield apache
    apache.stop()


def get(server, path, user=None, password=None, **kw):
    return curl(server.url + path, user, password, **kw)


def test_no_credentials_asks_for_them(server):
    status, _, headers = get(server, '/app/basic', headers=True)
    assert status == 401
    assert 'WWW-Authenticate: Basic realm="trac"' in headers


def test_anonymous_location_is_open(server):
    assert get(server, '/app/') == (200, 'user=None')


@pytest.mark.parametrize('user, password', [
    ('alice', 'secret'), ('bob', 'hunter2'), ('dave', 'dave:pw')])
def test_right_password_gets_in(server, user, password):
    assert get(server, '/app/basic', user, password) == (200, 'user=' + user)


@pytest.mark.parametrize('user, password', [
    ('alice', 'Secret'), ('alice', ''), ('bob', 'secret'),
    ('nobody', 'secret'), ('Alice', 'secret'),
    ('carol', 'carol-pw'),   # locked
    ('eve', 'eve-pw'),       # approval pending
    ('anonymous', ''), ('authenticated', 'x'), ('developers', 'x'),
    ('EVIL\\alice', 'secret'), ('CORP\\\\alice', 'secret'),
    (' alice', 'secret'), ('alice ', 'secret'),
])
def test_wrong_unknown_or_refused_is_401(server, user, password):
    status, body = get(server, '/app/basic', user, password)
    assert status == 401, body


def test_domain_user_is_accepted_as_trac_name(server):
    # check_password returns the canonical name, which becomes REMOTE_USER
    assert get(server, '/app/basic', 'CORP\\alice', 'secret') == \
        (200, 'user=alice')
    assert get(server, '/app/basic', 'corp\\alice', 'secret') == \
        (200, 'user=alice')


def test_non_ascii_user_and_password(server):
    status, body = get(server, '/app/basic', 'jürgen', 'pässword')
    assert (status, body) == (200, 'user=jürgen')
    assert get(server, '/app/basic', 'jürgen', 'passwort')[0] == 401


def _raw_basic(server, path, credentials):
    """The status of a GET sending `credentials` (bytes) as they are."""
    return request(server.port, path, *credentials.split(b':', 1),
                   timeout=20)[0]


def test_latin1_client_bytes_are_read_as_latin1(server):
    assert _raw_basic(server, '/app/basic',
                      'jürgen:pässword'.encode('utf-8')) == 200
    # an old client sending Latin-1 bytes, which are not UTF-8
    assert _raw_basic(server, '/app/basic',
                      'jürgen:pässword'.encode('latin-1')) == 200
    assert _raw_basic(server, '/app/basic',
                      'jürgen:passwört'.encode('latin-1')) == 401
    assert _raw_basic(server, '/app/basic', b'alice:\xff\xfe') == 401
    assert _raw_basic(server, '/app/basic', b'alice\x00:secret') == 401


def test_group_member_gets_in_non_member_refused(server):
    assert get(server, '/app/group', 'alice', 'secret')[0] == 200
    assert get(server, '/app/group', 'CORP\\alice', 'secret')[0] == 200
    assert get(server, '/app/group', 'jürgen', 'pässword')[0] == 200
    assert get(server, '/app/group', 'bob', 'hunter2')[0] == 401
    assert get(server, '/app/group', 'dave', 'dave:pw')[0] == 401


def test_nested_and_authenticated_groups(server):
    # developers is in staff; authenticated is in everyone
    assert get(server, '/app/staff', 'alice', 'secret')[0] == 200
    assert get(server, '/app/staff', 'bob', 'hunter2')[0] == 401
    assert get(server, '/app/everyone', 'bob', 'hunter2')[0] == 200


def test_upper_case_user_is_a_user_not_a_permission(server):
    assert get(server, '/app/group', 'BOB', 'upper-pw')[0] == 200
    assert get(server, '/app/group', 'BOB', 'wrong-pw')[0] == 401


def test_digest(server):
    assert get(server, '/app/digest', 'dave', 'dave:pw', digest=True) == \
        (200, 'user=dave')
    assert get(server, '/app/digest', 'jürgen', 'pässword',
               digest=True) == (200, 'user=jürgen')
    assert get(server, '/app/digest', 'dave', 'wrong', digest=True)[0] == 401
    # no htdigest hash stored for alice (bcrypt): refused, not a 500
    assert get(server, '/app/digest', 'alice', 'secret', digest=True)[0] \
        == 401
    assert get(server, '/app/digest', 'nobody', 'x', digest=True)[0] == 401


def test_unverified_user_logs_in_but_is_in_no_group(server):
    # AccountManager lets such a user log in, to verify the address
    assert get(server, '/app/basic', 'frank', 'frank-pw') == \
        (200, 'user=frank')
    assert get(server, '/app/everyone', 'frank', 'frank-pw')[0] == 401
    assert get(server, '/app/everyone', 'bob', 'hunter2')[0] == 200


def test_another_provider_user_loses_groups_while_refused(server):
    url = '/app/htpasswd-group'
    with trac_env(server.env_path) as env:
        PermissionSystem(env).grant_permission('gina', 'developers')
        assert get(server, url, 'gina', 'gina-pw') == (200, 'user=gina')
        env.db_transaction("INSERT INTO session_attribute VALUES "
                           "('gina', 1, 'approval', 'revoked')")
        assert get(server, url, 'gina', 'gina-pw')[0] == 401
        env.db_transaction("DELETE FROM session_attribute "
                           "WHERE sid='gina' AND name='approval'")
        assert get(server, url, 'gina', 'gina-pw')[0] == 200
        PermissionSystem(env).revoke_permission('gina', 'developers')


def test_host_access(server):
    assert get(server, '/app/hosts')[0] == 200


def test_changes_by_another_process_count_at_once(server):
    with trac_env(server.env_path) as env:
        assert get(server, '/app/group', 'bob', 'hunter2')[0] == 401
        PermissionSystem(env).grant_permission('bob', 'developers')
        assert get(server, '/app/group', 'bob', 'hunter2')[0] == 200
        PermissionSystem(env).revoke_permission('bob', 'developers')
        assert get(server, '/app/group', 'bob', 'hunter2')[0] == 401

        AuthStore(env).set_password('bob', secret('new-pw'))
        assert get(server, '/app/basic', 'bob', 'hunter2')[0] == 401
        assert get(server, '/app/basic', 'bob', 'new-pw')[0] == 200
        env.db_transaction("INSERT INTO session_attribute VALUES "
                           "('bob', 1, 'approval', 'revoked')")
        assert get(server, '/app/basic', 'bob', 'new-pw')[0] == 401


def test_missing_environment_fails_closed_and_says_so(server):
    status, _ = get(server, '/app/missing', 'alice', secret('secret-gone'))
    assert status == 401
    log = server.error_log()
    line = ('tracwsgiauth: login refused for environment %s: '
            'FileNotFoundError' % os.path.join(
                os.path.dirname(server.env_path), 'gone'))
    assert log.count(line) == 1
    assert 'Traceback' not in log
    assert 'secret-gone' not in log


def test_error_log_never_shows_passwords(server):
    log = server.error_log()
    for password in ('secret', 'hunter2', 'dave:pw', 'pässword', 'upper-pw'):
        assert password not in log


def test_groups_of_a_user_deleted_by_accountmanager(server):
    """AccountManager deletes a user's permissions with raw SQL, which
    Trac's cached permission table does not see."""
    from acct_mgr.model import delete_user
    url = '/app/htpasswd-group'
    with trac_env(server.env_path) as env:
        cases = [(url, 'gina', 'gina-pw')] * 60
        assert set(hammer(server.port, cases)) == {401}
        PermissionSystem(env).grant_permission('gina', 'developers')
        assert get(server, url, 'gina', 'gina-pw') == (200, 'user=gina')
        # every thread of the child has seen gina as a developer
        assert set(hammer(server.port, cases)) == {200}
        delete_user(env, 'gina')
        assert set(hammer(server.port, cases)) == {401}
