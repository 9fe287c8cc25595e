import shutil
import subprocess

import pytest
from hypothesis import given, settings, strategies as st

from harness import require
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
