"""Password hashes in the formats TracAccountManager's SessionStore writes.

Pure functions, no Trac import.  A stored value is one of:

* ``realm:md5hex`` -- AccountManager's ``HtDigestHashMethod``, the MD5 of
  ``user:realm:password``; the only form usable for HTTP Digest;
* ``$apr1$`` / ``$1$`` (MD5-crypt), ``{SHA}``, ``$5$`` / ``$6$``
  (SHA-crypt), ``$2a$`` / ``$2b$`` / ``$2y$`` (bcrypt) and 13-character
  DES crypt -- AccountManager's ``HtPasswdHashMethod``.

`verify` answers False, never raises, for a wrong, malformed, over-long or
unsupported password or stored value.
"""

import base64
import ctypes
import ctypes.util
import hashlib
import hmac
import re

import bcrypt
from passlib.hash import (apr_md5_crypt, des_crypt, md5_crypt, sha256_crypt,
                          sha512_crypt)

#: Longest password we hash at all (as passlib does); longer is refused.
MAX_PASSWORD_BYTES = 4096
#: bcrypt only reads the first 72 bytes; longer passwords are refused
#: rather than silently truncated.
BCRYPT_MAX_BYTES = 72
#: Cost of the bcrypt hashes `make` writes.
BCRYPT_COST = 10
#: Rounds of the SHA-crypt hashes `make` writes (glibc's and htpasswd's
#: default: every request is checked, so keep it affordable).
SHA_CRYPT_ROUNDS = 5000

_HTDIGEST = re.compile(r'\A(?P<realm>[^:]*):(?P<digest>[0-9a-f]{32})\Z')
_DES = re.compile(r'\A[./0-9A-Za-z]{13}\Z')
_BCRYPT = re.compile(r'\A\$2[aby]\$\d\d\$[./0-9A-Za-z]{53}\Z')

_CRYPTS = {'$apr1$': apr_md5_crypt, '$1$': md5_crypt,
           '$5$': sha256_crypt, '$6$': sha512_crypt}



def _load_apr_md5():
    """Apache's own C MD5-crypt (`apr_md5_encode` in libaprutil, which
    mod_authn_file uses), or None when libaprutil is not installed.
    About ten times faster than the pure-Python one."""
    name = ctypes.util.find_library('aprutil-1')
    try:
        encode = ctypes.CDLL(name).apr_md5_encode if name else None
    except (OSError, AttributeError):
        return None
    if encode is None:
        return None
    encode.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p,
                       ctypes.c_size_t]
    encode.restype = ctypes.c_int
    return encode


_apr_md5_encode = _load_apr_md5()
#: Which implementation checks ``$apr1$`` hashes.
APR1_BACKEND = 'libaprutil' if _apr_md5_encode else 'libpass'
_APR1 = re.compile(r'\A\$apr1\$[./0-9A-Za-z]{0,8}\$[./0-9A-Za-z]{22}\Z')


def _apr1_verify(stored, secret):
    if not _APR1.match(stored) or b'\0' in secret:
        return False
    out = ctypes.create_string_buffer(120)
    stored = stored.encode('ascii')
    if _apr_md5_encode(secret, stored, out, len(out)) != 0:
        return False
    return hmac.compare_digest(out.value, stored)


#: The schemes `make` writes, named as AccountManager's
#: ``[account-manager] db_htpasswd_hash_type`` names them, plus htdigest.
SCHEMES = ('bcrypt', 'sha512', 'sha256', 'md5', 'sha', 'crypt', 'htdigest')


def htdigest(user, realm, password):
    """The hex MD5 of ``user:realm:password`` (htdigest, HTTP Digest HA1)."""
    data = ':'.join((user, realm, password)).encode('utf-8')
    return hashlib.md5(data).hexdigest()


def _sha(password):
    digest = hashlib.sha1(password.encode('utf-8')).digest()
    return '{SHA}' + base64.b64encode(digest).decode('ascii')


def scheme(stored):
    """Name of the scheme of a stored value (one of `SCHEMES`), or None."""
    if not isinstance(stored, str):
        return None
    if _BCRYPT.match(stored):
        return 'bcrypt'
    for prefix, name in (('$6$', 'sha512'), ('$5$', 'sha256'),
                         ('$apr1$', 'md5'), ('$1$', 'md5'),
                         ('{SHA}', 'sha')):
        if stored.startswith(prefix):
            return name
    if _DES.match(stored):
        return 'crypt'
    if _HTDIGEST.match(stored):
        return 'htdigest'
    return None


def digest_realm(stored):
    """The realm of an htdigest stored value, or None for other forms."""
    match = _HTDIGEST.match(stored) if isinstance(stored, str) else None
    return match.group('realm') if match else None


def verify(stored, user, password):
    """True when `password` matches `stored` for `user`, else False.

    `user` only matters for htdigest values, which hash the user name.
    """
    kind = scheme(stored)
    if kind is None or not isinstance(password, str):
        return False
    try:
        secret = password.encode('utf-8')
    except UnicodeEncodeError:  # lone surrogates
        return False
    if len(secret) > MAX_PASSWORD_BYTES:
        return False
    try:
        if kind == 'htdigest':
            realm, digest = stored.rsplit(':', 1)
            return hmac.compare_digest(digest,
                                       htdigest(user, realm, password))
        if kind == 'sha':
            return hmac.compare_digest(stored.encode('utf-8'),
                                       _sha(password).encode('utf-8'))
        if kind == 'bcrypt':
            if len(secret) > BCRYPT_MAX_BYTES or b'\0' in secret:
                return False
            return bcrypt.checkpw(secret, stored.encode('ascii'))
        if kind == 'crypt':
            return des_crypt.verify(password, stored)
        if _apr_md5_encode and stored.startswith('$apr1$'):
            return _apr1_verify(stored, secret)
        for prefix, handler in _CRYPTS.items():
            if stored.startswith(prefix):
                return handler.verify(password, stored)
    except (ValueError, TypeError, UnicodeError):
        # malformed stored value, or a password the scheme cannot take
        # (NUL, over-long); passlib's errors derive from ValueError
        return False
    return False


def make(kind, user, password, realm=''):
    """A new stored value for `password` in scheme `kind` (see `SCHEMES`).

    Raises ValueError for an unknown scheme or a password the scheme
    cannot take (bcrypt: more than 72 bytes or NUL).
    """
    secret = password.encode('utf-8')
    if len(secret) > MAX_PASSWORD_BYTES:
        raise ValueError('password longer than %d bytes' % MAX_PASSWORD_BYTES)
    if kind == 'htdigest':
        if ':' in realm:
            raise ValueError('an htdigest realm cannot contain ":"')
        return '%s:%s' % (realm, htdigest(user, realm, password))
    if kind == 'sha':
        return _sha(password)
    if kind == 'bcrypt':
        if len(secret) > BCRYPT_MAX_BYTES or b'\0' in secret:
            raise ValueError('bcrypt takes at most %d bytes and no NUL'
                             % BCRYPT_MAX_BYTES)
        return bcrypt.hashpw(secret, bcrypt.gensalt(BCRYPT_COST)) \
                     .decode('ascii')
    if kind == 'md5':
        return apr_md5_crypt.hash(password)
    if kind == 'sha256':
        return sha256_crypt.using(rounds=SHA_CRYPT_ROUNDS).hash(password)
    if kind == 'sha512':
        return sha512_crypt.using(rounds=SHA_CRYPT_ROUNDS).hash(password)
    if kind == 'crypt':
        return des_crypt.hash(password)
    raise ValueError('unknown hash scheme %r (one of %s)'
                     % (kind, ', '.join(SCHEMES)))
