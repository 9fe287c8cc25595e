"""The WSGI application of a deployed trac.wsgi: Trac, bound to one
environment, seeing the same canonical user names as the auth provider,
and no session of a user who may no longer log in."""

import threading
import time

from trac.core import Component, implements
from trac.env import open_environment
from trac.web.api import Cookie, IRequestFilter
from trac.web.main import dispatch_request

from . import policy
from .accounts import AuthStore
from .addresses import write_throttled
from .guard import address_limits, audit_path, guard_for
from .modwsgi import NotEnabled, provider_for
from .repoperm import RepositoryPolicy
from .repos import READ, WRITE
from .throttle import Throttle

#: Where a request keeps Trac's user name for the response headers.
AUTHNAME_KEY = 'tracwsgiauth.authname'

#: Trac's auth cookie (trac.web.auth.LoginModule)
AUTH_COOKIE = 'trac_auth'


def _forbidden(start_response, text):
    start_response('403 Forbidden', [('Content-Type', 'text/plain')])
    return [text.encode('utf-8')]


def _cookies(environ):
    """The request's cookies, parsed exactly as Trac parses them."""
    cookies = Cookie()
    header = environ.get('HTTP_COOKIE')
    if header:
        cookies.load(header, ignore_parse_errors=True)
    return cookies


def _store(env_path):
    """This environment's AuthStore, as Trac's dispatcher opens it."""
    _apply_pooling(provider_for(env_path))
    store = open_environment(env_path, use_cache=True)[AuthStore]
    if store is None:
        raise NotEnabled('tracwsgiauth is not enabled in [components] '
                         'of trac.ini')
    return store


def _screen_session(provider, environ, env_path):
    """End the Trac session of a user who may no longer log in, so that
    Trac serves the request anonymously (and expires the cookie); when
    that cannot be told, drop the cookie from this request."""
    cookies = _cookies(environ)
    morsel = cookies.get(AUTH_COOKIE)
    if morsel is None:
        return
    try:
        refused = provider.session_refusal(morsel.value)
        if refused:
            store = _store(env_path)
            store.end_sessions(refused[0], morsel.value)
            store.log.info('tracwsgiauth: ended the session of %r: %s',
                           *refused)
    except Exception as e:
        provider._fail(environ, 'session', e)
        environ['HTTP_COOKIE'] = '; '.join(
            '%s=%s' % (key, value.coded_value)
            for key, value in cookies.items()
            if key != AUTH_COOKIE and value is not None)


_answering = set()
_answering_lock = threading.Lock()


def _apply_pooling(provider):
    """``[wsgiauth] postgres_pooling = false`` turns Trac's PostgreSQL
    pool off in this process, before Trac opens the environment."""
    if not provider.pooled or \
            not provider.ini().getbool('wsgiauth', 'postgres_pooling', True):
        from trac.db.postgres_backend import PostgreSQLConnection
        PostgreSQLConnection.poolable = False


def answer_policy(env_path):
    """Answer, from this process, the questions Apache's child processes
    ask about the environment (see `policy`): a user's groups, and
    whether a user may read or write a repository (`repoperm`); once
    per process and environment."""
    with _answering_lock:
        if env_path in _answering:
            return
        _answering.add(env_path)

    def answer(question):
        op = question.get('op')
        if op == 'groups':
            return {'groups': _store(env_path).groups(str(question['user']))}
        if op == 'failures':
            return _count_failures(env_path, question['failures'])
        if op == 'repository':
            decision = _store(env_path).env[RepositoryPolicy].decide(
                str(question['user']), str(question['repository']),
                question['action'] if question['action'] == READ else WRITE)
            return decision._asdict()
        raise ValueError('unknown question %r' % op)
    policy.serve(env_path, answer)


_throttles = {}
_throttles_lock = threading.Lock()


def _count_failures(env_path, failures):
    """Count the failed logins per address an Apache child reports, for
    all of them (`guard.AddressReports`); which of those addresses are
    throttled, until when."""
    config = _store(env_path).env.config
    limits = address_limits(config)
    guard = guard_for(env_path)
    guard.audit_log = audit_path(env_path, config)
    now, throttled = time.time(), {}
    with _throttles_lock:
        throttle = _throttles.get(env_path)
        if throttle is None or throttle.limits() != limits:
            throttle = _throttles[env_path] = Throttle(*limits)
        newly = False
        for address, count in list(failures.items())[:10000]:
            address = str(address)[:100]
            until = throttle.failed(address, now, max(1, min(int(count),
                                                             10000)))
            if until:
                newly = True
                guard.report('throttled', address, {
                    'until': until, 'limits': limits,
                    'where': "all of Apache's processes"})
            until = throttle.until(address, now)
            if until:
                throttled[address] = until
        if newly:
            write_throttled(env_path, throttle.active(now))
    return {'throttled': throttled}


def _rename_user(provider, environ):
    """Rewrite REMOTE_USER with the name rule; False to refuse it."""
    try:
        name = provider.trac_name(environ['REMOTE_USER'])
    except Exception:
        # fail closed; Trac's own dispatcher reports the error
        del environ['REMOTE_USER']
        return True
    if name is None:
        return False
    environ['REMOTE_USER'] = name
    return True


def serving(env_path, reflect_user=False, pooled=True):
    """A WSGI application serving the Trac environment at `env_path`.

    * ``environ['trac.env_path']`` is set for every request, so several
      scripts in one process never serve each other's environment;
    * ``REMOTE_USER``, whoever authenticated it, is rewritten with the
      user-name rule of the auth provider (``CORP\\\\alice`` -> ``alice``);
      a name the rule refuses gets 403;
    * a Trac session (auth cookie) of a user who may no longer log in
      -- password removed, locked, not approved -- ends at the next
      request, which Trac then serves anonymously;
    * with `reflect_user`, responses to requests Trac considers logged in
      carry ``X-Remote-User``/``X-Auth-Type`` headers for Apache's access
      log (the Apache configuration must strip them, see contrib/).
    """
    provider = provider_for(env_path, pooled)
    answer_policy(env_path)
    try:
        _apply_pooling(provider)
    except Exception:
        pass    # trac.ini unreadable now: Trac's dispatcher says so

    def application(environ, start_response):
        environ.pop('trac.env_parent_dir', None)
        environ['trac.env_path'] = env_path
        if environ.get('REMOTE_USER'):
            if not _rename_user(provider, environ):
                return _forbidden(start_response,
                                  'This user may not log in to Trac.\n')
        else:
            _screen_session(provider, environ, env_path)
        if reflect_user:
            start_response = _reflecting(environ, start_response)
        return dispatch_request(environ, start_response)
    return application


def _reflecting(environ, start_response):
    """`start_response` adding ``X-Remote-User``/``X-Auth-Type`` to the
    responses of requests Trac considers logged in."""
    def reflecting_start_response(status, headers, exc_info=None):
        authname = environ.get(AUTHNAME_KEY)
        if authname and authname != 'anonymous':
            headers = list(headers) + [
                ('X-Remote-User', authname.encode('utf-8').decode('latin-1')),
                ('X-Auth-Type', environ.get('AUTH_TYPE') or 'Trac')]
        return start_response(status, headers, exc_info)
    return reflecting_start_response


class _AuthnameRecorder(Component):
    """Tell `serving` which user Trac considers logged in (for the
    optional ``X-Remote-User`` response header)."""

    implements(IRequestFilter)

    def pre_process_request(self, req, handler):
        req.environ[AUTHNAME_KEY] = req.authname
        return handler

    def post_process_request(self, req, template, data, metadata):
        return template, data, metadata
