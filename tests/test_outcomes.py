"""Accepted logins remembered while the database reads the same
(`tracwsgiauth.outcomes`), through the mod_wsgi entry points on real
Trac environments: what a repeated login skips, and everything that
must still count on the next request."""

import io
import time

import pytest

from tests.harness import edit_ini, make_env, public_dir, set_password, \
    trac_env
from tracwsgiauth import policy, tables
from tracwsgiauth.apppasswords import AppPasswords
from tracwsgiauth.modwsgi import for_environment, provider_for
from tracwsgiauth.repoauth import for_repositories


def environ(port=4000):
    return {'REMOTE_ADDR': '192.0.2.7', 'REMOTE_PORT': str(port),
            'REQUEST_METHOD': 'GET', 'SCRIPT_NAME': '/svn/code',
            'PATH_INFO': '/trunk/', 'QUERY_STRING': '',
            'REQUEST_URI': '/svn/code/trunk/', 'wsgi.errors': io.StringIO()}


def site(extra_ini='', database=None):
    path = make_env(public_dir(), 'outcomes', extra_ini=extra_ini,
                    database=database)
    set_password(path, 'alice', 'alice-pw')
    set_password(path, 'bob', 'bob-pw')
    return path


def logins(entry, password, n=5, user='alice'):
    return [entry.check_password(environ(5000 + i), user, password)
            for i in range(n)]


def commit_elsewhere(path):
    """A commit that changes nothing of alice's."""
    with trac_env(path) as env:
        env.db_transaction("INSERT INTO system VALUES (%s, '1')",
                           ('other-%f' % time.time(),))


def test_a_repeated_login_reads_nothing_until_a_commit(counted):
    path = site()
    entry = for_environment(path)
    assert logins(entry, 'alice-pw') == [True] * 5
    assert counted == {'reads': 1, 'hashes': 1}
    commit_elsewhere(path)
    assert logins(entry, 'alice-pw') == [True] * 5
    # read again once; the hash stays verified (its own cache)
    assert counted == {'reads': 2, 'hashes': 1}


def test_wrong_passwords_are_never_remembered(counted):
    path = site()
    entry = for_environment(path)
    assert logins(entry, 'alice-pw', 2) == [True] * 2
    assert logins(entry, 'wrong', 3) == [False] * 3
    assert counted['reads'] == 1 + 3
    assert logins(entry, 'alice-pw', 2) == [True] * 2


def test_a_commit_while_a_login_is_checked_counts_next_request(
        monkeypatch):
    """The password changes after the account was read for a login and
    before its outcome is remembered: the next login reads again."""
    path = site()
    entry = for_environment(path)
    real = tables.for_login

    def then_changed(*args, **kwargs):
        found = real(*args, **kwargs)
        monkeypatch.setattr(tables, 'for_login', real)
        set_password(path, 'alice', 'new-pw')
        return found
    monkeypatch.setattr(tables, 'for_login', then_changed)
    assert logins(entry, 'alice-pw', 1) == [True]
    assert logins(entry, 'alice-pw', 2) == [False] * 2
    assert logins(entry, 'new-pw', 2) == [True] * 2


def test_each_change_counts_next_request():
    path = site()
    entry = for_environment(path)
    assert logins(entry, 'alice-pw') == [True] * 5
    set_password(path, 'alice', 'new-pw')
    assert logins(entry, 'alice-pw') == [False] * 5
    assert logins(entry, 'new-pw') == [True] * 5
    with trac_env(path) as env:
        env.db_transaction("INSERT INTO session_attribute VALUES "
                           "('alice', 1, 'approval', 'pending')")
    assert logins(entry, 'new-pw') == [False] * 5
    with trac_env(path) as env:
        env.db_transaction("DELETE FROM session_attribute WHERE "
                           "sid='alice' AND name='approval'")
    assert logins(entry, 'new-pw') == [True] * 5
    edit_ini(path, 'wsgiauth', 'strip_domains', 'CORP')
    assert logins(entry, 'bob-pw', 2, user='CORP\\bob') == ['bob'] * 2
    with trac_env(path) as env:
        env.db_transaction("DELETE FROM session_attribute WHERE sid='bob'")
    assert logins(entry, 'bob-pw', 2, user='CORP\\bob') == [None] * 2


def test_other_name_forms_are_answered_with_their_own_trac_name():
    path = site('[wsgiauth]\nstrip_domains = CORP\n')
    edit_ini(path, 'trac', 'ignore_auth_case', 'true')
    set_password(path, 'jürgen', 'j-pw')
    entry = for_environment(path)
    wire = 'CORP\\JÜRGEN'.encode('utf-8').decode('latin-1')
    for _ in range(2):
        assert logins(entry, 'alice-pw', 2, 'alice') == [True] * 2
        assert logins(entry, 'alice-pw', 2, 'ALICE') == ['alice'] * 2
        assert logins(entry, 'alice-pw', 2, 'CORP\\alice') == ['alice'] * 2
        # mod_wsgi encodes the returned name as UTF-8 itself
        assert logins(entry, 'j-pw', 2, wire) == ['jürgen'] * 2
        assert logins(entry, 'alice-pw', 2, 'bob') == [False] * 2


def app_password(path, scope, expires=None):
    """A new app password of alice's, used once at a repository location
    and its "last used" written (until then it is not remembered)."""
    with trac_env(path) as env:
        _, password = AppPasswords(env).create('alice', 'ci', scope,
                                               expires=expires)
    assert logins(for_repositories(path), password, 1) == [True]
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with trac_env(path) as env:
            if env.db_query("SELECT last_used FROM wsgiauth_app_password "
                            "WHERE last_used IS NOT NULL"):
                return password
        time.sleep(0.05)
    raise AssertionError('last_used never written')


def test_an_app_password_ends_when_it_expires(monkeypatch, counted):
    monkeypatch.setattr(policy, 'ask', lambda *a, **q: {'allowed': True})
    path = site()
    password = app_password(path, 'commit', expires=time.time() + 2)
    gate = for_repositories(path)
    assert logins(gate, password, 4) == [True] * 4
    reads = counted['reads']
    assert logins(gate, password, 4) == [True] * 4
    assert counted['reads'] == reads        # remembered
    time.sleep(2.1)
    assert logins(gate, password, 2) == [False] * 2


def test_an_app_password_is_remembered_for_its_kind_of_location_only(
        monkeypatch, counted):
    monkeypatch.setattr(policy, 'ask', lambda *a, **q: {'allowed': True})
    path = site()
    password = app_password(path, 'read')
    gate = for_repositories(path)
    assert logins(gate, password, 3) == [True] * 3
    reads = counted['reads']
    assert logins(gate, password, 3) == [True] * 3
    assert counted['reads'] == reads        # remembered
    # trac.wsgi's locations take account passwords only
    assert logins(for_environment(path), password, 2) == [False] * 2


def test_cache_ttl_bounds_how_long_a_login_is_remembered(counted):
    path = site('[wsgiauth]\ncache_ttl = 1\n')
    entry = for_environment(path)
    assert logins(entry, 'alice-pw') == [True] * 5
    assert counted == {'reads': 1, 'hashes': 1}
    time.sleep(1.1)
    assert logins(entry, 'alice-pw') == [True] * 5
    assert counted == {'reads': 2, 'hashes': 2}


@pytest.mark.parametrize('extra_ini, database', [
    ('[wsgiauth]\ncache_size = 0\n', None),     # the cache is off
    ('', 'sqlite:db/trac.db?journal_mode=WAL'),  # no header counter
    # failed logins counted: a right login must end the count
    ('[account-manager]\nlogin_attempt_max_count = 5\n', None),
])
def test_where_nothing_is_remembered(counted, extra_ini, database):
    path = site(extra_ini, database)
    if 'max_count' in extra_ini:
        with trac_env(path) as env:
            env.db_transaction("INSERT INTO session_attribute VALUES "
                               "('alice', 1, 'failed_logins_count', '1')")
    entry = for_environment(path)
    assert logins(entry, 'alice-pw', 3) == [True] * 3
    assert counted['reads'] == 3
    if 'max_count' in extra_ini:
        with trac_env(path) as env:     # the right login ended the count
            assert not env.db_query(
                "SELECT * FROM session_attribute WHERE sid='alice' AND "
                "name='failed_logins_count'")


def test_the_password_is_not_kept():
    path = site()
    entry = for_environment(path)
    assert logins(entry, 'alice-pw', 2) == [True] * 2
    entries = provider_for(path)._current().outcomes._memo[1]
    assert len(entries) == 1
    assert 'alice-pw' not in repr(entries)
    assert b'alice-pw' not in b''.join(entries)


def test_one_version_is_remembered_at_a_time():
    """After a commit, what was remembered before is let go (it held
    the rows of its version) as soon as a login is remembered again."""
    path = site()
    entry = for_environment(path)
    assert logins(entry, 'alice-pw', 1) == [True]
    commit_elsewhere(path)
    assert logins(entry, 'bob-pw', 1, 'bob') == [True]
    outcomes = provider_for(path)._current().outcomes
    assert [e[-1].name for e in outcomes._memo[1].values()] == ['bob']
    assert logins(entry, 'alice-pw', 2) == [True] * 2


def test_a_name_and_password_split_elsewhere_is_another_credential():
    """The same text split otherwise between name and password (a NUL
    in either) stands for another credential."""
    path = site()
    outcomes = provider_for(path)._current().outcomes
    assert outcomes.key('a\0b', 'c', True) != outcomes.key('a', 'b\0c', True)
    assert outcomes.key('a', 'b', True) != outcomes.key('a', 'b', False)
