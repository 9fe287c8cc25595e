"""App passwords in-process on real Trac environments: their form and
hash, what check_password of the repository locations answers for them
(scope, expiry, revocation, another user's, the account's state), and
"last used" written at most once a minute. Through Apache and a real
browser: tests/test_app_passwords.py."""

import re
import time

import pytest

from tests.harness import make_env, public_dir, set_password, trac_env
from tracwsgiauth import apptokens, guard, tables
from tracwsgiauth.apppasswords import AppPasswords
from tracwsgiauth.modwsgi import provider_for
from tracwsgiauth.repoauth import for_repositories


def test_form_hash_and_parse():
    token_id, secret, password = apptokens.generate()
    assert re.match(r'\Atracapp_[0-9a-f]{8}_[a-z2-7]{32}\Z', password)
    assert apptokens.parse(password) == (token_id, secret)
    stored = apptokens.digest(token_id, secret)
    assert secret not in stored and apptokens.matches(stored, token_id,
                                                      secret)
    other = secret[:-1] + ('b' if secret.endswith('a') else 'a')
    assert not apptokens.matches(stored, token_id, other)
    assert not apptokens.matches(None, token_id, secret)
    for bad in ('tracapp_', 'tracapp_xyz_abc', password + 'a',
                password.upper(), ' ' + password):
        assert apptokens.parse(bad) is None


@pytest.fixture
def site():
    """An environment with alice (a password) and two app passwords of
    hers, read and commit; the repository check_password and the
    provider (for the scope)."""
    path = make_env(public_dir(), 'tok')
    set_password(path, 'alice', 'alice-pw')
    set_password(path, 'bob', 'bob-pw')
    with trac_env(path) as env:
        made = {scope: AppPasswords(env).create('alice', scope, scope)[1]
                for scope in ('read', 'commit')}
    return path, made


def check(path, user, password, method='GET'):
    environ = {'REMOTE_ADDR': '192.0.2.1', 'REMOTE_PORT': '4000',
               'REQUEST_METHOD': method, 'REQUEST_URI': '/svn/code/',
               'wsgi.errors': _Errors()}
    answer = for_repositories(path).check_password(environ, user, password)
    # what the group check that Apache runs next is given
    checked = provider_for(path).accepted(
        environ, answer if isinstance(answer, str) else user)
    return answer, checked.scope if checked else None


class _Errors(list):
    write = list.append

    def flush(self):
        pass


def test_scopes_and_other_users(site):
    path, made = site
    assert check(path, 'alice', made['read']) == (True, 'read')
    assert check(path, 'alice', made['commit']) == (True, 'commit')
    assert check(path, 'alice', 'alice-pw') == (True, None)
    assert check(path, 'bob', made['read'])[0] is False
    read = made['read']
    other = read[:-1] + ('r' if read.endswith('q') else 'q')
    assert check(path, 'alice', other)[0] is False


def test_revoked_expired_locked_and_removed_are_refused(site):
    path, made = site
    with trac_env(path) as env:
        apps = AppPasswords(env)
        [read] = [t for t in apps.listing('alice') if t['scope'] == 'read']
        assert apps.revoke(read['id'], 'bob') is False      # not bob's
        assert apps.revoke(read['id'], 'alice') is True
        _, expired = apps.create('alice', 'old', 'commit', time.time() - 1)
    assert check(path, 'alice', made['read'])[0] is False
    assert check(path, 'alice', expired)[0] is False
    assert check(path, 'alice', made['commit'])[0] is True
    with trac_env(path) as env:
        env.db_transaction("INSERT INTO session_attribute VALUES "
                           "('alice', 1, 'approval', 'revoked')")
    assert check(path, 'alice', made['commit'])[0] is False
    with trac_env(path) as env:
        env.db_transaction("DELETE FROM session_attribute WHERE "
                           "name='approval'")
        env.db_transaction("DELETE FROM session WHERE sid='alice'")
    assert check(path, 'alice', made['commit'])[0] is False   # deleted


def test_app_passwords_only_where_the_location_takes_them(site):
    path, made = site
    environ = {'REMOTE_ADDR': '192.0.2.1', 'wsgi.errors': _Errors()}
    general = provider_for(path).check_password
    assert general(environ, 'alice', made['commit']) is False
    assert general(environ, 'alice', 'alice-pw') is True
    with trac_env(path) as env:
        env.config.set('wsgiauth', 'repository_passwords', 'app')
        env.config.save()
    assert check(path, 'alice', 'alice-pw')[0] is False
    assert check(path, 'alice', made['commit'])[0] is True


def test_last_used_is_written_at_most_once_a_minute(site):
    path, made = site
    for _ in range(20):
        assert check(path, 'alice', made['commit'])[0] is True
        assert guard.writer.flush()
    with trac_env(path) as env:
        [used] = [t for t in AppPasswords(env).listing('alice')
                  if t['scope'] == 'commit']
        assert used['last_address'] == '192.0.2.1'
        assert time.time() - used['last_used'] < 60
        env.db_transaction("UPDATE wsgiauth_app_password SET last_used=1, "
                           "last_address='old' WHERE id=%s", (used['id'],))
    reader = provider_for(path).reader()
    assert tables.app_token(reader, used['id'])['last_used'] == 1
    check(path, 'alice', made['commit'])
    assert guard.writer.flush()
    assert tables.app_token(reader, used['id'])['last_used'] > 1


def test_table_on_postgresql_in_its_schema(pg):
    from tests.pg import make_pg_env
    path = make_pg_env(pg, public_dir(), 'tokpg', 'twa_tokens', 'tk')
    set_password(path, 'alice', 'alice-pw')
    with trac_env(path) as env:
        _, password = AppPasswords(env).create('alice', 'pg', 'read')
    assert check(path, 'alice', password) == (True, 'read')


def test_a_second_group_check_of_the_request_keeps_a_read_only_scope(
        monkeypatch):
    """A second group check of the same request -- two ``Require
    wsgi-group`` lines, e.g. in ``<RequireAny>`` -- reads the account
    again, and still knows the login was a read-only app password."""
    from tracwsgiauth import policy
    path = make_env(public_dir(), 'scope')
    set_password(path, 'alice', 'alice-pw')
    with trac_env(path) as env:
        read_only = AppPasswords(env).create('alice', 'ci', 'read')[1]
    # Trac's policy process: alice may commit (REPOSITORY_COMMIT)
    monkeypatch.setattr(policy, 'ask',
                        lambda *a, **q: {'allowed': True})
    gate = for_repositories(path)
    environ = {'REMOTE_ADDR': '192.0.2.1', 'REMOTE_PORT': '4000',
               'REQUEST_METHOD': 'POST', 'SCRIPT_NAME': '/git/tools',
               'PATH_INFO': '/git-receive-pack',
               'REQUEST_URI': '/git/tools/git-receive-pack',
               'QUERY_STRING': '', 'wsgi.errors': _Errors()}
    assert gate.check_password(environ, 'alice', read_only) is True
    assert gate.groups_for_user(environ, 'alice') == []     # read-only
    # the same request's next Require wsgi-group line
    assert gate.groups_for_user(environ, 'alice') == []
