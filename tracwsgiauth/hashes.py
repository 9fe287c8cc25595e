"""Password hashes in the formats TracAccountManager's SessionStore writes.

Pure functions, no Trac import.  A stored value is one of:

* ``realm:md5hex`` -- AccountManager's ``HtDigestHashMethod``, the MD5 of
  ``user:realm:password``; the only form usable for HTTP Digest;
* ``$apr1$`` / ``$1$`` (MD5-crypt), ``{SHA}``, ``$5$`` / ``$6$``
  (SHA-crypt), ``$2a$`` / ``$2b$`` / ``$2y$`` (bcrypt) and 13-character
  DES crypt -- AccountManager's ``HtPasswdHashMethod``.

`verify` answers False, never raises, for a wrong, malformed, over-long or
unsupported password or stored value.

Checking a password imports no extension module beyond the standard
library: the crypt schemes are checked by the same C code Apache's
mod_authn_file uses -- libcrypt's ``crypt_rn`` (libxcrypt) and
libaprutil's ``apr_md5_encode`` -- through ctypes, ``{SHA}`` and htdigest
by hashlib.  So a login works in any Python interpreter of an Apache
process, also where a PyO3 extension such as ``bcrypt`` cannot be
imported (it lives in one interpreter per process only, and mod_wsgi runs
a %{GLOBAL} script in a sub-interpreter on threads that served one
first).  Only a scheme the C libraries of this machine do not check falls
back to ``bcrypt``/``libpass``, imported on first use; if that import
fails in this interpreter, such hashes are refused with one line on
stderr (Apache's error log).
"""
import base64
import hashlib
import hmac
import re
import secrets
import sys
import threading

from .ccrypt import (APR1_BACKEND, BACKENDS, CRYPT_MAX_PASSPHRASE_SIZE,  # noqa
                     KNOWN as _KNOWN, LIBCRYPT_METHODS, apr1_verify,
                     apr_md5_encode, crypt as _crypt)

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
_SALT = './0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz'
_BCRYPT64 = './ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789'


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


def _method(stored):
    """The crypt method of a stored value of a crypt scheme."""
    for prefix, method in (('$2', 'bcrypt'), ('$6$', 'sha512'),
                           ('$5$', 'sha256'), ('$1$', 'md5crypt'),
                           ('$apr1$', 'apr1')):
        if stored.startswith(prefix):
            return method
    return 'crypt'


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
        return _verify_crypt(_method(stored), stored, password, secret)
    except (ValueError, TypeError, UnicodeError):
        # malformed stored value, or a password the scheme cannot take;
        # passlib's errors derive from ValueError
        return False


def _verify_crypt(method, stored, password, secret):
    if b'\0' in secret or '\0' in stored:   # C strings end at a NUL
        return False
    if method == 'bcrypt' and len(secret) > BCRYPT_MAX_BYTES:
        return False
    if method == 'apr1' and apr_md5_encode:
        return apr1_verify(stored, secret)
    if method == 'crypt':
        secret = secret[:8]             # all DES crypt reads
    if method in LIBCRYPT_METHODS and \
            len(secret) < CRYPT_MAX_PASSPHRASE_SIZE:
        out = _crypt(secret, stored.encode('ascii'))
        return out is not None and hmac.compare_digest(
            out, stored.encode('ascii'))
    handler = _python(method)
    if handler is None:
        return False
    if method == 'bcrypt':
        return handler.checkpw(secret, stored.encode('ascii'))
    return handler.verify(password, stored)


_python_lock = threading.Lock()
#: method -> its Python implementation, or None when it cannot be
#: imported in this interpreter
_python_handlers = {}


def _python(method):
    """The Python implementation of a crypt method, imported on first use;
    None, after one line on stderr, when this interpreter cannot."""
    with _python_lock:
        if method not in _python_handlers:
            try:
                _python_handlers[method] = _import(method)
            except Exception as e:  # noqa: BLE001 -- any failed import
                _python_handlers[method] = None
                sys.stderr.write(
                    'tracwsgiauth: %s hashes cannot be checked in this Python '
                    'interpreter and are refused: %s: %s\n'
                    % (method, type(e).__name__, ' '.join(str(e).split())))
                sys.stderr.flush()
        return _python_handlers[method]


def _import(method):
    if method == 'bcrypt':
        import bcrypt
        return bcrypt
    from passlib import hash as handlers
    return getattr(handlers, {'sha512': 'sha512_crypt',
                              'sha256': 'sha256_crypt',
                              'md5crypt': 'md5_crypt', 'apr1': 'apr_md5_crypt',
                              'crypt': 'des_crypt'}[method])


def _salt(size, alphabet=_SALT):
    return ''.join(secrets.choice(alphabet) for _ in range(size))


def _make_c(kind, secret):
    """A new stored value made by libcrypt, or None where it cannot."""
    rounds = '' if SHA_CRYPT_ROUNDS == 5000 else \
        'rounds=%d$' % SHA_CRYPT_ROUNDS
    setting = {
        # bcrypt's base64 of 16 random bytes: the 22nd character holds
        # only 2 bits, so it is one of . O e u
        'bcrypt': '$2b$%02d$%s%s' % (BCRYPT_COST, _salt(21, _BCRYPT64),
                                     secrets.choice('.Oeu')),
        'sha512': '$6$' + rounds + _salt(16),
        'sha256': '$5$' + rounds + _salt(16),
        'crypt': _salt(2)}.get(kind)
    if setting is None or kind not in LIBCRYPT_METHODS:
        return None
    out = _crypt(secret, setting.encode('ascii'))
    return out.decode('ascii') if out else None


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
    if kind not in SCHEMES:
        raise ValueError('unknown hash scheme %r (one of %s)'
                         % (kind, ', '.join(SCHEMES)))
    if kind == 'bcrypt' and len(secret) > BCRYPT_MAX_BYTES:
        raise ValueError('bcrypt takes at most %d bytes and no NUL'
                         % BCRYPT_MAX_BYTES)
    if b'\0' in secret:
        raise ValueError('a %s password cannot contain NUL' % kind)
    return _make_c(kind, secret) or _make_python(kind, password, secret)


def _make_python(kind, password, secret):
    if kind == 'bcrypt':
        bcrypt = _import('bcrypt')
        return bcrypt.hashpw(secret, bcrypt.gensalt(BCRYPT_COST)) \
                     .decode('ascii')
    handler = _import({'md5': 'apr1'}.get(kind, kind))
    if kind in ('sha256', 'sha512'):
        handler = handler.using(rounds=SHA_CRYPT_ROUNDS)
    return handler.hash(password)
