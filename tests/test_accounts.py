"""AuthStore on real Trac environments -- SQLite, PostgreSQL in the
public schema and in a schema of its own -- cross-checked with
AccountManager."""

import itertools
import time

import pytest
from trac.env import Environment
from trac.perm import PermissionSystem

from tests.harness import make_env, public_dir
from tests.pg import make_pg_env
from tracwsgiauth import hashes
from tracwsgiauth.accounts import AuthStore
from tracwsgiauth.login import Refused
from tracwsgiauth.modwsgi import rules_for
from tests.users import REALM, USERS, populate

_numbers = itertools.count()


def rules(store):
    """The rules check_password decides with, from trac.ini as the
    environment holds it now (with what a test set in memory)."""
    return rules_for(store.env.path, store.config).login


@pytest.fixture(params=['sqlite'] + [
    pytest.param(kind, marks=pytest.mark.postgres)
    for kind in ('postgres', 'postgres-schema')])
def env(request):
    """A real Trac environment on each kind of database."""
    if request.param == 'sqlite':
        path = make_env(public_dir())
    else:
        pg = request.getfixturevalue('pg')
        number = next(_numbers)
        if request.param == 'postgres':
            path = make_pg_env(pg, public_dir(), 'proj', 'acc%d' % number)
        else:
            path = make_pg_env(pg, public_dir(), 'proj', 'accounts',
                               schema='proj%d' % number)
    env = Environment(path)
    yield env
    env.shutdown()


@pytest.fixture
def store(env):
    populate(env)
    return AuthStore(env)


def test_every_user_with_the_right_password(store):
    accepted = {}
    for name, (password, _) in USERS.items():
        try:
            accepted[name] = rules(store).authenticate(name, password)
        except Refused as e:
            accepted[name] = str(e)
    assert accepted == {
        'alice': True, 'bob': True, 'dave': True, 'jürgen': True,
        'BOB': True,
        'carol': 'account locked after failed logins',
        'eve': 'account approval pending',
        'frank': True}      # logs in, to verify the address


def test_unverified_user_is_in_no_group_for_apache(store):
    assert rules(store).group_refusal('frank') == \
        'e-mail address not verified'
    assert rules(store).group_refusal('alice') is None
    assert rules(store).group_refusal('eve') == 'account approval pending'
    # a session of an unverified user goes on (AccountManager's verify
    # page needs it); a locked or unapproved one ends
    assert rules(store).refusal('frank') is None
    assert rules(store).refusal('carol') is not None


def test_wrong_and_unknown(store):
    assert rules(store).authenticate('alice', 'wrong') is False
    assert rules(store).authenticate('nobody', 'secret') is None
    assert rules(store).authenticate('developers', 'x') is None
    # a locked account: the same answer for a wrong password as for the
    # right one (both refused, neither told apart)
    with pytest.raises(Refused, match='locked'):
        rules(store).authenticate('carol', 'wrong')
    # an unapproved account with a wrong password is just wrong
    assert rules(store).authenticate('eve', 'wrong') is False


def test_unverified_email_counts_only_while_verification_is_on(store, env):
    env.config.set('account-manager', 'verify_email', 'false')
    assert rules(store).group_refusal('frank') is None


def test_realm_hash(store):
    assert rules(store).realm_hash('dave', REALM) == hashes.htdigest(
        'dave', REALM, 'dave:pw')
    assert rules(store).realm_hash('dave', 'other') is None
    assert rules(store).realm_hash('alice', REALM) is None      # bcrypt
    assert rules(store).realm_hash('nobody', REALM) is None


def test_groups(store):
    assert store.groups('alice') == [
        'anonymous', 'authenticated', 'developers', 'everyone', 'staff']
    assert store.groups('bob') == ['anonymous', 'authenticated', 'everyone']
    assert store.groups('BOB') == [
        'anonymous', 'authenticated', 'developers', 'everyone', 'staff']
    assert 'WIKI_ADMIN' not in store.groups('alice')


def test_groups_match_trac_own_view(store, env):
    perm = PermissionSystem(env)
    for user in ('alice', 'bob', 'jürgen'):
        # Trac's own permission check agrees with our group list
        assert ('WIKI_ADMIN' in perm.get_user_permissions(user)) == \
            ('developers' in store.groups(user))


def test_set_and_delete_password(store, env):
    env.config.set('wsgiauth', 'hash_scheme', 'sha512')
    store.set_password('newbie', 'pw')
    stored = env.db_query("SELECT value FROM session_attribute "
                          "WHERE sid='newbie' AND name='password'")[0][0]
    assert stored.startswith('$6$')
    assert env.db_query("SELECT authenticated FROM session "
                        "WHERE sid='newbie'") == [(1,)]
    assert rules(store).authenticate('newbie', 'pw') is True
    assert store.delete_password('newbie') is True
    assert store.delete_password('newbie') is False
    assert rules(store).authenticate('newbie', 'pw') is None


def test_canonical_follows_trac_ini(store, env):
    assert rules(store).canonical('CORP\\Alice') == 'Alice'
    env.config.set('trac', 'ignore_auth_case', 'true')
    assert rules(store).canonical('CORP\\Alice') == 'alice'


@pytest.mark.parametrize('address, allowed', [
    ('127.0.0.1', True), ('10.1.2.3', False), ('192.0.2.7', True),
    ('198.51.100.1', False), ('::1', False), ('bogus', False), (None, False)])
def test_host_allowed(env, address, allowed):
    env.config.set('wsgiauth', 'allow_hosts', '127.0.0.0/8, 192.0.2.0/24')
    env.config.set('wsgiauth', 'deny_hosts', '10.0.0.0/8')
    assert rules_for(env.path, env.config).hosts.allowed(address) is allowed


def test_ipv4_mapped_entries_match_the_dotted_client(env):
    # Apache passes an IPv4 client dotted: a mapped entry never matched
    env.config.set('wsgiauth', 'deny_hosts', '::ffff:127.0.0.1')
    env.config.set('wsgiauth', 'allow_hosts', '::ffff:192.0.2.0/120, ::1')
    hosts = rules_for(env.path, env.config).hosts
    assert not hosts.allowed('127.0.0.1')
    assert not hosts.allowed('::ffff:127.0.0.1')
    assert hosts.allowed('192.0.2.9') and hosts.allowed('::1')
    assert not hosts.allowed('198.51.100.1')
    assert hosts.problems == [
        "[wsgiauth] allow_hosts: '::ffff:192.0.2.0/120' read as "
        "192.0.2.0/24 (Apache passes IPv4 clients dotted)",
        "[wsgiauth] deny_hosts: '::ffff:127.0.0.1' read as 127.0.0.1/32 "
        "(Apache passes IPv4 clients dotted)"]


def test_no_hosts_configured_allows_all(env):
    assert rules_for(env.path, env.config).hosts.allowed('203.0.113.9')


# --- AccountManager cross-checks (the real plugin, installed for tests)

@pytest.fixture
def am_env(env):
    env.config.set('components', 'acct_mgr.*', 'enabled')
    env.config.set('account-manager', 'password_store', 'SessionStore')
    env.config.save()
    return env


@pytest.mark.parametrize('hash_type', ['md5', 'sha', 'sha256', 'sha512',
                                       'bcrypt', 'crypt'])
def test_accountmanager_htpasswd_hashes_verify_with_us(am_env, hash_type):
    from acct_mgr import pwhash
    stored = pwhash.generate_hash('pässword', hash_type)
    assert hashes.verify(stored, 'alice', 'pässword')
    assert not hashes.verify(stored, 'alice', 'password')
    ours = hashes.make(hash_type, 'alice', 'pässword')
    assert pwhash.check_hash('pässword', ours)
    assert not pwhash.check_hash('password', ours)


def test_accountmanager_htdigest_both_ways(am_env):
    from acct_mgr.pwhash import HtDigestHashMethod
    am_env.config.set('account-manager', 'db_htdigest_realm', REALM)
    method = HtDigestHashMethod(am_env)
    stored = method.generate_hash('jürgen', 'pässword')
    assert hashes.verify(stored, 'jürgen', 'pässword')
    ours = hashes.make('htdigest', 'jürgen', 'pässword', REALM)
    assert method.check_hash('jürgen', 'pässword', ours)


def test_accountmanager_login_with_our_password(am_env):
    from acct_mgr.api import AccountManager
    # AccountManager checks htpasswd forms with HtPasswdHashMethod
    am_env.config.set('account-manager', 'hash_method', 'HtPasswdHashMethod')
    AuthStore(am_env).set_password('alice', 'secret')
    manager = AccountManager(am_env)
    assert manager.check_password('alice', 'secret')
    assert not manager.check_password('alice', 'wrong')


def test_password_set_by_accountmanager_checks_with_us(am_env):
    from acct_mgr.api import AccountManager
    am_env.config.set('account-manager', 'hash_method', 'HtPasswdHashMethod')
    am_env.config.set('account-manager', 'db_htpasswd_hash_type', 'sha512')
    AccountManager(am_env).set_password('zoe', 'zoe-pw')
    assert rules(AuthStore(am_env)).authenticate('zoe', 'zoe-pw') is True


@pytest.mark.parametrize('state', [
    dict(count='2'),                                    # tries left
    dict(count='3', age=10),                            # time-locked
    dict(count='3', age=4000),                          # lock expired
    dict(count='5', age=4000, lock_count='3', progression='2'),  # longer
    dict(count='3', age=10, lock_time='0'),             # permanent
    dict(count='3', age=10, max_count='0'),             # guard off
])
def test_lock_state_agrees_with_accountmanager(am_env, state):
    from acct_mgr.guard import AccountGuard
    config = am_env.config
    config.set('account-manager', 'login_attempt_max_count',
               state.get('max_count', '3'))
    config.set('account-manager', 'user_lock_time',
               state.get('lock_time', '3600'))
    config.set('account-manager', 'user_lock_time_progression',
               state.get('progression', '1'))
    store = AuthStore(am_env)
    store.set_password('lou', 'lou-pw')
    attempts = [{'ipnr': '127.0.0.1',
                 'time': int(time.time()) - state.get('age', 0)}]
    with am_env.db_transaction as db:
        for name, value in [('failed_logins_count', state['count']),
                            ('failed_logins', repr(attempts)),
                            ('lock_count', state.get('lock_count'))]:
            if value is not None:
                db("INSERT INTO session_attribute VALUES ('lou', 1, %s, %s)",
                   (name, value))
    am_says = bool(AccountGuard(am_env).user_locked('lou'))
    assert (rules(store).refusal('lou') is not None) == am_says


def test_hostile_attributes_are_never_evaluated(env):
    store = AuthStore(env)
    store.set_password('mal', 'pw')
    env.config.set('account-manager', 'login_attempt_max_count', '1')
    env.config.set('account-manager', 'user_lock_time', '60')
    with env.db_transaction as db:
        db("INSERT INTO session_attribute VALUES ('mal', 1, "
           "'failed_logins_count', '1')")
        db("INSERT INTO session_attribute VALUES ('mal', 1, 'failed_logins', "
           "%s)", ("__import__('os').system('touch /tmp/pwned')",))
    # unreadable attempt log: locked (fail closed), nothing evaluated
    assert rules(store).refusal('mal') == 'account locked after failed logins'
    with env.db_transaction as db:
        db("UPDATE session_attribute SET value='many' "
           "WHERE sid='mal' AND name='failed_logins_count'")
    assert rules(store).refusal('mal') == 'account locked after failed logins'


# --- the verified-credential cache

@pytest.fixture
def counted(monkeypatch):
    """Count the real hash verifications."""
    calls = []
    real = hashes.verify

    def verify(stored, user, password):
        calls.append(user)
        return real(stored, user, password)
    monkeypatch.setattr(hashes, 'verify', verify)
    return calls


def test_cache_skips_the_hash_for_a_repeated_credential(store, counted):
    for _ in range(3):
        assert rules(store).authenticate('alice', 'secret') is True
    assert counted == ['alice']
    # failures are never remembered
    for _ in range(2):
        assert rules(store).authenticate('alice', 'wrong') is False
    assert counted == ['alice'] * 3


def test_cache_never_outlives_a_password_change_or_a_lock(store, env):
    assert rules(store).authenticate('alice', 'secret') is True
    store.set_password('alice', 'new-secret')
    assert rules(store).authenticate('alice', 'secret') is False
    assert rules(store).authenticate('alice', 'new-secret') is True
    env.db_transaction("INSERT INTO session_attribute VALUES "
                       "('alice', 1, 'approval', 'revoked')")
    with pytest.raises(Refused):
        rules(store).authenticate('alice', 'new-secret')
    store.delete_password('alice')
    assert rules(store).authenticate('alice', 'new-secret') is None


def test_cache_off_ttl_and_size(store, env, counted, monkeypatch):
    env.config.set('wsgiauth', 'cache_size', '0')
    rules(store).authenticate('bob', 'hunter2')
    rules(store).authenticate('bob', 'hunter2')
    assert counted == ['bob', 'bob']
    env.config.set('wsgiauth', 'cache_size', '1')
    rules(store).authenticate('bob', 'hunter2')
    rules(store).authenticate('dave', 'dave:pw')     # evicts bob
    rules(store).authenticate('bob', 'hunter2')
    assert counted.count('bob') == 4
    env.config.set('wsgiauth', 'cache_size', '10')
    env.config.set('wsgiauth', 'cache_ttl', '5')
    now = [1000.0]
    monkeypatch.setattr('tracwsgiauth.login.time.monotonic',
                        lambda: now[0])
    rules(store).authenticate('alice', 'secret')
    rules(store).authenticate('alice', 'secret')
    assert counted.count('alice') == 1
    now[0] += 6
    rules(store).authenticate('alice', 'secret')
    assert counted.count('alice') == 2


def test_cache_keeps_no_password(store):
    from tracwsgiauth.login import verified
    rules(store).authenticate('alice', 'secret')
    for key in verified._entries:
        assert b'secret' not in key and len(key) == 32


# --- the lock decision over every kind of option value

LOCK_OPTIONS = {
    'login_attempt_max_count': ['-1', '0', '', '3', 'x'],
    'user_lock_time': ['-60', '0', '60', '3600', 'x'],
    'user_lock_time_progression': ['0.5', '1', '2', '-1', 'x', 'inf'],
    'user_lock_max_time': ['-1', '0', '30', '86400', 'x'],
}

#: user -> (failed_logins_count, seconds since the last failure or None
#: for no attempt log, lock_count, has an authenticated session)
LOCK_STATES = {
    'l-tries-left': ('2', 10, None, True),
    'l-just-now': ('3', 10, None, True),
    'l-minutes-ago': ('3', 100, None, True),
    'l-long-ago': ('5', 4000, '3', True),
    'l-count-zero': ('3', 10, '0', True),
    'l-unknown': ('3', 10, None, False),
    'l-no-log': ('3', None, None, True),
}


def _lock_users(env):
    now = int(time.time())
    with env.db_transaction as db:
        for user, (count, age, lock_count, known) in LOCK_STATES.items():
            if known:
                db("INSERT INTO session VALUES (%s, 1, 0)", (user,))
            attempts = None if age is None else \
                repr([{'ipnr': '127.0.0.1', 'time': now - age}])
            for name, value in [('failed_logins_count', count),
                                ('failed_logins', attempts),
                                ('lock_count', lock_count)]:
                if value is not None:
                    db("INSERT INTO session_attribute VALUES (%s, 1, %s, %s)",
                       (user, name, value))


def _guard_answers(env, users):
    """AccountGuard.user_locked per user, None where AccountManager cannot
    answer (it raises on a value it cannot read)."""
    from acct_mgr.guard import AccountGuard
    guard = AccountGuard(env)
    try:
        guard.__init__()    # its fix-ups of the options, for these values
    except Exception:
        return dict.fromkeys(users)
    answers = {}
    for user in users:
        try:
            answers[user] = bool(guard.user_locked(user))
        except Exception:
            answers[user] = None
    return answers


def _at_limit(values, user):
    """Whether a user's lock depends on the lock options' values."""
    try:
        limit = int(values['login_attempt_max_count'] or 0)
    except ValueError:
        return True
    count, _, _, known = LOCK_STATES[user]
    return 0 < limit <= int(count) and known


def test_lock_decision_equals_accountguard_for_every_option_value():
    path = make_env(public_dir(), 'locks')
    env = Environment(path)
    env.config.set('components', 'acct_mgr.*', 'enabled')
    _lock_users(env)
    checked = 0
    try:
        for combination in itertools.product(*LOCK_OPTIONS.values()):
            values = dict(zip(LOCK_OPTIONS, combination, strict=True))
            for name, value in values.items():
                env.config.set('account-manager', name, value)
            am_says = _guard_answers(env, LOCK_STATES)
            for name, value in values.items():   # undo its fix-ups
                env.config.set('account-manager', name, value)
            try:
                login = rules(AuthStore(env))
            except ValueError:
                login = None
            for user, locked in am_says.items():
                ours = login is None or login.refusal(user) is not None
                if locked is None:
                    locked = _at_limit(values, user)
                assert ours == locked, (values, user)
                checked += 1
    finally:
        env.shutdown()
    assert checked == 750 * len(LOCK_STATES)


# --- an unknown user costs what a wrong password of a typical user costs

@pytest.mark.parametrize('mix, typical', [
    ({'htdigest': 3, 'bcrypt': 1}, 'htdigest'),
    ({'sha': 1, 'md5': 2, 'bcrypt': 1}, 'md5'),
    ({'bcrypt': 2, 'sha512': 1}, 'bcrypt'),
    ({}, 'bcrypt'),     # nobody yet: hash_scheme's default
])
def test_unknown_user_verifies_a_hash_of_the_common_scheme(monkeypatch, mix,
                                                           typical):
    env = Environment(make_env(public_dir()))
    try:
        with env.db_transaction as db:
            for kind, count in mix.items():
                for i in range(count):
                    user = '%s-%d' % (kind, i)
                    db("INSERT INTO session_attribute "
                       "VALUES (%s, 1, 'password', %s)",
                       (user, hashes.make(kind, user, 'pw', REALM)))
        seen = []
        real = hashes.verify
        monkeypatch.setattr(hashes, 'verify', lambda stored, *args: (
            seen.append(hashes.scheme(stored)) or real(stored, *args)))
        assert rules(AuthStore(env)).authenticate('nobody', 'pw') is None
        assert seen == [typical]
    finally:
        env.shutdown()
