import json
import shutil
import sys
import subprocess

import pytest
from hypothesis import given, settings, strategies as st

from tests.harness import require
from tracwsgiauth import hashes

HTPASSWD = shutil.which('htpasswd')

SCHEMES = hashes.SCHEMES


@pytest.mark.parametrize('kind', SCHEMES)
@pytest.mark.parametrize('password', ['secret', 'pässword', 'a:b:c', ' x '])
def test_make_then_verify(kind, password):
    stored = hashes.make(kind, 'alice', password, 'trac')
    assert hashes.scheme(stored) == kind
    assert hashes.verify(stored, 'alice', password)
    if kind != 'crypt' or len(password.encode()) < 8:  # DES reads 8 bytes
        assert not hashes.verify(stored, 'alice', password + 'x')
    assert not hashes.verify(stored, 'alice', '')


def test_htdigest_binds_user_and_realm():
    stored = hashes.make('htdigest', 'alice', 'secret', 'trac')
    assert stored.startswith('trac:')
    assert hashes.digest_realm(stored) == 'trac'
    assert not hashes.verify(stored, 'bob', 'secret')
    assert hashes.verify('x' + stored, 'alice', 'secret') is False


@pytest.mark.parametrize('flag, kind', [
    ('-m', 'md5'), ('-s', 'sha'), ('-B', 'bcrypt'), ('-2', 'sha256'),
    ('-5', 'sha512'), ('-d', 'crypt')])
@pytest.mark.parametrize('password', ['secret', 'pässwort'])
def test_hashes_written_by_apache_htpasswd(flag, kind, password):
    require(HTPASSWD, "Apache's htpasswd (apt-get install apache2-utils)")
    out = subprocess.run([HTPASSWD, '-nb', flag, 'alice', password],
                         capture_output=True, check=True).stdout
    stored = out.decode('utf-8').strip().split(':', 1)[1]
    assert hashes.scheme(stored) == kind
    assert hashes.verify(stored, 'alice', password)
    assert not hashes.verify(stored, 'alice', 'Secret')


def test_sha_known_value():
    assert hashes.verify('{SHA}5en6G6MezRroT3XKqkdPOmY/BfQ=', 'x', 'secret')


def test_bcrypt_2y_and_2a_prefixes():
    stored = hashes.make('bcrypt', 'a', 'secret')
    for prefix in ('$2a$', '$2y$'):
        assert hashes.verify(prefix + stored[4:], 'a', 'secret')


@pytest.mark.parametrize('kind', SCHEMES)
def test_over_long_and_nul_passwords_are_refused_cleanly(kind):
    stored = hashes.make(kind, 'alice', 'secret', 'trac')
    for password in ('secret\x00', 'secret\x00tail', 'x' * 73,
                     'x' * 5000, '\udcff'):
        assert hashes.verify(stored, 'alice', password) is False


def test_bcrypt_refuses_more_than_72_bytes_instead_of_truncating():
    stored = hashes.make('bcrypt', 'a', 'x' * 72)
    assert hashes.verify(stored, 'a', 'x' * 72)
    assert not hashes.verify(stored, 'a', 'x' * 72 + 'y')
    with pytest.raises(ValueError):
        hashes.make('bcrypt', 'a', 'x' * 73)


@pytest.mark.parametrize('stored', [
    None, '', 'secret', '$2b$10$short', '$6$', '$6$salt', '$apr1$$',
    '$apr1$abc', '{SHA}', '{SHA}!!!', 'realm:', 'realm:abc',
    'realm:' + 'g' * 32, '$5$rounds=1$abc$def', '$6$rounds=99999999999$s$h',
    '$9$unknown', '*', '!', 'x' * 13 + '!',
])
def test_malformed_stored_values_never_verify(stored):
    assert hashes.verify(stored, 'alice', 'secret') is False
    assert hashes.verify(stored, 'alice', '') is False


def test_unknown_scheme_cannot_be_made():
    with pytest.raises(ValueError):
        hashes.make('md4', 'a', 'b')


@settings(max_examples=50, deadline=None)
@given(st.text(max_size=40), st.text(max_size=40))
def test_no_password_but_the_right_one(password, other):
    stored = hashes.make('md5', 'u', password) if '\x00' not in password \
        else None
    if stored is None:
        return
    assert hashes.verify(stored, 'u', password)
    if other != password:
        assert not hashes.verify(stored, 'u', other)


def test_apr1_uses_apaches_own_c_code_where_apache_is():
    require(hashes.APR1_BACKEND == 'libaprutil',
            "libaprutil (Apache's MD5-crypt, apt-get install libaprutil1)")


@settings(max_examples=150, deadline=None)
@given(password=st.text(st.characters(blacklist_characters='\x00'),
                        max_size=300), salt=st.text(
    alphabet='./0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ',
    max_size=8))
def test_apr1_c_path_agrees_with_libpass(password, salt):
    from passlib.hash import apr_md5_crypt
    stored = apr_md5_crypt.using(salt=salt).hash(password) if salt \
        else apr_md5_crypt.hash(password)
    assert hashes.verify(stored, 'u', password) is True
    assert hashes.verify(stored, 'u', password + '\0') is False
    assert hashes.verify(stored, 'u', password + 'x') is False
    # a damaged hash never verifies
    assert hashes.verify(stored[:-1], 'u', password) is False
    assert hashes.verify(stored[:-1] + ('A' if stored[-1] != 'A' else 'B'),
                         'u', password) is False


# -- the C path: what checks a password, and that it agrees with the rest

PYTHON = sys.executable
#: passwords for the cross-checks: any text without NUL (C strings) or a
#: line break (htpasswd -i reads one line)
PASSWORDS = st.text(st.characters(blacklist_characters='\x00\n\r',
                                  blacklist_categories=('Cs',)),
                    max_size=60)


def test_every_crypt_method_is_checked_by_libcrypt():
    require(hashes.LIBCRYPT_METHODS == set(hashes._KNOWN),
            'libxcrypt with bcrypt, SHA-crypt, MD5-crypt and DES '
            '(Debian: libcrypt1); checked here: %s' % hashes.BACKENDS)


def _python_hash(method, password):
    import bcrypt
    from passlib.hash import des_crypt, md5_crypt, sha256_crypt, sha512_crypt
    if method == 'bcrypt':
        return bcrypt.hashpw(password.encode('utf-8'),
                             bcrypt.gensalt(4)).decode('ascii')
    handler = {'sha512': sha512_crypt.using(rounds=1000),
               'sha256': sha256_crypt.using(rounds=1000),
               'md5crypt': md5_crypt, 'crypt': des_crypt}[method]
    return handler.hash(password)


@pytest.mark.parametrize('method', sorted(hashes._KNOWN))
@settings(max_examples=40, deadline=None)
@given(password=PASSWORDS, other=PASSWORDS)
def test_c_path_agrees_with_python_implementations(method, password, other):
    if method == 'bcrypt' and len(password.encode('utf-8')) > 72:
        password = password[:20]
    stored = _python_hash(method, password)
    assert hashes.verify(stored, 'u', password) is True
    expected = hashes._import(method)
    if method == 'bcrypt':
        same = len(other.encode('utf-8')) <= 72 and expected.checkpw(
            other.encode('utf-8'), stored.encode('ascii'))
    else:
        same = expected.verify(other, stored)
    assert hashes.verify(stored, 'u', other) is same
    # and what the C path makes, the Python implementations accept
    kind = {'md5crypt': 'md5'}.get(method, method)
    ours = hashes.make(kind, 'u', password)
    if method == 'bcrypt':
        assert expected.checkpw(password.encode('utf-8'), ours.encode())
    elif kind != 'md5':
        assert expected.verify(password, ours)


HTPASSWD_FLAGS = {'bcrypt': ['-B', '-C', '4'], 'md5': ['-m'], 'sha': ['-s'],
                  'sha256': ['-2'], 'sha512': ['-5'], 'crypt': ['-d']}


@pytest.mark.parametrize('kind', sorted(HTPASSWD_FLAGS))
@settings(max_examples=15, deadline=None)
@given(password=PASSWORDS)
def test_random_passwords_hashed_by_apache_htpasswd(kind, password):
    require(HTPASSWD, "Apache's htpasswd (apt-get install apache2-utils)")
    out = subprocess.run([HTPASSWD, '-ni']
                         + HTPASSWD_FLAGS[kind] + ['u'],
                         input=password.encode('utf-8'),
                         capture_output=True, check=True).stdout
    stored = out.decode('ascii').strip().split(':', 1)[1]
    assert hashes.verify(stored, 'u', password) is True
    if kind != 'crypt':
        assert hashes.verify(stored, 'u', password + 'x') is False


@pytest.mark.parametrize('kind', ['sha512', 'sha256', 'md5', 'crypt'])
def test_passwords_libcrypt_refuses_as_too_long_still_verify(kind):
    # libxcrypt takes at most 511 bytes: longer ones go to libpass
    for password in ('x' * 511, 'ü' * 300, 'y' * 4096):
        stored = hashes.make(kind, 'u', password)
        assert hashes.verify(stored, 'u', password) is True
        if kind != 'crypt':
            assert hashes.verify(stored, 'u', password[:-1] + 'z') is False


LOGIN_PATH = '''
import json, sys
import tracwsgiauth.modwsgi
from tracwsgiauth import hashes
stored = json.loads(sys.argv[1])
answers = [hashes.verify(s, 'u', 'pässwort') for s in stored]
hashes.make(hashes.SCHEMES[0], '', 'not a password')  # an unknown user
# Trac itself imports passlib.context (pure Python); no hash handler
print(json.dumps([answers, sorted(
    m for m in sys.modules if m.split('.')[0] in ('bcrypt', '_cffi_backend')
    or m.startswith(('passlib.hash', 'passlib.handlers')))]))
'''


def test_login_path_imports_neither_bcrypt_nor_libpass():
    """What a login needs is checked by C libraries and the standard
    library; bcrypt (PyO3, one interpreter per process) stays out."""
    require(hashes.LIBCRYPT_METHODS == set(hashes._KNOWN), 'libxcrypt')
    stored = [hashes.make(kind, 'u', 'pässwort', 'r')
              for kind in SCHEMES] + ['$1$abcdefgh$7VNIOsQM4ZPJ6pXYFO5UW/']
    proc = subprocess.run([PYTHON, '-c', LOGIN_PATH, json.dumps(stored)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    answers, modules = json.loads(proc.stdout)
    assert answers == [True] * len(SCHEMES) + [False]
    assert modules == []


SUB_INTERPRETER = '''
import bcrypt   # a PyO3 module: now it can live in no other interpreter
try:
    import _interpreters as interpreters
except ImportError:
    import _xxsubinterpreters as interpreters
interpreters.run_string(interpreters.create(), """
from tracwsgiauth import hashes
stored = %r
print('C path', hashes.verify(stored, 'u', 'secret'))
hashes.LIBCRYPT_METHODS = frozenset()   # as on a machine without libxcrypt
print('fallback', [hashes.verify(stored, 'u', 'secret') for _ in range(3)])
""")
'''


def test_fallback_that_cannot_import_fails_closed_with_one_line():
    """In a sub-interpreter of a process whose main interpreter imported
    bcrypt, bcrypt cannot be imported: libcrypt still checks the hash;
    without it the login is refused with one line on stderr, and no
    import is tried again."""
    stored = hashes.make('bcrypt', 'u', 'secret')
    proc = subprocess.run([PYTHON, '-c', SUB_INTERPRETER % stored],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split('\n') == [
        'C path True', 'fallback [False, False, False]', '']
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith('tracwsgiauth: bcrypt hashes cannot be '
                               'checked in this Python interpreter')
    assert 'ImportError' in lines[0] and 'secret' not in lines[0]
    assert stored[7:] not in lines[0]
