"""mod_wsgi authentication provider bound to one Trac environment.

In the script named by ``WSGIAuthUserScript``/``WSGIAuthGroupScript``::

    from tracwsgiauth.modwsgi import for_environment
    check_password, get_realm_hash, groups_for_user, allow_access = \\
        for_environment('/srv/trac/proj')

These run in Apache's child processes, on every request, and import no
Trac module: trac.ini (and the files it inherits) is read with
`tracini`, the account and permission tables with plain `sqlite3` or
`psycopg2` connections (`tables`), and the decision is `login.Login`.
What needs Trac's policy engine -- the groups plugin providers give --
is asked of the process where the Trac application runs (`policy`); the
same script, preloaded there, answers.

Every cache on the login path, and what makes it go stale:

* the loaded rules (`_Provider._current`): trac.ini and the files it
  inherits, stamped by modification time; any change reloads them (and
  a reader of a database trac.ini no longer names is closed);
* rows an SQLite reader read (`sqlite.SQLiteReader`): any commit
  to the database by anyone (the header's change counter, or ``PRAGMA
  data_version`` in WAL mode), or the file replaced or removed;
  PostgreSQL rows are never reused;
* accepted logins (`outcomes.Outcomes`): keyed by a MAC of the
  credential as the client sent it, while the SQLite header reads the
  same (never on PostgreSQL or in WAL mode), for at most as long as the
  verified credential below or its app password;
* what check_password read for a login it accepted (`Checked`): used by
  the group check Apache runs next for the same request, on the same
  thread (same client address and port, method and URI, user), once;
* verified credentials (`login.VerifiedCache`): keyed by a MAC of
  (environment, user, stored hash, password), so a new password misses;
  they expire after ``cache_ttl``; the account state is taken as the
  database is at every check;
* the typical stored hash unknown users are made to cost
  (`login.TypicalHash`): looked at again every 300 s;
* group answers and repository decisions (`policy.Remembered`, see
  `repoauth`): while the permission table reads the same (and the authz
  files keep their modification time), for at most 60 s;
* Trac's environment cache: only in the process that runs Trac (pages,
  group answers), never in Apache's children.

mod_wsgi hands user names and passwords over Latin-1-decoded; they are
read back as UTF-8 where they are UTF-8.  A change to trac.ini (seen by
the files' modification times, one stat each), passwords, locks or
permissions counts on the very next request.  When the environment
cannot be read, the provider fails closed -- the login is refused (401)
-- and writes one line to Apache's error log, never the password.
"""

import functools
import sys
import threading
from collections import namedtuple

from . import apptokens, policy, tables
from .login import Refused
from .names import from_wire, to_wire
from .rules import NotEnabled, load, rules_for  # noqa: F401 (re-exported)
from .throttle import client_address

EntryPoints = namedtuple('EntryPoints', 'check_password get_realm_hash '
                         'groups_for_user allow_access')

#: What check_password read for the login it accepted: the group check
#: Apache runs next, on the same thread for the same request, decides
#: with it instead of reading the account again. `request`: the
#: `request_id` and the user name as mod_wsgi passes it on; `rows`: the
#: permission table, or None when it was not read along; `scope`: of the
#: app password (see `_Provider._credential`); `refusal`: why the
#: account may be in no group, or None (`login.Login.group_refusal`).
Checked = namedtuple('Checked',
                     'request name loaded attrs rows scope refusal')

#: A login check_password accepted: the canonical user name, and as
#: mod_wsgi passes it on (`wire`); what was read for it (see `Checked`).
#: Remembered while the database reads the same (`outcomes`).
Accepted = namedtuple('Accepted', 'name wire attrs rows scope refusal')


_providers = {}


def provider_for(env_path, pooled=True):
    """The one provider of this process for the environment at
    `env_path`: the auth entry points and the served application (see
    `serve`) read the same rules from the same trac.ini snapshot.
    `pooled=False` (deploy --no-pooling) turns PostgreSQL connection
    reuse off in this process, whatever trac.ini says."""
    provider = _providers.get(env_path)
    if provider is None:
        provider = _providers.setdefault(env_path, _Provider(env_path))
    if not pooled:
        provider.pooled = False
    return provider


def for_environment(env_path, pooled=True):
    """The four mod_wsgi auth entry points for the environment at
    `env_path`. In a mod_wsgi daemon process (the script preloaded with
    ``WSGIImportScript``), also answer the group questions of Apache's
    child processes."""
    provider = provider_for(env_path, pooled)
    if in_daemon_process():
        from .serve import answer_policy
        answer_policy(env_path)
    return EntryPoints(provider.check_password, provider.get_realm_hash,
                       provider.groups_for_user, provider.allow_access)


def application_for(env_path, reflect_user=False, pooled=True):
    """The WSGI application serving the environment (see
    `serve.serving`), imported when it first serves a request: the
    same script runs as auth script in Apache's children, which must not
    import Trac."""
    served = []

    def application(environ, start_response):
        if not served:
            from .serve import serving
            served.append(serving(env_path, reflect_user, pooled))
        return served[0](environ, start_response)
    return application


@functools.lru_cache(maxsize=64)
def _kinds(ini, repository=False):
    """The passwords a location takes: one of repositories.wsgi, or of
    trac.wsgi; read once per version of trac.ini (`ini`)."""
    if repository:
        return tuple(ini.getlist('wsgiauth', 'repository_passwords',
                                 ['account', 'app']))
    if ini.getbool('wsgiauth', 'app_passwords_everywhere', False):
        return ('account', 'app')
    return ('account',)


def request_id(environ):
    """What tells a request from the one before on the same thread."""
    get = environ.get
    return (get('REMOTE_ADDR'), get('REMOTE_PORT'), get('REQUEST_METHOD'),
            get('REQUEST_URI'))


def in_daemon_process():
    """Whether this runs in a mod_wsgi daemon process."""
    wsgi = sys.modules.get('mod_wsgi')
    return bool(getattr(wsgi, 'process_group', ''))


def _one_line(text, limit=300):
    return ' '.join(str(text).split())[:limit]


def _describe(error):
    return '%s: %s' % (type(error).__name__, _one_line(error))


class _Provider(object):

    pooled = True

    def __init__(self, env_path):
        self.env_path = env_path
        self._loaded = None
        self._lock = threading.Lock()
        # per thread: the `Checked` of the last login check_password
        # accepted, which Apache runs before the group check
        self._checked = threading.local()

    def _current(self):
        """What a login needs, read again when a trac.ini file changed.
        The files are stamped before they are read, so a change made
        while they are read is seen on the next call."""
        loaded = self._loaded
        if loaded is not None and not loaded.ini.changed():
            return loaded
        with self._lock:
            loaded = self._loaded
            if loaded is None or loaded.ini.changed():
                self._loaded = loaded = load(self.env_path, self.pooled)
                for problem in loaded.hosts.problems:
                    sys.stderr.write('tracwsgiauth: %s: %s\n'
                                     % (self.env_path, problem))
        return loaded

    def _fail(self, environ, what, error):
        message = 'tracwsgiauth: %s refused for environment %s: %s' % (
            what, self.env_path, _describe(error))
        cause = error.__cause__
        if cause is not None:   # a wrapped database error
            message += ' (caused by %s)' % _describe(cause)
        stream = environ.get('wsgi.errors') or sys.stderr
        stream.write(message + '\n')
        stream.flush()

    def login(self):
        """The login rules as trac.ini is now (`login.Login`): what
        check_password decides with, for trac-admin too."""
        return self._current().login

    def reader(self):
        """The reader of the environment's database logins use."""
        return self._current().reader

    def ini(self):
        """The environment's trac.ini as it is now (`tracini.TracIni`)."""
        return self._current().ini

    def trac_name(self, user):
        """The Trac user name for a REMOTE_USER that any Apache module
        set, by the rule `check_password` applies; None to refuse it,
        also when the account is locked or not approved (another module,
        SSPI or Kerberos, may have authenticated it)."""
        login = self._current().login
        name = login.canonical(from_wire(user))
        if name is None or login.refusal(name):
            return None
        return name

    def session_refusal(self, cookie):
        """(user, why) when the Trac session of an auth cookie must end
        because its user may no longer log in, else None."""
        loaded = self._current()
        name = tables.session_user(loaded.reader, cookie)
        why = loaded.login.refusal(name) if name else None
        return (name, why) if why else None

    def check_password(self, environ, user, password, repository=False):
        """None: no such user; False: refused; True or the canonical
        user name (which then becomes REMOTE_USER): accepted. A refusal
        counts against the client's address (`guard`). Which passwords
        the location takes (account, app): ``[wsgiauth]
        repository_passwords`` for a `repository` location, else the
        account password, and app passwords where
        ``app_passwords_everywhere`` says so."""
        self._checked.last = None
        try:
            loaded = self._current()
            address = client_address(environ.get('REMOTE_ADDR'))
            if loaded.guard.refused(address):
                loaded.guard.failure(environ, from_wire(user), None,
                                     address, 'address throttled')
                return False
            key = loaded.outcomes.key(user, password, repository)
            version = loaded.reader.version()   # before anything is read
            accepted = loaded.outcomes.get(key, version)
            if accepted is None:
                accepted, token = self._login(environ, loaded, user,
                                              password, address, repository)
                if not accepted:
                    return accepted
                if loaded.reader.version() == version:  # none committed
                    loaded.outcomes.put(key, version, accepted,  # meanwhile
                                        from_wire(password), accepted.attrs,
                                        token)
        except Exception as e:
            self._fail(environ, 'login', e)
            return False
        self._checked.last = Checked(
            request_id(environ) + (accepted.wire,), accepted.name, loaded,
            accepted.attrs, accepted.rows, accepted.scope, accepted.refusal)
        return True if accepted.wire == user else accepted.name

    def _login(self, environ, loaded, user, password, address, repository):
        """(`Accepted`, the app password's row or None) when the login is
        right, else (None: no such user, or False: refused; None), then
        counted against the client's address (`guard`)."""
        guard, sent = loaded.guard, from_wire(user)
        name = loaded.login.canonical(sent)
        if name is None:
            guard.failure(environ, sent, None, address, 'not a user name')
            return None, None
        try:
            found, attrs, rows, token = self._credential(
                loaded, name, from_wire(password), address,
                _kinds(loaded.ini, repository),
                repository or loaded.reader.remembers)
        except Refused as e:
            guard.failure(environ, sent, name, address, str(e))
            return False, None
        if not found:
            guard.failure(environ, sent, name, address,
                          'wrong password' if found is False
                          else 'unknown user')
            return found, None
        # mod_wsgi encodes a returned name as UTF-8 itself (unlike group
        # names, which it encodes as Latin-1: see `groups_for_user`), and
        # passes the group check that
        scope = found if token is not None else None
        return Accepted(name, to_wire(name), attrs, rows, scope,
                        loaded.login.group_refusal(name, attrs)), token

    def _credential(self, loaded, name, password, address, kinds,
                    permissions):
        """(what `login.Login` answers for the password -- for an app
        password its scope --, the account, the permission rows or None,
        the app password's row or None): an app password by its form,
        where the location takes them, else the account password. The
        account, the app password's row and, with `permissions`, the
        permission table are read together (one look at the database)."""
        parsed = apptokens.parse(password) if 'app' in kinds else None
        attrs, token, rows = tables.for_login(
            loaded.reader, name, parsed[0] if parsed else None, permissions)
        if token is not None:
            scope = loaded.login.authenticate_app(name, password, token,
                                                  address, attrs)
            if scope:
                loaded.guard.touch(loaded.reader, parsed[0], token, address)
            return scope or False, attrs, rows, token
        if 'account' not in kinds:
            return False, attrs, rows, None
        return loaded.login.authenticate(name, password, address,
                                         attrs), attrs, rows, None

    def accepted(self, environ, user):
        """The `Checked` of this request's login, when check_password
        accepted `user` (as mod_wsgi passes it to the group check) on
        this thread for this request, else None. What it read is used
        once: a second group check of the request (two ``Require``
        lines) gets it without the account and the permission rows,
        which it reads again, and with the app password's scope."""
        checked = getattr(self._checked, 'last', None)
        if checked is None or checked.request != request_id(environ) + (
                user,):
            self._checked.last = None
            return None
        self._checked.last = Checked(checked.request, checked.name,
                                     checked.loaded, None, None,
                                     checked.scope, None)
        return checked

    def get_realm_hash(self, environ, user, realm):
        """The htdigest hash of `user` for `realm`, or None: a refusal
        (counted, audited and delayed as check_password's are; a wrong
        Digest password Apache compares itself, unseen here)."""
        try:
            loaded = self._current()
            login, guard = loaded.login, loaded.guard
            name = login.canonical(from_wire(user))
            address = client_address(environ.get('REMOTE_ADDR'))
            why = 'not a user name' if name is None else \
                'address throttled' if guard.refused(address) else \
                login.refusal(name)
            found = None if why else login.realm_hash(name,
                                                      from_wire(realm))
            if found is None:       # Apache cannot tell it from wrong
                guard.failure(environ, from_wire(user), name, address,
                              why or 'no password for this realm')
            return found
        except Exception as e:
            self._fail(environ, 'login', e)
            return None

    def member(self, environ, user):
        """(`Checked`, with the permission rows) of `user` (as mod_wsgi
        passes it) when the account may be in groups (see
        `login.Login.group_refusal`), else None: what this request's
        check_password read, or the account and the permission table
        read together now."""
        checked = self.accepted(environ, user)
        if checked is None or checked.attrs is None:
            loaded = checked.loaded if checked else self._current()
            name = loaded.login.canonical(from_wire(user))
            if name is None:
                return None
            attrs, _, rows = tables.for_login(loaded.reader, name,
                                              permissions=True)
            checked = Checked(None, name, loaded, attrs, rows,
                              checked.scope if checked else None,
                              loaded.login.group_refusal(name, attrs))
        elif checked.rows is None:
            checked = checked._replace(
                rows=tables.permissions(checked.loaded.reader))
        return None if checked.refusal else checked

    def groups_for_user(self, environ, user):
        """The Trac permission groups of `user` (an empty list denies),
        as the Trac application's process answers them; remembered while
        the permission table is unchanged (see `policy.Remembered`)."""
        try:
            member = self.member(environ, user)
            if member is None:
                return []
            name, loaded, rows = member.name, member.loaded, member.rows
            groups = loaded.answers.get(name, rows)
            if groups is None:
                groups = [to_wire(group) for group in policy.ask(
                    self.env_path, loaded.timeout, op='groups',
                    user=name)['groups']]
                loaded.answers.put(name, rows, groups)
            return groups
        except Exception as e:
            self._fail(environ, 'group check', e)
            return []

    def allow_access(self, environ, host):
        """Whether the client's address may reach the location."""
        try:
            return self._current().hosts.allowed(environ.get('REMOTE_ADDR'))
        except Exception as e:
            self._fail(environ, 'host check', e)
            return False
