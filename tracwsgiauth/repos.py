"""Which Trac repository an HTTP request is for, and whether it reads
or writes it, with no Trac import.

Apache serves each repository Trac knows at ``<svn_url>/NAME`` (through
mod_dav_svn) or ``<git_url>/NAME`` (through git-http-backend); Trac's
default repository, whose name is empty, at ``<svn_url>/default`` or
``<git_url>/default`` (see `URL_DEFAULT`).

* Subversion and WebDAV read with GET, HEAD, OPTIONS, PROPFIND and
  REPORT; every other method writes, POST and methods not known here
  included.
* Git smart HTTP reads through ``git-upload-pack`` (and ``info/refs``
  asking for it), writes through ``git-receive-pack``; the GETs of dumb
  HTTP read; anything else writes.
"""

from urllib.parse import parse_qsl

READ, WRITE = 'read', 'write'

#: The URL name of Trac's default repository (whose name is '').
URL_DEFAULT = 'default'

#: The group the repository locations require (``Require wsgi-group``):
#: `groups_for_user` of repositories.wsgi answers it for a request it
#: allows, and nothing else.
GRANTED = 'trac-repository-access'

SVN_READS = frozenset(('GET', 'HEAD', 'OPTIONS', 'PROPFIND', 'REPORT'))


def url_name(name):
    """The last segment of a repository's URL."""
    return name or URL_DEFAULT


def trac_name(segment):
    """The Trac repository name a URL segment stands for."""
    return '' if segment == URL_DEFAULT else segment


def svn_action(method):
    """READ or WRITE, for a Subversion (WebDAV) request."""
    return READ if method in SVN_READS else WRITE


def git_action(method, rest, query):
    """READ or WRITE, for a Git request of `method` on `rest` (the path
    below the repository's URL) with `query`."""
    if rest.rstrip('/') == '/info/refs' and method in ('GET', 'HEAD'):
        if query == 'service=git-upload-pack':     # what git sends
            return READ
        services = {v for k, v in parse_qsl(query, keep_blank_values=True)
                    if k == 'service'}
        return READ if services <= {'git-upload-pack'} else WRITE
    if rest == '/git-upload-pack':
        return READ if method == 'POST' else WRITE
    if rest == '/git-receive-pack':
        return WRITE
    return READ if method in ('GET', 'HEAD') else WRITE


def longest_first(prefixes):
    """`prefixes` (kind -> URL path) as (kind, path without a final
    slash) pairs, the longest first: the order `located` tries them in."""
    stripped = [(kind, prefix.rstrip('/')) for kind, prefix in
                prefixes.items()]
    return tuple(sorted(stripped, key=lambda kp: -len(kp[1])))


def locate(path, prefixes):
    """(kind, Trac repository name, rest of the path) of a request path
    (Apache's decoded URI) below one of `prefixes` (kind -> URL path,
    e.g. ``{'svn': '/svn', 'git': '/git'}``), or None."""
    return located(path, longest_first(prefixes))


def located(path, ordered):
    """`locate`, given the prefixes in `longest_first` order."""
    for kind, prefix in ordered:
        if prefix and path.startswith(prefix + '/'):
            segment, slash, rest = path[len(prefix) + 1:].partition('/')
            if segment:
                return kind, trac_name(segment), slash + rest
    return None


def action(kind, method, rest, query):
    """READ or WRITE, for a request of `kind` ('svn' or 'git')."""
    if kind == 'git':
        return git_action(method, rest, query)
    return svn_action(method)
