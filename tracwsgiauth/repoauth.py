"""mod_wsgi entry points of the repository locations `deploy` writes
(apache/repositories.conf), in cgi-bin/repositories.wsgi::

    from tracwsgiauth.repoauth import for_repositories
    check_password, get_realm_hash, groups_for_user, allow_access = \\
        for_repositories('/srv/trac/proj')

Each request to ``<svn_url>/NAME`` or ``<git_url>/NAME`` reads or writes
Trac's repository NAME (`repos`). Trac decides whether its user may:

* ``allow_access`` (``WSGIAccessScript`` with ``Satisfy Any``, asked
  only for requests without credentials): True lets a read through when
  Trac lets ``anonymous`` do it; False makes Apache ask for credentials
  (always for a write, which needs an author);
* ``groups_for_user`` (``Require wsgi-group trac-repository-access``):
  that one group when Trac lets the user do it, else none (403, with
  ``AuthzSendForbiddenOnFailure On``); a locked or unapproved account,
  or one whose e-mail address is not verified yet, gets none;
* ``check_password``/``get_realm_hash``: the environment's logins, with
  app passwords (``[wsgiauth] repository_passwords``), whose scope
  (read, or read and commit) limits what ``groups_for_user`` allows.
  What check_password read -- the account, the permission table, the
  app password -- is what ``groups_for_user`` of the same request
  decides with (`modwsgi.Checked`): one look at the database per
  request.

The decision needs Trac's permission policies, so it is asked of the
process that runs Trac (`policy`, op ``repository``: `repoperm` answers)
and remembered in this process per (user, repository, read or write)
while the ``permission`` table reads the same and the authz files of
``[authz_policy]`` and ``[svn]`` keep their modification time, for at
most a minute (what plugins decide from elsewhere), and until trac.ini
(which ``trac-admin repository add`` touches) changes.
"""

import os
import threading

from . import policy, tables
from .login import DEFAULTS
from .modwsgi import EntryPoints, in_daemon_process, provider_for, \
    request_id
from .names import from_wire
from .repos import GRANTED, READ, action, located, longest_first

#: The authz files Trac's permission policies read: (section, option).
AUTHZ_FILES = (('authz_policy', 'authz_file'), ('svn', 'authz_file'))


def for_repositories(env_path, pooled=True):
    """The four mod_wsgi auth entry points of the environment's
    repository locations."""
    provider = provider_for(env_path, pooled)
    if in_daemon_process():
        from .serve import answer_policy
        answer_policy(env_path)
    gate = RepositoryGate(provider)
    return EntryPoints(gate.check_password, provider.get_realm_hash,
                       gate.groups_for_user, gate.allow_access)


def prefixes(config):
    """kind -> URL path of the repository locations, from trac.ini."""
    return {kind: config.get('wsgiauth', kind + '_url',
                             DEFAULTS[kind + '_url'])
            for kind in ('svn', 'git')}


def _mtime(path):
    try:
        return os.stat(path).st_mtime_ns
    except OSError:
        return None


def request_of(environ, ordered):
    """(Trac repository name, READ or WRITE) of a request, given the
    repository `prefixes` in `repos.longest_first` order; LookupError
    when it is below none of them."""
    path = from_wire(environ.get('SCRIPT_NAME', '') +
                     environ.get('PATH_INFO', ''))
    found = located(path, ordered)
    if found is None:
        raise LookupError('%s is below neither [wsgiauth] svn_url nor '
                          'git_url' % path[:200])
    kind, name, rest = found
    return name, action(kind, environ.get('REQUEST_METHOD', ''), rest,
                        environ.get('QUERY_STRING', ''))


class RepositoryGate(object):
    """What one process decides for the repository locations of an
    environment (see the module)."""

    def __init__(self, provider):
        self.provider = provider
        self._read_from = (None, None, None)   # trac.ini, prefixes, files
        # whether allow_access, which Apache runs first for every
        # request, failed on this thread: then the request's outage is
        # already in the error log, and its group check says nothing
        self._failed = threading.local()

    def _settings(self, ini):
        """The repository prefixes (`repos.longest_first`) and the authz
        files of trac.ini, read once per version of it."""
        seen, urls, files = self._read_from
        if seen is not ini:
            urls = longest_first(prefixes(ini))
            files = tuple(path for path in (ini.getpath(*option)
                                            for option in AUTHZ_FILES)
                          if path)
            self._read_from = (ini, urls, files)
        return urls, files

    def allowed(self, loaded, files, user, name, what, rows):
        """Whether Trac lets `user` (canonical, or 'anonymous') `what`
        (READ or WRITE) the repository `name`, remembered while the
        permission table reads `rows` and the authz `files` are unchanged
        (see the module)."""
        stamp = (rows, tuple(map(_mtime, files)))
        key = ('repository', user, name, what)
        answer = loaded.answers.get(key, stamp)
        if answer is None:
            answer = bool(policy.ask(
                self.provider.env_path, loaded.timeout, op='repository',
                user=user, repository=name, action=what)['allowed'])
            loaded.answers.put(key, stamp, answer)
        return answer

    def check_password(self, environ, user, password):
        """The environment's check_password, taking the passwords
        ``[wsgiauth] repository_passwords`` names (account, app)."""
        return self.provider.check_password(environ, user, password,
                                            repository=True)

    def allow_access(self, environ, host):
        """True: a read Trac lets anonymous do, no credentials needed.
        A write always needs a user (its author)."""
        self._failed.request = None
        try:
            loaded = self.provider._current()
            urls, files = self._settings(loaded.ini)
            name, what = request_of(environ, urls)
            if what != READ:
                return False
            rows = tables.permissions(loaded.reader)
            return self.allowed(loaded, files, 'anonymous', name, what, rows)
        except Exception as e:
            self._failed.request = request_id(environ)
            self.provider._fail(environ, 'repository access', e)
            return False

    def groups_for_user(self, environ, user):
        """[GRANTED] when Trac lets `user` do this, else []."""
        try:
            member = self.provider.member(environ, user)
            if member is None:
                return []
            urls, files = self._settings(member.loaded.ini)
            repository, what = request_of(environ, urls)
            if what != READ and member.scope == 'read':
                return []           # a read-only app password
            if self.allowed(member.loaded, files, member.name, repository,
                            what, member.rows):
                return [GRANTED]
            return []
        except Exception as e:
            if getattr(self._failed, 'request', None) != \
                    request_id(environ):
                self.provider._fail(environ, 'repository access', e)
            return []
