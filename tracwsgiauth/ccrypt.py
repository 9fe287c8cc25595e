"""The C password code Apache's mod_authn_file uses, through ctypes:
libcrypt's ``crypt_rn`` (libxcrypt: bcrypt, SHA-crypt, MD5-crypt, DES)
and libaprutil's ``apr_md5_encode`` (``$apr1$``). Standard library only,
so it works in any Python interpreter of an Apache process. Each method
is used only where this machine's library gives the known answer.
"""

import ctypes
import ctypes.util
import hmac
import re


def _library(soname, name):
    """A C library by its usual file name, else as ldconfig finds it."""
    try:
        return ctypes.CDLL(soname)
    except OSError:
        path = ctypes.util.find_library(name)
    try:
        return ctypes.CDLL(path) if path else None
    except OSError:
        return None


def _function(library, name, argtypes, restype):
    func = getattr(library, name, None) if library else None
    if func is not None:
        func.argtypes, func.restype = argtypes, restype
    return func


def _load_apr_md5():
    """Apache's own C MD5-crypt (`apr_md5_encode` in libaprutil, which
    mod_authn_file uses), or None when libaprutil is not installed.
    About ten times faster than the pure-Python one."""
    return _function(_library('libaprutil-1.so.0', 'aprutil-1'),
                     'apr_md5_encode', [ctypes.c_char_p, ctypes.c_char_p,
                                        ctypes.c_char_p, ctypes.c_size_t],
                     ctypes.c_int)


apr_md5_encode = _load_apr_md5()
#: Which implementation checks ``$apr1$`` hashes.
APR1_BACKEND = 'libaprutil' if apr_md5_encode else 'libpass'
_APR1 = re.compile(r'\A\$apr1\$[./0-9A-Za-z]{0,8}\$[./0-9A-Za-z]{22}\Z')


def apr1_verify(stored, secret):
    if not _APR1.match(stored) or b'\0' in secret:
        return False
    out = ctypes.create_string_buffer(120)
    stored = stored.encode('ascii')
    if apr_md5_encode(secret, stored, out, len(out)) != 0:
        return False
    return hmac.compare_digest(out.value, stored)


#: sizeof(struct crypt_data) of libxcrypt, the buffer crypt_rn works in
CRYPT_DATA_SIZE = 32768
#: libxcrypt refuses passphrases of this many bytes or more
CRYPT_MAX_PASSPHRASE_SIZE = 512
_crypt_rn = _function(_library('libcrypt.so.1', 'crypt'), 'crypt_rn',
                      [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_void_p,
                       ctypes.c_int], ctypes.c_char_p)


def crypt(secret, setting):
    """libcrypt's hash of `secret` (bytes, no NUL) with `setting`, or None
    when it cannot. Thread-safe: each call has its own work area, which
    is wiped afterwards."""
    if _crypt_rn is None:
        return None
    data = ctypes.create_string_buffer(CRYPT_DATA_SIZE)
    try:
        return _crypt_rn(secret, setting, data, CRYPT_DATA_SIZE)
    finally:
        ctypes.memset(data, 0, CRYPT_DATA_SIZE)


#: One known hash of 'pässwörd' per crypt method, made by bcrypt and
#: libpass: libcrypt checks a method only where it gives the same.
KNOWN = {
    'bcrypt': '$2b$04$abcdefghijklmnopqrstuuyx2n0Zzopyr9QuYTMCfOJJOj526QVoC',
    'sha512': '$6$rounds=1000$abcdefgh$B1aVteGQOqUS9lI2PNDcl9wMunEnXU6fzjX'
              'rRnnjiKZoqU40kdv7q7otlYDWg9vlTD2K40LzvOre3nE1Xv0Mm0',
    'sha256': '$5$rounds=1000$abcdefgh$4ZclZF8J/QLL4bxg7sRfVlEP/JeRxR7y/u.'
              'J2.J6GG7',
    'md5crypt': '$1$abcdefgh$xYuxUFvxUOR4Pd6a7EeUS0',
    'crypt': 'abzp3RXJm5gNA',
}
#: The methods libcrypt checks on this machine, and by what each is checked.
LIBCRYPT_METHODS = frozenset(
    method for method, known in KNOWN.items()
    if crypt('pässwörd'.encode('utf-8'), known.encode('ascii'))
    == known.encode('ascii'))
BACKENDS = {method: 'libcrypt' if method in LIBCRYPT_METHODS else
            ('bcrypt' if method == 'bcrypt' else 'libpass')
            for method in KNOWN}
BACKENDS['apr1'] = APR1_BACKEND
