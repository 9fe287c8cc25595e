"""A client of Trac pages behind Apache: log in with Basic credentials
(as raw bytes, the way a client of any encoding sends them), keep Trac's
auth cookie, and read the user a page says is logged in."""

import html
import re

from tests.harness import request


def get(port, path, user=None, password=None, cookie=None):
    """(status, body as UTF-8, Set-Cookie header) of one GET; `user` and
    `password` are bytes, sent as they are."""
    status, body, headers = request(port, path, user, password, cookie,
                                    timeout=20)
    return status, body.decode('utf-8', 'replace'), headers['Set-Cookie']


def trac_login(port, prefix, user, password):
    """Log in to the Trac at `prefix`; its auth cookie (``name=value``).
    `user` and `password` are bytes or UTF-8 text."""
    if isinstance(user, str):
        user, password = user.encode('utf-8'), password.encode('utf-8')
    status, body, cookie = get(port, prefix + '/login', user, password)
    assert status == 302, (status, body[:500])
    return cookie.split(';')[0]


def trac_shows(port, path, cookie):
    """The user a Trac page says is logged in, or None (anonymous)."""
    status, body, _ = get(port, path, cookie=cookie)
    assert status == 200, body[:500]
    found = re.search(r'logged in as\s*(?:<[^>]*>\s*)*([^<]+?)\s*<', body)
    return html.unescape(found.group(1)) if found else None
