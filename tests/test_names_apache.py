"""The name a user logs in with, as the application, the group check and
Apache's access log see it, through a real Apache: for every form the
name rule accepts, UTF-8 and Latin-1 clients, domains, realms and case
folding, with ASCII and non-ASCII names."""

import os
import time

import pytest

from tests.harness import (Apache, auth_location, auth_script, deploy,
                           edit_ini, include, make_env, open_up, public_dir,
                           secret, trac_env)
from tests.trac_pages import get, trac_login, trac_shows
from tracwsgiauth import hashes

pytestmark = pytest.mark.apache

APPLICATION = '''def application(environ, start_response):
    start_response('200 OK', [('Content-Type', 'text/plain; charset=utf-8')])
    # REMOTE_USER arrives as the Latin-1 decoding of Apache's bytes
    return [environ['REMOTE_USER'].encode('latin-1')]
'''


def locations(env, script):
    """One location per (environment, check): the user alone, and the
    user in a Trac group with a non-ASCII name."""
    return ('WSGIScriptAlias /%s/app "%s" application-group=%%{GLOBAL}\n'
            % (env, script) + auth_location('/%s/app/user' % env, script)
            + auth_location('/%s/app/group' % env, script, 'prüfer'))

USERS = {'jürgen': 'pässword', 'alice': 'secret', 'zoë.o@x': 'zoë-pw'}


def _populate(env_path, ini):
    with trac_env(env_path) as env:
        for section, option, value in ini:
            env.config.set(section, option, value)
        env.config.save()
        with env.db_transaction as db:
            for name, password in USERS.items():
                db("INSERT INTO session VALUES (%s, 1, 0)", (name,))
                db("INSERT INTO session_attribute "
                   "VALUES (%s, 1, 'password', %s)",
                   (name, hashes.make('sha256', name, secret(password))))
                db("INSERT INTO permission VALUES (%s, 'prüfer')", (name,))
            # Trac shows 'zoë.o@x' whole only to those who may see e-mail
            db("INSERT INTO permission VALUES ('authenticated', "
               "'EMAIL_VIEW')")


@pytest.fixture(scope='module')
def apache():
    parent = public_dir()
    body, envs = [], {}
    for name, ini in [
            ('plain', []),
            ('strip', [('wsgiauth', 'strip_domains', 'CORP'),
                       ('wsgiauth', 'strip_realms', 'EXAMPLE.COM')]),
            ('fold', [('wsgiauth', 'strip_domains', 'CORP'),
                      ('trac', 'ignore_auth_case', 'true')])]:
        env_path = envs[name] = make_env(parent, name)
        _populate(env_path, ini)
        script = auth_script(os.path.join(parent, name + '.wsgi'), env_path,
                             application=APPLICATION)
        body.append(locations(name, script))
        # and Trac itself, deployed, at /trac-<name>
        body.append(include(deploy(env_path, '--url=/trac-' + name).target))
    open_up(parent)
    server = Apache('\n'.join(body)).start()
    server.envs = envs
    yield server
    server.stop()


def _get(apache, path, user, password):
    return get(apache.port, path, user, password)


#: (environment, name as sent, Trac name)
FORMS = [
    ('plain', 'jürgen', 'jürgen'),
    ('plain', 'alice', 'alice'),
    ('plain', 'zoë.o@x', 'zoë.o@x'),
    ('strip', 'CORP\\jürgen', 'jürgen'),
    ('strip', 'corp\\jürgen', 'jürgen'),
    ('strip', 'jürgen@EXAMPLE.COM', 'jürgen'),
    ('strip', 'CORP\\jürgen@example.com', 'jürgen'),
    ('strip', 'CORP\\alice', 'alice'),
    ('strip', 'zoë.o@x@EXAMPLE.COM', 'zoë.o@x'),
    ('fold', 'JÜRGEN', 'jürgen'),
    ('fold', 'CORP\\JÜRGEN', 'jürgen'),
    ('fold', 'Alice', 'alice'),
    ('fold', 'ZOË.O@X', 'zoë.o@x'),
]


def _encodings(sent, trac_name):
    """The client encodings that can carry the name and its password."""
    found = ['utf-8']
    try:
        sent.encode('latin-1')
        USERS[trac_name].encode('latin-1')
        found.append('latin-1')
    except UnicodeEncodeError:
        pass
    return found


CASES = [(env, sent, name, enc) for env, sent, name in FORMS
         for enc in _encodings(sent, name)]


@pytest.mark.parametrize('env, sent, name, encoding', CASES)
def test_application_and_group_check_see_the_trac_name(
        apache, env, sent, name, encoding):
    user = sent.encode(encoding)
    password = USERS[name].encode(encoding)
    for check in ('user', 'group'):
        path = '/%s/app/%s' % (env, check)
        assert _get(apache, path, user, password)[:2] == (200, name), path
        assert _get(apache, path, user, b'wrong')[0] == 401, path


@pytest.mark.parametrize('env, sent, name, encoding', [
    case for case in CASES if case[0] != 'plain'])
def test_trac_shows_the_trac_name(apache, env, sent, name, encoding):
    prefix = '/trac-' + env
    cookie = trac_login(apache.port, prefix, sent.encode(encoding),
                        USERS[name].encode(encoding))
    assert trac_shows(apache.port, prefix + '/wiki', cookie) == name


def test_access_log_records_the_trac_name(apache):
    _get(apache, '/strip/app/group', 'CORP\\jürgen'.encode('utf-8'),
         'pässword'.encode('utf-8'))
    _get(apache, '/fold/app/user', 'JÜRGEN'.encode('latin-1'),
         'pässword'.encode('latin-1'))
    time.sleep(0.5)     # the access log is written after the response
    lines = apache.access_log().splitlines()
    # Apache writes non-ASCII bytes of %u escaped: UTF-8 of 'ü' once
    expected = '"j\\xc3\\xbcrgen"'
    assert any(expected in line and '/strip/app/group' in line
               for line in lines), lines[-5:]
    assert any(expected in line and '/fold/app/user' in line
               for line in lines), lines[-5:]
    assert '\\xc3\\x83' not in apache.access_log()


def test_both_sides_follow_a_trac_ini_change_on_the_next_request(apache):
    """check_password (Apache's child) and the REMOTE_USER that Trac's
    process sees take the same rule from the same trac.ini."""
    path = apache.envs['plain']
    prefix = '/trac-plain'
    user, password = 'CORP\\ALICE@EXAMPLE.COM', 'secret'
    steps = [([], 401),
             ([('wsgiauth', 'strip_domains', 'CORP')], 401),
             ([('wsgiauth', 'strip_realms', 'EXAMPLE.COM')], 401),
             ([('trac', 'ignore_auth_case', 'true')], 'alice'),
             ([('wsgiauth', 'strip_realms', '')], 401),
             ([('wsgiauth', 'strip_realms', 'example.com')], 'alice')]
    try:
        for changes, expected in steps:
            for section, option, value in changes:
                edit_ini(path, section, option, value)
            if expected == 401:
                assert get(apache.port, prefix + '/login', user.encode(),
                           password.encode())[0] == 401, changes
                continue
            cookie = trac_login(apache.port, prefix, user, password)
            assert trac_shows(apache.port, prefix + '/wiki', cookie) == \
                expected, changes
    finally:
        for section, option in [('wsgiauth', 'strip_domains'),
                                ('wsgiauth', 'strip_realms'),
                                ('trac', 'ignore_auth_case')]:
            edit_ini(path, section, option, '')
