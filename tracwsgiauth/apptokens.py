"""App passwords, with no Trac import: their form, their hash, and the
SQL of the table the Trac component (`apppasswords`) creates.

An app password is sent as the Basic password with the user's own name::

    tracapp_<id>_<secret>

``id``: 8 hex digits naming the row; ``secret``: 32 base32 letters and
digits (160 random bits from `secrets`). The prefix lets secret scanners
find leaked ones. Only HMAC-SHA256(id, secret) is stored: a fast keyed
hash is enough for a secret of 160 random bits, so checking one costs
about what a cached login costs.
"""

import base64
import hashlib
import hmac
import re
import secrets

PREFIX = 'tracapp_'
_FORM = re.compile(r'\Atracapp_([0-9a-f]{8})_([a-z2-7]{32})\Z')

#: What an app password may do: read, or read and commit.
SCOPES = ('read', 'commit')

TABLE = 'wsgiauth_app_password'
COLUMNS = ('id', 'username', 'label', 'scope', 'hash', 'created', 'expires',
           'last_used', 'last_address')

FIND = ("SELECT username, scope, hash, expires, last_used "
        "FROM wsgiauth_app_password WHERE id=%s")
TOUCH = ("UPDATE wsgiauth_app_password SET last_used=%s, last_address=%s "
         "WHERE id=%s AND (last_used IS NULL OR last_used < %s)")


#: Seconds between two writes of an app password's "last used".
TOUCH_EVERY = 60


def looks_like(password):
    """Whether a password has the form of an app password."""
    return password.startswith(PREFIX)


def parse(password):
    """(id, secret) of an app password, or None."""
    found = _FORM.match(password)
    return found.groups() if found else None


def digest(token_id, secret):
    """What is stored of a secret."""
    return hmac.new(('tracwsgiauth app password ' + token_id).encode(),
                    secret.encode(), hashlib.sha256).hexdigest()


def generate():
    """(id, secret, the app password to show once)."""
    token_id = secrets.token_hex(4)
    secret = base64.b32encode(secrets.token_bytes(20)).decode().lower()
    return token_id, secret, '%s%s_%s' % (PREFIX, token_id, secret)


def matches(stored, token_id, secret):
    """Whether `secret` is the one of the stored hash (constant time)."""
    return hmac.compare_digest(stored or '', digest(token_id, secret))
