"""Other Python applications in sub-interpreters of the same Apache.

Apache often hosts several WSGI applications, each in its own
sub-interpreter. Here, in one Apache with several child processes, the
neighbours are loaded FIRST in every child: a two-line check_password in
application-group=neighbour and a WSGI application in its own group that
imports bcrypt (a PyO3 extension, which can live in one interpreter of a
process only). Then our auth script answers concurrent logins from
%{GLOBAL} and from a sub-interpreter of its own: every answer must be the
right 200 or 401 -- never a 500 -- and the error log must show no
ImportError or traceback.
"""

import os
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.harness import (Apache, auth_location, auth_script, basic_get,
                           hammer, make_env, mpm, open_up, public_dir,
                           trac_env, write_file)
from tests.users import USERS, populate

pytestmark = pytest.mark.apache

NEIGHBOUR_AUTH = '''def check_password(environ, user, password):
    return password == 'neighbour-pw'
'''

NEIGHBOUR_APP = '''try:
    import bcrypt
    LOADED = b'bcrypt ' + bcrypt.__version__.encode('ascii')
except ImportError as e:
    LOADED = b'no bcrypt'


def application(environ, start_response):
    start_response('200 OK', [('Content-Type', 'text/plain')])
    return [LOADED]
'''

#: several children (each its own Python), a few threads each, none
#: stopped or started while the test runs
CHILDREN = mpm(3, 8, min_spare=24, steady=True)

#: users whose right password is cheap to check after the first time
#: (bcrypt and the SHA-crypts are cached per process once verified)
RIGHT = [(name, password) for name, (password, _) in USERS.items()
         if name not in ('carol', 'eve', 'frank')]


@pytest.fixture(scope='module', params=['plain', 'pyo3'])
def apache(request):
    parent = public_dir()
    env_path = make_env(parent)
    with trac_env(env_path) as env:
        populate(env)
    ours = auth_script(os.path.join(parent, 'auth.wsgi'), env_path)
    auth = write_file(os.path.join(parent, 'neighbour-auth.wsgi'),
                      NEIGHBOUR_AUTH)
    app = write_file(os.path.join(parent, 'neighbour-app.wsgi'),
                     NEIGHBOUR_APP)
    write_file(os.path.join(parent, 'index.html'), 'ok')
    open_up(parent)
    aliases = ''.join('Alias /%s "%s"\n' % (url, parent)
                      for url in ('global', 'sub', 'neighbour'))
    neighbours = auth_location('/neighbour', auth, realm='neighbour',
                               app_group='neighbour')
    if request.param == 'pyo3':   # and not only the two-line check_password
        neighbours = ('WSGIScriptAlias /pyo3 "%s" application-group=pyo3app\n'
                      % app) + neighbours
    body = (CHILDREN + aliases + neighbours
            + auth_location('/global', ours)
            + auth_location('/sub', ours, app_group='tracauth'))
    server = Apache(body).start()
    server.neighbours = request.param
    yield server
    server.stop()


def _neighbours_first(server, rounds=240):
    """Hit both neighbours from many connections at once, so that in
    every child and thread they are loaded before our script."""
    cases = [('/neighbour/index.html', 'x', 'neighbour-pw'),
             ('/neighbour/index.html', 'x', 'wrong')] * (rounds // 2)
    if server.neighbours == 'pyo3':
        cases += [('/pyo3/', None, None)] * (rounds // 2)
    with ThreadPoolExecutor(24) as pool:
        return list(pool.map(lambda c: basic_get(server.port, *c), cases))


def _login_cases(rounds):
    cases, expected = [], []
    for i in range(rounds):
        name, password = RIGHT[i % len(RIGHT)]
        where = ('/global/index.html', '/sub/index.html')[i % 2]
        wrong = i % 10 == 9     # a wrong password now and then
        cases.append((where, name, password + '!' * wrong))
        expected.append(401 if wrong and name != 'BOB' else 200)
        if i % 40 == 0:         # an unknown user costs a dummy bcrypt
            cases.append((where, 'nobody%d' % i, password))
            expected.append(401)
    return cases, expected


def test_logins_unharmed_by_neighbours_in_sub_interpreters(apache):
    first = _neighbours_first(apache)
    assert {status for status, _ in first} <= {200, 401}
    cases, expected = _login_cases(480)
    statuses = hammer(apache.port, cases, concurrency=24)
    wrong = [(case[0], case[1], got, want) for case, got, want
             in zip(cases, statuses, expected, strict=True)
             if got != want]
    log = apache.error_log()
    where = {url: sum(1 for w in wrong if w[0] == url)
             for url in ('/global/index.html', '/sub/index.html')}
    assert not wrong, '%d of %d wrong (%s), e.g. %s\n%s' % (
        len(wrong), len(cases), where, wrong[:3], log[-3000:])
    for word in ('ImportError', 'Traceback', 'PyO3', 'subinterpreters'):
        assert word not in log, log[-3000:]


@pytest.mark.parametrize('apache', ['pyo3'], indirect=True)
def test_pyo3_neighbour_keeps_its_bcrypt(apache):
    """We never import bcrypt in Apache, so a neighbour that does still
    can, in every child, also after our logins."""
    with ThreadPoolExecutor(24) as pool:
        answers = list(pool.map(lambda _: basic_get(apache.port, '/pyo3/'),
                                range(96)))
    assert {status for status, _ in answers} == {200}
    assert all(body.startswith(b'bcrypt ') for _, body in answers), answers
