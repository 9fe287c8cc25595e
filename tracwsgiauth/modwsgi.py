"""mod_wsgi authentication provider bound to one Trac environment.

In the script named by ``WSGIAuthUserScript``/``WSGIAuthGroupScript``::

    from tracwsgiauth.modwsgi import for_environment
    check_password, get_realm_hash, groups_for_user, allow_access = \\
        for_environment('/srv/trac/proj')

mod_wsgi hands user names and passwords over Latin-1-decoded; they are
read back as UTF-8 where they are UTF-8.  Changes to trac.ini (and the
files it inherits), passwords, locks and permissions made by other
processes count on the very next request: a login looks at the files'
modification times (one stat each) and reopens the environment through
Trac only when one changed; group checks open it the way Trac's own
request dispatcher does, every time.  When the environment cannot be read, the
provider fails closed -- the login is refused (401) -- and writes one
line to Apache's error log, never the password.
"""

import os
from collections import namedtuple

from trac.env import open_environment

from .accounts import AuthStore, Refused
from .names import from_wire, to_wire

EntryPoints = namedtuple('EntryPoints', 'check_password get_realm_hash '
                         'groups_for_user allow_access')


class NotEnabled(Exception):
    """The environment does not enable tracwsgiauth."""


_providers = {}


def provider_for(env_path):
    """The one provider of this process for the environment at
    `env_path`: the auth entry points and the served application (see
    `serve`) read the same rules from the same trac.ini snapshot."""
    provider = _providers.get(env_path)
    if provider is None:
        provider = _providers.setdefault(env_path, _Provider(env_path))
    return provider


def for_environment(env_path):
    """The four mod_wsgi auth entry points for the environment at
    `env_path`."""
    provider = provider_for(env_path)
    return EntryPoints(provider.check_password, provider.get_realm_hash,
                       provider.groups_for_user, provider.allow_access)


def _one_line(text, limit=300):
    return ' '.join(str(text).split())[:limit]


def _describe(error):
    return '%s: %s' % (type(error).__name__, _one_line(error))


def _config_files(config):
    """trac.ini and the files it inherits, nearest first."""
    files = [config.filename]
    for parent in config.parents:
        files.extend(_config_files(parent))
    return files


def _stamp(files):
    """The files' modification times; None for one that is missing (Trac
    then keeps what it read)."""
    stamp = []
    for name in files:
        try:
            stamp.append(os.stat(name).st_mtime_ns)
        except OSError:
            stamp.append(None)
    return stamp


#: What a login needs of one loaded environment.
_Loaded = namedtuple('_Loaded', 'files stamp store rules')


class _Provider(object):

    def __init__(self, env_path):
        self.env_path = env_path
        self._loaded = None

    def _store(self):
        env = open_environment(self.env_path, use_cache=True)
        store = env[AuthStore]
        if store is None:
            raise NotEnabled('tracwsgiauth is not enabled in [components] '
                              'of trac.ini')
        return store

    def _current(self):
        """The store and login rules of the environment as its trac.ini
        files are now. The files are stamped before Trac reads them, so a
        change made while it reads is seen on the next call."""
        loaded = self._loaded
        if loaded is not None and _stamp(loaded.files) == loaded.stamp:
            return loaded
        files = _config_files(self._store().config)
        while True:
            stamp = _stamp(files)
            store = self._store()
            now = _config_files(store.config)
            if now == files:
                break
            files = now     # [inherit] changed under us: stamp again
        self._loaded = loaded = _Loaded(files, stamp, store, store.rules())
        return loaded

    def _fail(self, environ, what, error):
        message = 'tracwsgiauth: %s refused for environment %s: %s' % (
            what, self.env_path, _describe(error))
        cause = error.__cause__
        if cause is not None:   # Trac wraps a refused connection this way
            message += ' (caused by %s)' % _describe(cause)
        stream = environ.get('wsgi.errors')
        if stream is not None:
            stream.write(message + '\n')
            stream.flush()

    def trac_name(self, user):
        """The Trac user name for a REMOTE_USER that any Apache module
        set, by the rule `check_password` applies; None to refuse it."""
        return self._current().rules.canonical(from_wire(user))

    def end_refused_session(self, environ, cookie):
        """End the Trac session of an auth cookie whose user may no longer
        log in (removed, locked, not approved); whether it ended."""
        loaded = self._current()
        name = loaded.store.session_user(cookie)
        if name is None:
            return False
        why = loaded.rules.session_refusal(name)
        if why is None:
            return False
        loaded.store.end_sessions(name, cookie)
        loaded.store.log.info('tracwsgiauth: ended the session of %r: %s',
                              name, why)
        return True

    def check_password(self, environ, user, password):
        """None: no such user; False: refused; True or the canonical
        user name (which then becomes REMOTE_USER): accepted."""
        try:
            loaded = self._current()
            name = loaded.rules.canonical(from_wire(user))
            if name is None:
                return None
            try:
                found = loaded.rules.authenticate(name, from_wire(password))
            except Refused as e:
                loaded.store.log.info('tracwsgiauth: refused %r: %s', name,
                                      e)
                return False
        except Exception as e:
            self._fail(environ, 'login', e)
            return False
        if not found:
            return found
        # mod_wsgi encodes a returned name as UTF-8 itself (unlike group
        # names, which it encodes as Latin-1: see `groups_for_user`)
        return True if to_wire(name) == user else name

    def get_realm_hash(self, environ, user, realm):
        """The htdigest hash of `user` for `realm`, or None."""
        try:
            rules = self._current().rules
            name = rules.canonical(from_wire(user))
            if name is None:
                return None
            return rules.realm_hash(name, from_wire(realm))
        except Exception as e:
            self._fail(environ, 'login', e)
            return None

    def groups_for_user(self, environ, user):
        """The Trac permission groups of `user` (an empty list denies)."""
        try:
            store = self._store()
            name = store.canonical(from_wire(user))
            if name is None:
                return []
            return [to_wire(group) for group in store.groups(name)]
        except Exception as e:
            self._fail(environ, 'group check', e)
            return []

    def allow_access(self, environ, host):
        """Whether the client's address may reach the location."""
        try:
            return self._store().host_allowed(environ.get('REMOTE_ADDR'))
        except Exception as e:
            self._fail(environ, 'host check', e)
            return False
