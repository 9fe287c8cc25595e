"""What Trac's permission policies let a user do with a repository over
HTTP, and the ``REPOSITORY_COMMIT`` permission commits and pushes need.

* Read: Trac grants ``BROWSER_VIEW`` and ``FILE_VIEW`` on the root of
  the repository (``repository:NAME`` / ``source:/``), the resource
  Trac's own browser checks before it lists a repository -- so
  DefaultPermissionPolicy, AuthzPolicy (``[repository:NAME@*]``) and
  AuthzSourcePolicy (``[svn] authz_file``) decide as they do there.
* Write: read, and ``REPOSITORY_COMMIT`` on the same resource. It
  implies ``BROWSER_VIEW`` and ``FILE_VIEW`` (commits need reads);
  ``TRAC_ADMIN`` implies it, ``VERSIONCONTROL_ADMIN`` (the repository
  settings of Trac's admin) does not.

Decisions run where Trac runs: the Trac application's process answers
Apache's children (`policy`, see `repoauth`), ``wsgiauth explain``
answers an operator. Both read the ``permission`` table as it is now,
not as Trac cached it a moment ago.
"""

from collections import namedtuple

from trac.config import Option
from trac.core import Component, implements
from trac.perm import DefaultPermissionPolicy, DefaultPermissionStore, \
    IPermissionRequestor, PermissionCache, PermissionSystem
from trac.resource import Resource
from trac.versioncontrol.api import RepositoryManager

from . import tables
from .accounts import SECTION
from .login import DEFAULTS
from .repos import READ, WRITE

#: The permissions each kind of request needs.
NEEDS = {READ: ('BROWSER_VIEW', 'FILE_VIEW'),
         WRITE: ('BROWSER_VIEW', 'FILE_VIEW', 'REPOSITORY_COMMIT')}

#: Repository types Apache can serve, with what.
SERVED_TYPES = {'svn': 'svn', 'direct-svnfs': 'svn', 'svnfs': 'svn',
                'git': 'git'}

Decision = namedtuple('Decision', 'allowed why')

Served = namedtuple('Served', 'name kind dir')


class RepositoryPolicy(Component):
    """Trac's decisions for Subversion and Git clients over HTTP (the
    repository locations `deploy` writes)."""

    implements(IPermissionRequestor)

    svn_url = Option(SECTION, 'svn_url', DEFAULTS['svn_url'],
        doc="""URL path under which Apache serves the environment's
        Subversion repositories (`<svn_url>/NAME`; Trac's default
        repository at `<svn_url>/default`). Give each environment of a
        server its own. Deploy again after a change.""")

    git_url = Option(SECTION, 'git_url', DEFAULTS['git_url'],
        doc="""URL path under which Apache serves the environment's Git
        repositories (`<git_url>/NAME`, the default repository at
        `<git_url>/default`). Deploy again after a change.""")

    def __init__(self):
        self._seen_rows = None

    # IPermissionRequestor

    def get_permission_actions(self):
        return [('REPOSITORY_COMMIT', ['BROWSER_VIEW', 'FILE_VIEW'])]

    # decisions

    def decide(self, user, name, what):
        """The `Decision` of Trac's permission policies on whether `user`
        ('anonymous' too) may `what` (READ or WRITE) repository `name`."""
        info = RepositoryManager(self.env).get_all_repositories().get(name)
        if info is None or info.get('alias') is not None:
            return Decision(False, 'Trac has no repository %r' % name)
        self._fresh_permissions(user)
        resource = Resource('repository', name).child('source', '/')
        perm = PermissionCache(self.env, user, resource)
        for action in NEEDS[what]:
            if action not in perm:
                return Decision(False, '%s refuses %s to %s on %s' % (
                    self._decider(action, user, resource, perm), action,
                    user, _describe(name)))
        return Decision(True, 'Trac grants %s to %s on %s' % (
            ' and '.join(NEEDS[what]), user, _describe(name)))

    def _decider(self, action, user, resource, perm):
        """The name of the permission policy that decides, as Trac asks
        them: the first with an opinion."""
        for policy in PermissionSystem(self.env).policies:
            if policy.check_permission(action, user, resource,
                                       perm) is not None:
                return policy.__class__.__name__
        return 'no permission policy grants it, so Trac'

    def _fresh_permissions(self, user):
        """Forget what Trac remembers of `user`'s permissions (for 5 s),
        and of the permission table when it changed since the last
        decision (Trac reads it again when another process says it
        changed: a raw write such as AccountManager's user deletion
        never says so)."""
        DefaultPermissionPolicy(self.env).permission_cache.pop(user, None)
        rows = sorted(tables.permissions(self._reader()))
        if rows == self._seen_rows:
            return
        store = DefaultPermissionStore(self.env)
        if sorted(store._all_permissions) != rows:
            del store._all_permissions
        DefaultPermissionPolicy(self.env).permission_cache = {}
        self._seen_rows = rows

    def _reader(self):
        from .modwsgi import provider_for
        return provider_for(self.env.path).reader()

    # what Apache serves

    def served(self):
        """The repositories Apache can serve (`Served`), by name: Trac's
        own, not aliases, of a type Apache serves, with a folder."""
        rm = RepositoryManager(self.env)
        found = []
        for name, info in sorted(rm.get_all_repositories().items()):
            kind = SERVED_TYPES.get(info.get('type') or
                                    rm.default_repository_type)
            if info.get('alias') is None and kind and info.get('dir'):
                found.append(Served(name, kind, info['dir']))
        return found


def _describe(name):
    return 'repository %s' % (repr(name) if name else '(default)')
