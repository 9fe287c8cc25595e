"""``trac-admin ENV wsgiauth explain USER METHOD URL``: the decision the
repository locations `deploy` writes make for one request, and why --
what an operator asks when Bob cannot push."""

from urllib.parse import unquote, urlsplit

from trac.admin.api import IAdminCommandProvider
from trac.core import Component, implements
from trac.util.text import printout

from .modwsgi import provider_for
from .repoauth import prefixes
from .repoperm import NEEDS, RepositoryPolicy
from .repos import action, locate, url_name

_HELP = """Explain what Apache decides for one repository request

USER is a login name (as a client sends it) or anonymous; METHOD an
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
    found = locate(unquote(split.path), prefixes(env.config))
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
    anonymous = policy.decide('anonymous', name, what)
    lines.append('anonymous:  %s' % anonymous.why)
    if anonymous.allowed:
        return lines + ['allowed without credentials'], True
    if user == 'anonymous':
        return lines + ['refused: Apache asks for credentials (401)'], False
    return _as_user(env, policy, user, name, what, lines)


def _as_user(env, policy, user, name, what, lines):
    login = provider_for(env.path).login()
    canonical = login.canonical(user)
    if canonical is None:
        return lines + ['refused: %r is not a user name Trac accepts '
                        '(401)' % user], False
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
