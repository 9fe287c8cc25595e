"""The user-name rule: what a client or SSPI/Kerberos sends -> Trac user name.

Pure functions, no Trac import, so that the Apache side (mod_wsgi auth
provider) and the Trac side (REMOTE_USER rewrite in ``trac.wsgi``) apply
exactly the same rule.
"""

import unicodedata

#: Trac's built-in groups; nobody may authenticate under these names.
RESERVED = frozenset(('anonymous', 'authenticated'))

#: Longest user name we look up; anything longer is refused unread.
MAX_NAME_LENGTH = 255


def from_wire(text):
    """Undo mod_wsgi's Latin-1 decoding of a user name or password.

    mod_wsgi hands over the raw bytes of a credential decoded as Latin-1.
    Clients send UTF-8 nowadays, so try to read the bytes as UTF-8 and
    fall back to the Latin-1 text for old clients that really sent
    Latin-1.  Text that is not a Latin-1 decoding of bytes (it has
    characters above U+00FF) is returned unchanged.
    """
    if text.isascii():
        return text     # the same bytes in Latin-1 and in UTF-8
    try:
        raw = text.encode('latin-1')
    except UnicodeEncodeError:
        return text
    try:
        return raw.decode('utf-8')
    except UnicodeDecodeError:
        return text


def to_wire(text):
    """The inverse of `from_wire` for text we hand back to mod_wsgi."""
    return text.encode('utf-8').decode('latin-1')


def _strip(name, domains, realms):
    """Remove one listed ``DOMAIN\\`` prefix and one listed ``@REALM``
    suffix; '' when a prefix or suffix is empty while stripping is on."""
    if domains and '\\' in name:
        domain, rest = name.split('\\', 1)
        if not domain or not rest:
            return ''
        if '*' in domains or domain.lower() in domains:
            name = rest
    if realms and '@' in name:
        rest, realm = name.rsplit('@', 1)
        if not realm or not rest:
            return ''
        if '*' in realms or realm.lower() in realms:
            name = rest
    return name


def canonical_name(name, domains=(), realms=(), lowercase=False):
    """Return the Trac user name for `name`, or None to refuse it.

    :param domains: Windows domains whose ``DOMAIN\\user`` prefix is
        removed, compared without regard to case (``*`` for any).  A name
        with a domain that is not listed is kept whole, so it can only
        match a Trac user of exactly that name.
    :param realms: Kerberos realms whose ``user@REALM`` suffix (after the
        last ``@``) is removed, the same way.
    :param lowercase: fold the name to lower case, as Trac does when
        ``[trac] ignore_auth_case`` is on.

    Refused: empty names, an empty domain, realm or user part while
    stripping is on, control or format characters, leading or trailing
    white space, names over `MAX_NAME_LENGTH`, Trac's built-in group
    names, and names that would be stripped again (``CORP\\CORP\\bob``),
    so that the rule applied to its own result changes nothing.
    """
    if not isinstance(name, str) or not name \
            or len(name) > MAX_NAME_LENGTH or name != name.strip():
        return None
    # isprintable() is false for every character refused here (and for
    # more, like U+00A0), so only those names are looked at closely
    if not name.isprintable() and any(
            unicodedata.category(c) in ('Cc', 'Cf', 'Zl', 'Zp')
            for c in name):
        return None
    domains = {d.lower() for d in domains}
    realms = {r.lower() for r in realms}
    name = _strip(name, domains, realms)
    if not name or _strip(name, domains, realms) != name:
        return None
    if lowercase:
        name = name.lower()
    if name != name.strip() or name.lower() in RESERVED:
        return None
    return name
