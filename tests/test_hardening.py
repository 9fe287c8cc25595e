"""Bad input through the real mod_wsgi entry points, a table-driven corpus
plus property-based tests, and a sample of it through a real Apache.

Every case: never a wrong acceptance, never an exception escaping to
mod_wsgi (a 500), and exactly the answer the rules give: None (no such
user), False (refused) or the accepted name (True, or the canonical name
mod_wsgi then uses as REMOTE_USER)."""

import base64
import os

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from trac.env import Environment

from tests.harness import (Apache, auth_location, auth_script, docs_folder,
                           make_env, open_up, public_dir, request)
from tracwsgiauth.modwsgi import for_environment
from tracwsgiauth.serve import answer_policy
from tracwsgiauth.names import to_wire
from tests.users import USERS, populate

MB = 'x' * (1 << 20)

#: users whose stored value is broken: the stored text itself, or any
#: password, must never let them in
MALFORMED = {
    'm-trunc-apr1': '$apr1$abc',
    'm-trunc-apr1b': '$apr1$abcdefgh$tooShort',
    'm-trunc-bcrypt': '$2b$10$short',
    'm-bcrypt-cost': '$2b$99$' + 'a' * 53,
    'm-htdigest-hex': 'trac:nothexnothexnothexnothexnoth',
    'm-htdigest-short': 'trac:abc',
    'm-sha-b64': '{SHA}not base64!!',
    'm-sha-len': '{SHA}' + base64.b64encode(b'short').decode(),
    'm-sha512': '$6$rounds=abc$x$y',
    'm-sha256': '$5$',
    'm-plain': 'plaintextpassword',
    'm-empty': '',
    'm-unknown': '$9$unknown$scheme',
    'm-argon': '$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA',
    'm-huge': 'x' * 100000,
    'm-nul': 'trac:\x00' * 8,
    'm-des-like': 'ab!@#$%^&*()_',
}


@pytest.fixture(scope='module')
def entry():
    parent = public_dir()
    path = make_env(parent, 'corpus', extra_ini='\n[wsgiauth]\n'
                    'strip_realms = EXAMPLE.COM\n')
    folded = make_env(parent, 'folded')
    for target in (path, folded):
        env = Environment(target)
        if target == folded:
            env.config.set('trac', 'ignore_auth_case', 'true')
        populate(env)
        # the corpus sends alice many wrong passwords: lock only carol,
        # whose count is made to reach the limit
        env.config.set('account-manager', 'login_attempt_max_count', '1000')
        env.config.save()
        with env.db_transaction as db:
            db("UPDATE session_attribute SET value='1000' WHERE sid='carol' "
               "AND name='failed_logins_count'")
            for name, stored in MALFORMED.items():
                db("INSERT INTO session VALUES (%s, 1, 0)", (name,))
                db("INSERT INTO session_attribute "
                   "VALUES (%s, 1, 'password', %s)", (name, stored))
        env.shutdown()
    open_up(parent)
    for target in (path, folded):   # answer group checks, as Trac's
        answer_policy(target)       # process does behind Apache
    return path, for_environment(path), for_environment(folded)


class Errors(object):
    """wsgi.errors that remembers what was written."""

    def __init__(self):
        self.lines = []

    def write(self, text):
        self.lines.append(text)

    def flush(self):
        pass


def wire(text):
    """What mod_wsgi hands over for text a client sent as UTF-8."""
    return to_wire(text)


def _cases():
    """(label, user as mod_wsgi passes it, password as passed, expected
    check_password answer)."""
    cases = []

    def add(label, user, password, expected):
        cases.append((label, user, password, expected))

    # the known users: right, wrong, empty, near misses
    for name, (password, scheme) in USERS.items():
        accepted = {'carol': False, 'eve': False}.get(
            name, True)
        add('right ' + name, wire(name), wire(password), accepted)
        add('wrong ' + name, wire(name), wire('!' + password), False)
        if scheme == 'crypt':
            # DES crypt reads 8 bytes, in Apache as here: a weak scheme
            add('DES ignores byte 9 ' + name, wire(name),
                wire(password + '!'), True)
            continue
        add('empty password ' + name, wire(name), '', False)
        add('prefix password ' + name, wire(name), wire(password[:-1]),
            False)
        add('space after password ' + name, wire(name),
            wire(password + ' '), False)
        add('space before password ' + name, wire(name),
            wire(' ' + password), False)
        add('NUL in password ' + name, wire(name),
            wire(password + '\x00'), False)
        add('1 MB password ' + name, wire(name), MB, False)
        add('space before name ' + name, wire(' ' + name),
            wire(password), None)
        add('space after name ' + name, wire(name + ' '), wire(password),
            None)
    # empty and huge
    add('empty both', '', '', None)
    add('empty user', '', 'hunter2', None)
    add('1 MB user', MB, 'hunter2', None)
    add('1 MB both', MB, MB, None)
    add('256-char user', 'b' * 256, 'x', None)
    # control and format characters
    for c in ['\x00', '\x01', '\t', '\n', '\r', '\x1b', '\x7f', '\x85',
              '\u2028', '\u200b', '\u200e', '\ufeff']:
        add('control %r after name' % c, wire('bob' + c), 'hunter2', None)
        add('control %r before name' % c, wire(c + 'bob'), 'hunter2', None)
        add('control %r in password' % c, 'bob', wire('hunter2' + c), False)
    # Latin-1 and UTF-8 over the wire
    add('UTF-8 name and password', wire('jürgen'), wire('pässword'), True)
    # a changed name is handed back as text: mod_wsgi encodes it as UTF-8
    add('Latin-1 name and password', 'jürgen', 'pässword', 'jürgen')
    add('Latin-1 name, wrong', 'jürgen', 'passwörd', False)
    add('invalid UTF-8 bytes', 'j\xfc\xffrgen', 'pässword', None)
    add('lone continuation byte in password', 'bob', 'hunter2\x80', False)
    add('double-encoded name', wire(wire('jürgen')), wire('pässword'), None)
    add('non-Latin-1 text', 'бob', 'hunter2', None)
    # ':' in passwords
    add('colon password', 'dave', 'dave:pw', True)
    add('colon password, prefix', 'dave', 'dave:', False)
    add('colon password, suffix', 'dave', ':pw', False)
    add('colon password, extra', 'dave', 'dave:pw:', False)
    add('only colon', 'dave', ':', False)
    # domains and realms (strip_domains = CORP, strip_realms = EXAMPLE.COM)
    for user, expected_name in [
            ('CORP\\bob', 'bob'), ('corp\\bob', 'bob'), ('CoRp\\bob', 'bob'),
            ('bob@EXAMPLE.COM', 'bob'), ('bob@example.com', 'bob'),
            ('CORP\\bob@EXAMPLE.COM', 'bob'), ('CORP\\BOB', 'BOB')]:
        password = USERS[expected_name][0]
        add('domain form %s' % user, user, password, expected_name)
        add('domain form %s, wrong' % user, user, 'x' + password, False)
    for user in ['CORP\\\\bob', '\\bob', 'bob\\', 'CORP\\', 'EVIL\\bob',
                 'CORP\\CORP\\bob', 'bob@', '@EXAMPLE.COM', '@',
                 'bob@EXAMPLE.COM@X', 'bob@OTHER', 'bob@EXAMPLE.COM ',
                 'CORP\\ bob', 'CORP \\bob', 'bob@@EXAMPLE.COM',
                 'CORP\\anonymous', 'authenticated@EXAMPLE.COM']:
        add('refused domain form %s' % user, user, 'hunter2', None)
    # SQL and format metacharacters
    for user in ["bob' OR '1'='1", "bob'--", 'bob"; DROP TABLE session; --',
                 '%s', '%%', 'bob%', 'b_b', '*', "'", '\\', 'bob\\x00',
                 "') UNION SELECT 'x', 'trac:0' --", 'bob;', '$(id)',
                 '{0}', '../../etc/passwd', 'NULL', 'None']:
        add('metacharacters %s' % user, user, 'hunter2', None)
    for password in ["' OR '1'='1", "hunter2' --", '%s', '%(x)s', '*',
                     'hunter2%', 'hunter_', '\\', "'; DROP TABLE x; --"]:
        add('metacharacter password %s' % password, 'bob', password, False)
    # case (ignore_auth_case off here)
    add('case Bob', 'Bob', 'hunter2', None)
    add('case bOB', 'bOB', 'hunter2', None)
    add('case BOB is its own user', 'BOB', 'upper-pw', True)
    add("case BOB with bob's password", 'BOB', 'hunter2', False)
    add('case ALICE', 'ALICE', 'secret', None)
    # names that look like permissions, and groups
    for user in ['ADMIN', 'TRAC_ADMIN', 'WIKI_ADMIN', 'developers', 'staff',
                 'everyone', 'anonymous', 'authenticated', 'Anonymous',
                 'AUTHENTICATED', 'CORP\\anonymous']:
        add('group or action %s' % user, user, 'x', None)
        add('group or action %s, a user password' % user, user, 'hunter2',
            None)
    # bcrypt's 72 bytes
    add('bcrypt 72+ bytes', 'alice', 'secret' + 'x' * 70, False)
    add('bcrypt 73 bytes', 'alice', 'x' * 73, False)
    add('bcrypt password then 72 more', 'alice', 'secret' + 'y' * 72,
        False)
    add('bcrypt NUL', 'alice', 'secret\x00', False)
    # malformed stored hashes
    for name, stored in MALFORMED.items():
        add('malformed %s, stored text' % name, name, stored[:4096], False)
        add('malformed %s, empty' % name, name, '', False)
        add('malformed %s, a password' % name, name, 'hunter2', False)
    return cases


CASES = _cases()


def test_corpus_is_big_enough():
    assert len(CASES) >= 200


@pytest.mark.parametrize('label, user, password, expected', CASES,
                         ids=[c[0][:60] for c in CASES])
def test_corpus(entry, label, user, password, expected):
    _, provider, _ = entry
    errors = Errors()
    environ = {'wsgi.errors': errors, 'REMOTE_ADDR': '127.0.0.1'}
    answer = provider.check_password(environ, user, password)
    assert answer == expected and type(answer) is type(expected)
    # failures are refusals, not faults: nothing in the error log
    assert errors.lines == []
    # groups are answered for any acceptable name (another provider, such
    # as SSPI, may have authenticated it); refused names have none
    groups = provider.groups_for_user(environ, user)
    assert isinstance(groups, list) and errors.lines == []
    if expected not in (None, False):
        # an e-mail address not verified yet: logged in, in no group
        assert ('authenticated' in groups) == (label != 'right frank')
    realm = provider.get_realm_hash(environ, user, 'trac')
    assert realm is None or (isinstance(realm, str) and len(realm) == 32)
    assert errors.lines == []


FOLDED = [
    ('Bob', 'hunter2', 'bob'), ('BOB', 'hunter2', 'bob'),
    ('bob', 'hunter2', True), ('bOb', 'wrong', False),
    ('BOB', 'upper-pw', False),   # folds to bob: bob's password counts
    ('ALICE', 'secret', 'alice'), ('Jürgen', 'pässword', 'jürgen'),
    ('ANONYMOUS', 'x', None), ('Authenticated', 'x', None),
]


@pytest.mark.parametrize('user, password, expected', FOLDED)
def test_case_folding_when_trac_ignores_auth_case(entry, user, password,
                                                  expected):
    _, _, folded = entry
    environ = {'wsgi.errors': Errors()}
    answer = folded.check_password(environ, wire(user), wire(password))
    assert answer == expected and type(answer) is type(expected)


RIGHT = {name: password for name, (password, _) in USERS.items()}


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(user=st.one_of(st.text(max_size=40),
                      st.sampled_from(sorted(USERS) + ['CORP\\bob'])),
       password=st.text(max_size=100), raw=st.booleans())
def test_never_accepts_a_wrong_password_never_raises(entry, user, password,
                                                     raw):
    _, provider, _ = entry
    errors = Errors()
    environ = {'wsgi.errors': errors}
    sent_user = user if raw else wire(user)
    sent_password = password if raw else wire(password)
    answer = provider.check_password(environ, sent_user, sent_password)
    assert answer in (None, False, True) or isinstance(answer, str)
    if answer not in (None, False):
        from tracwsgiauth.names import from_wire
        name = from_wire(sent_user) if answer is True else answer
        assert RIGHT.get(name) == from_wire(sent_password)
    assert errors.lines == []
    assert isinstance(provider.groups_for_user(environ, sent_user), list)
    assert errors.lines == []


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=60))
def test_any_bytes_as_credentials(entry, data):
    """mod_wsgi decodes whatever bytes came as Latin-1."""
    _, provider, _ = entry
    text = data.decode('latin-1')
    user, _, password = text.partition(':')
    errors = Errors()
    answer = provider.check_password({'wsgi.errors': errors}, user, password)
    assert answer in (None, False)
    assert errors.lines == []


# --- a sample through real Apache

@pytest.fixture(scope='module')
def apache(entry):
    path = entry[0]
    parent = os.path.dirname(path)
    script = auth_script(os.path.join(parent, 'auth.wsgi'), path)
    docs = docs_folder(parent)
    open_up(parent)
    server = Apache('Alias /p "%s"\n' % docs + auth_location(
        '/p', script, group='authenticated')).start()
    yield server
    server.stop()


def raw_basic(port, user_bytes, password_bytes):
    return request(port, '/p/f.txt', user_bytes, password_bytes)[0]


def _sendable(case):
    _, user, password, _ = case
    # Apache reads the decoded credentials as a C string: a NUL ends them
    # (so 'bob:hunter2<NUL>x' is bob's right password), and the user ends
    # at the first ':'
    return ':' not in user and '\x00' not in user + password and \
        len(user) < 300 and len(password) < 3000 and \
        all(ord(c) < 256 for c in user + password)


SAMPLE = [c for c in CASES if _sendable(c)][::3]


@pytest.mark.apache
def test_sample_through_apache(apache):
    assert len(SAMPLE) >= 60
    wrong = []
    for label, user, password, expected in SAMPLE:
        status = raw_basic(apache.port, user.encode('latin-1'),
                           password.encode('latin-1'))
        want = 200 if expected not in (None, False) else 401
        if status != want:
            wrong.append((label, status, want))
    assert not wrong
    status = raw_basic(apache.port, b'bob', MB.encode())
    assert status not in (200, 500)   # Apache refuses the header itself
    log = apache.error_log()
    assert 'Traceback' not in log and 'tracwsgiauth:' not in log
