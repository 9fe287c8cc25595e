"""The WSGI application of a deployed trac.wsgi: Trac, bound to one
environment, seeing the same canonical user names as the auth provider."""

from trac.core import Component, implements
from trac.env import open_environment
from trac.web.api import IRequestFilter
from trac.web.main import dispatch_request

from .accounts import AuthStore
from .names import from_wire

#: Where a request keeps Trac's user name for the response headers.
AUTHNAME_KEY = 'tracwsgiauth.authname'


def _forbidden(start_response, text):
    start_response('403 Forbidden', [('Content-Type', 'text/plain')])
    return [text.encode('utf-8')]


def serving(env_path, reflect_user=False):
    """A WSGI application serving the Trac environment at `env_path`.

    * ``environ['trac.env_path']`` is set for every request, so several
      scripts in one process never serve each other's environment;
    * ``REMOTE_USER``, whoever authenticated it, is rewritten with the
      user-name rule of the auth provider (``CORP\\alice`` -> ``alice``);
      a name the rule refuses gets 403;
    * with `reflect_user`, responses to requests Trac considers logged in
      carry ``X-Remote-User``/``X-Auth-Type`` headers for Apache's access
      log (the Apache configuration must strip them, see contrib/).
    """
    def application(environ, start_response):
        environ.pop('trac.env_parent_dir', None)
        environ['trac.env_path'] = env_path
        user = environ.get('REMOTE_USER')
        if user:
            try:
                env = open_environment(env_path, use_cache=True)
                name = env[AuthStore].canonical(from_wire(user))
            except Exception:
                # fail closed; Trac's own dispatcher reports the error
                name = None
                del environ['REMOTE_USER']
            else:
                if name is None:
                    return _forbidden(start_response,
                                      'This user name is not accepted.\n')
                environ['REMOTE_USER'] = name
        if not reflect_user:
            return dispatch_request(environ, start_response)

        def reflecting_start_response(status, headers, exc_info=None):
            authname = environ.get(AUTHNAME_KEY)
            if authname and authname != 'anonymous':
                headers = list(headers) + [
                    ('X-Remote-User', authname.encode('utf-8')
                                              .decode('latin-1')),
                    ('X-Auth-Type', environ.get('AUTH_TYPE') or 'Trac')]
            return start_response(status, headers, exc_info)
        return dispatch_request(environ, reflecting_start_response)
    return application


class _AuthnameRecorder(Component):
    """Tell `serving` which user Trac considers logged in (for the
    optional ``X-Remote-User`` response header)."""

    implements(IRequestFilter)

    def pre_process_request(self, req, handler):
        req.environ[AUTHNAME_KEY] = req.authname
        return handler

    def post_process_request(self, req, template, data, metadata):
        return template, data, metadata
