"""App passwords in Trac's web interface: the preference panel
*App passwords*, where a logged-in user creates, sees and revokes their
own, and the admin panel *Accounts > App passwords* (``TRAC_ADMIN``),
where an administrator sees and revokes anyone's.

A new app password is shown once, in the answer to the request that
created it (never stored in clear, never put in the session, never
logged), with the lines that use it with ``svn`` and ``git``. That
answer is not cached by the browser, and a form sent again (a reload)
creates no second one. Every change is a POST carrying Trac's form token,
which Trac checks before any panel sees the request.

Neither panel writes Trac's session: its save rewrites every attribute
of the user as the request read them (the password hash and the lock
counts among them), which would undo a concurrent ``wsgiauth remove``,
a new password or a lock. So no redirect after a POST either (Trac
carries notices over a redirect in the session): the answer is the page
itself, whose script turns a reload into a plain GET.
"""

import re
import shlex
import time
from datetime import datetime
from urllib.parse import urlsplit

from trac.admin.api import IAdminPanelProvider
from trac.core import Component, implements
from trac.prefs.api import IPreferencePanelProvider
from trac.resource import Resource
from trac.util import hex_entropy
from trac.util.datefmt import utc
from trac.web.chrome import ITemplateProvider, add_notice, add_warning

from .apppasswords import AppPasswords
from .apptokens import SCOPES
from .deployfiles import TEMPLATES
from .repoauth import prefixes
from .repoperm import RepositoryPolicy
from .repos import url_name

PANEL = 'apppasswords'

#: How the scopes read on the pages.
SCOPE_LABELS = {'read': 'read', 'commit': 'read and commit'}

#: The longest expiry a user may give, in days (100 years).
MAX_DAYS = 36500

#: The cookie naming the form that created the last app password, so
#: that the same form sent again (a reload without JavaScript) creates no
#: other. A cookie, not the session: saving Trac's session rewrites all
#: of the user's attributes as they were read (the password hash and lock
#: counts too), and a write racing another would undo it.
NONCE = 'trac_wsgiauth_app_form'

#: A repository name Apache serves (as deploy writes them).
_SERVABLE = re.compile(r'\A[\w][-\w.]*\Z')


def expiry(text, now):
    """When an app password made at `now` expires (seconds since the
    epoch), from the days a user typed; None for empty (never).
    ValueError for anything but a number of days above 0 up to
    MAX_DAYS."""
    text = (text or '').strip()
    if not text:
        return None
    days = float(text)
    if not 0 < days <= MAX_DAYS:        # also NaN and infinity
        raise ValueError(text)
    return now + days * 86400


def server_root(req):
    """scheme://host[:port] of the request, as Trac builds its absolute
    URLs (``[trac] base_url`` when set): the repositories are served at
    the root of the same server."""
    parts = urlsplit(req.abs_href())
    return '%s://%s' % (parts.scheme, parts.netloc)


def _when(seconds):
    return datetime.fromtimestamp(seconds, utc) if seconds else None


def _rows(tokens, now):
    """The listing's rows for the templates."""
    return [dict(token, scope_label=SCOPE_LABELS.get(token['scope'],
                                                     token['scope']),
                 created_at=_when(token['created']),
                 last_used_at=_when(token['last_used']),
                 expires_at=_when(token['expires']),
                 expired=bool(token['expires'] and token['expires'] <= now))
            for token in tokens]


class AppPasswordPanels(Component):
    """The preference panel and the admin panel of app passwords."""

    implements(IAdminPanelProvider, IPreferencePanelProvider,
               ITemplateProvider)

    # ITemplateProvider

    def get_htdocs_dirs(self):
        return []

    def get_templates_dirs(self):
        return [TEMPLATES]

    # IPreferencePanelProvider

    def get_preference_panels(self, req):
        if req.is_authenticated:
            yield PANEL, 'App passwords'

    def render_preference_panel(self, req, panel):
        user = req.authname
        model = AppPasswords(self.env)
        created = None
        if req.method == 'POST':
            if 'revoke' in req.args:
                token_id = req.args.get('revoke', '')
                if model.revoke(token_id, user):
                    add_notice(req, 'The app password was revoked: '
                                    'it no longer works.')
                else:
                    add_warning(req, 'You have no such app password.')
            elif 'create' in req.args:
                created = self._create(req, model, user)
        # a page showing a secret must not stay in any cache
        req.send_header('Cache-Control', 'no-store')
        now = time.time()
        return 'wsgiauth_prefs_apppasswords.html', {
            'tokens': _rows(model.listing(user), now),
            'created': created,
            'scopes': [(scope, SCOPE_LABELS[scope]) for scope in SCOPES],
            'nonce': hex_entropy(16),
            'clients': self._clients(req, user),
            'max_days': MAX_DAYS,
            'form': {key: req.args.get(key, '') for key in
                     ('label', 'scope', 'days')} if req.method == 'POST'
            and not created else {},
        }

    def _create(self, req, model, user):
        """Create the app password the form asks for; what the page shows
        once, or None (nothing created, a warning says why)."""
        nonce = req.args.get('nonce', '')
        if not re.match(r'\A[0-9a-f]{16,64}\Z', nonce):
            nonce = ''
        if nonce and NONCE in req.incookie and \
                req.incookie[NONCE].value == nonce:
            add_notice(req, 'This form was already sent: its app password '
                            'was shown once and is in the list below. '
                            'Create a new one if you did not copy it.')
            return None
        scope = req.args.get('scope', '')
        if scope not in SCOPES:
            add_warning(req, 'Choose a scope: read, or read and commit.')
            return None
        now = time.time()
        try:
            expires = expiry(req.args.get('days'), now)
        except ValueError:
            add_warning(req, 'Expires after: a number of days above 0 and '
                             'up to %d, or empty for never.' % MAX_DAYS)
            return None
        token_id, password = model.create(user, req.args.get('label', ''),
                                          scope, expires)
        if nonce:
            req.outcookie[NONCE] = nonce
            req.outcookie[NONCE]['path'] = req.href.prefs()
            req.outcookie[NONCE]['httponly'] = True
            if self.env.secure_cookies:
                req.outcookie[NONCE]['secure'] = True
        self.log.info('App password %s (%s) created by %s', token_id,
                      scope, user)
        token = next((t for t in model.listing(user) if t['id'] == token_id),
                     None)
        return dict(id=token_id, password=password, scope=scope,
                    scope_label=SCOPE_LABELS[scope],
                    label=token['label'] if token else '',
                    expires_at=_when(expires))

    def _clients(self, req, user):
        """The svn and git command lines for the repositories `user` may
        read: dicts of name, kind, url, command, commit (whether the user
        may commit there)."""
        root = server_root(req)
        urls = prefixes(self.config)
        found = []
        for repo in RepositoryPolicy(self.env).served():
            name = url_name(repo.name)
            if not _SERVABLE.match(name):
                continue
            perm = req.perm(Resource('repository', repo.name)
                            .child('source', '/'))
            if not ('BROWSER_VIEW' in perm and 'FILE_VIEW' in perm):
                continue
            try:
                commit = 'REPOSITORY_COMMIT' in perm
            except Exception:
                commit = False
            url = root + urls[repo.kind].rstrip('/') + '/' + name
            if repo.kind == 'svn':
                command = 'svn checkout %s --username %s' % (
                    shlex.quote(url), shlex.quote(user))
            else:
                command = 'git clone %s' % shlex.quote(url)
            found.append(dict(name=name, kind=repo.kind, url=url,
                              command=command, commit=commit))
        return {'repositories': found, 'user': user,
                'svn_example': 'svn checkout %s --username %s' % (
                    shlex.quote(root + urls['svn'].rstrip('/') + '/NAME'),
                    shlex.quote(user)),
                'git_example': 'git clone %s' % shlex.quote(
                    root + urls['git'].rstrip('/') + '/NAME')}

    # IAdminPanelProvider

    def get_admin_panels(self, req):
        if 'TRAC_ADMIN' in req.perm('admin', 'accounts/' + PANEL):
            yield 'accounts', 'Accounts', PANEL, 'App passwords'

    def render_admin_panel(self, req, category, page, path_info):
        req.perm('admin', 'accounts/' + PANEL).require('TRAC_ADMIN')
        model = AppPasswords(self.env)
        if req.method == 'POST' and 'revoke' in req.args:
            token_id = req.args.get('revoke', '')
            owner = next((t['username'] for t in model.listing()
                          if t['id'] == token_id), None)
            if model.revoke(token_id):
                self.log.info('App password %s of %s revoked by %s',
                              token_id, owner, req.authname)
                add_notice(req, 'The app password %s of %s was revoked.'
                           % (token_id, owner))
            else:
                add_warning(req, 'There is no app password %s.' % token_id)
        user = req.args.get('user', '').strip()
        return 'wsgiauth_admin_apppasswords.html', {
            'tokens': _rows(model.listing(user or None), time.time()),
            'user': user,
        }
