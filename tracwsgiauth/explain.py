"""``trac-admin ENV wsgiauth explain USER METHOD URL``: the decision the
repository locations `deploy` writes make for one request, and why --
what an operator asks when Bob cannot push."""

import posixpath
import re
from urllib.parse import unquote, urlsplit

from trac.admin.api import IAdminCommandProvider
from trac.core import Component, implements
from trac.util.text import printout

from . import tables
from .modwsgi import provider_for
from .repoauth import prefixes
from .repoperm import NEEDS, RepositoryPolicy
from .repos import READ, action, locate, url_name

_HELP = """Explain what Apache decides for one repository request

USER is a login name (as a client sends it) or anonymous (a request
without credentials: svn and git send them only when asked); METHOD an
HTTP method (GET, PROPFIND, PUT, MERGE, POST, ...); URL the request's
URL or path, with its query (git: ...info/refs?service=git-receive-pack).
Prints the repository, whether the request reads or writes it, the
permissions checked, and who refuses; the password is not checked.
Exit status 0 when the request is allowed, 1 when it is refused."""


class ExplainCommand(Component):
    """``wsgiauth explain``."""

    implements(IAdminCommandProvider)

    def get_admin_commands(self):
        yield ('wsgiauth explain', '<user> <method> <url>', _HELP, None,
               self._do_explain)

    def _do_explain(self, user, method, url):
        lines, allowed = explain(self.env, user, method.upper(), url)
        printout('\n'.join(lines))
        return 0 if allowed else 1


def explain(env, user, method, url):
    """(lines to print, whether Apache allows the request)."""
    split = urlsplit(url)
    found = locate(_as_apache_sees(split.path), prefixes(env.config))
    if found is None:
        return ['refused: %s is not a repository URL of this environment '
                '(below neither [wsgiauth] svn_url = %s nor git_url = %s)'
                % (split.path, *prefixes(env.config).values())], False
    kind, name, rest = found
    policy = env[RepositoryPolicy]
    if (name, kind) not in {(s.name, s.kind) for s in policy.served()}:
        return ['refused: Apache serves no %s repository %r here (a new '
                'repository needs trac-admin ENV deploy again)'
                % (kind, url_name(name))], False
    what = action(kind, method, rest, split.query)
    lines = ['repository: %s (%s)' % (url_name(name), kind),
             'request:    %s %s: %s' % (method, rest or '/', what),
             'needs:      %s on repository:%s' % (', '.join(NEEDS[what]),
                                                  name)]
    if what == READ:
        anonymous = policy.decide('anonymous', name, what)
        lines.append('anonymous:  %s' % anonymous.why)
        if anonymous.allowed:
            lines.append('allowed without credentials')
            if user == 'anonymous':
                return lines, True
            lines.append('a request with credentials is decided as its '
                         'user:')
    else:
        lines.append('anonymous:  never writes (a commit needs an author)')
    if user == 'anonymous':
        return lines + ['refused: Apache asks for credentials (401)'], False
    return _as_user(env, policy, user, name, what, lines)


def _as_apache_sees(path):
    """The path Apache matches its locations against: decoded, without
    dot segments, slashes merged."""
    path = unquote(path)
    normal = posixpath.normpath('/' + path)
    if path.endswith('/') and normal != '/':
        normal += '/'
    return re.sub('/+', '/', normal)


def _as_user(env, policy, user, name, what, lines):
    provider = provider_for(env.path)
    login = provider.login()
    canonical = login.canonical(user)
    if canonical is None:
        return lines + ['refused: %r is not a user name Trac accepts '
                        '(401)' % user], False
    if tables.account(provider.reader(), canonical).get('password') is None:
        return lines + ['refused: %s has no password here, so Apache '
                        'refuses the login unless another module '
                        'authenticates it (401)' % canonical], False
    refusal = login.refusal(canonical)
    if refusal:
        return lines + ['refused: the account of %s: %s; Apache refuses '
                        'its password too (401)' % (canonical, refusal)], \
            False
    refusal = login.group_refusal(canonical)
    if refusal:
        return lines + ['refused: the account of %s: %s (403)'
                        % (canonical, refusal)], False
    decision = policy.decide(canonical, name, what)
    lines.append('%s: %s' % (canonical, decision.why))
    if decision.allowed:
        return lines + ['allowed for %s with the right password'
                        % canonical], True
    return lines + ['refused for %s (403)' % canonical], False
