"""What `deploy` writes, used as a site uses it, through a real Apache:
several environments in one server with their examples uncommented (the
repositories: tests/test_repository_deploy.py), one
environment in two virtual hosts, HTTP Digest with the realm passwords
were stored with, and the examples' comments as written."""

import os
import re

import pytest

from tests.harness import (LOGIN, Apache, add_user, curl,
                           deploy_ours, deployed, edit_ini, free_port,
                           include, make_env, open_up, public_dir, uncomment)

#: the first lines of the commented examples a site makes live
EXAMPLES = [(r'#<Location "?[^"]*/admin"?>', '#</Location>'),
            (r'#Alias "?/downloads', '#</Directory>')]


def virtual_hosts(ports, inside):
    """Apache lines for one <VirtualHost> per port of 127.0.0.1, each
    with the lines `inside` (and its own Listen)."""
    lines = []
    for port in ports:
        lines += ['Listen 127.0.0.1:%d' % port,
                  '<VirtualHost 127.0.0.1:%d>' % port,
                  '    ServerName 127.0.0.1',
                  inside,
                  '</VirtualHost>']
    return '\n'.join(lines) + '\n'


def conf_of(target, name='trac.conf'):
    with open(os.path.join(target, 'apache', name), encoding='utf-8') as f:
        return f.read()


def realm_at(url):
    """The realm Apache asks for at `url`."""
    status, _, headers = curl(url, headers=True)
    assert status == 401, url
    return re.search(r'realm="([^"]*)"', headers).group(1)


def live_examples(target, parent):
    """An Include line for the environment's group and download
    examples made live, their /srv folders made real."""
    conf = conf_of(target)
    text = ''
    for start, end in EXAMPLES:
        first = next(line for line in conf.splitlines()
                     if re.match(start, line))
        text += uncomment(conf, first, end)
    text = text.replace('/srv/', parent + '/srv/')
    for folder in re.findall(r'<Directory "?([^">]+)', text):
        os.makedirs(folder, exist_ok=True)
        with open(os.path.join(folder, 'f.txt'), 'w') as f:
            f.write(os.path.basename(target) + '\n')
    path = os.path.join(target, 'apache', 'examples.conf')
    with open(path, 'w') as f:
        f.write(text)
    return 'Include "%s"' % path


@pytest.fixture(scope='module')
def two_sites():
    """Environments one (alice) and two (bob) in one Apache, each with
    its examples uncommented."""
    parent = public_dir()
    body = []
    for name, user in (('one', 'alice'), ('two', 'bob')):
        path = make_env(parent, name)
        add_user(path, user, user + '-pw', 'developers', 'downloaders')
        target = deploy_ours(path).target
        body += [include(target), live_examples(target, parent)]
    open_up(parent)
    apache = Apache('\n'.join(body) + '\n').start()
    yield apache
    apache.stop()


#: a URL of each example, and what its own user gets there (past Apache,
#: Trac answers the admin page: 403/404 without TRAC_ADMIN)
OWN = {'/downloads/%s/f.txt': lambda status, body: status == 200,
       '/%s/admin': lambda status, body: 'Trac' in body}


@pytest.mark.apache
@pytest.mark.parametrize('url', sorted(OWN))
def test_examples_of_two_environments_let_in_only_their_own_users(
        two_sites, url):
    for mine, user, other in (('one', 'alice', 'two'),
                              ('two', 'bob', 'one')):
        password = user + '-pw'
        assert curl(two_sites.url + url % other, user, password)[0] == 401
        status, body = curl(two_sites.url + url % mine, user, password)
        assert OWN[url](status, body), (url % mine, user, status)
        if 'downloads' in url:
            assert body == 'deploy-%s\n' % mine


@pytest.mark.apache
def test_each_environment_has_its_own_authname(two_sites):
    one = realm_at(two_sites.url + '/one/login')
    two = realm_at(two_sites.url + '/two/login')
    assert one != two
    assert realm_at(two_sites.url + '/downloads/one/f.txt') == one
    assert realm_at(two_sites.url + '/downloads/two/f.txt') == two


def test_trac_conf_points_to_the_repositories(env_path):
    conf = conf_of(deploy_ours(env_path).target)
    assert 'apache/repositories.conf' in conf
    assert 'DAV svn' not in conf


def _digest_instead_of_basic(target):
    """trac.conf with the Digest example in place of the Basic login."""
    conf = conf_of(target)
    basic = re.search(r'^<Location "[^"]*/login">\n.*?^</Location>\n',
                      conf, re.M | re.S)
    digest = uncomment(conf, '#' + basic.group(0).splitlines()[0])
    path = os.path.join(target, 'apache', 'digest.conf')
    with open(path, 'w') as f:
        f.write(conf.replace(basic.group(0), '') + digest)
    return path


@pytest.mark.apache
def test_digest_uses_the_realm_passwords_were_stored_with():
    _, _, target = deployed(
        'dig', ('alice', 'alice-pw'),
        extra_ini='\n[wsgiauth]\nhash_scheme = htdigest\n')
    conf = _digest_instead_of_basic(target)
    apache = Apache('Include "%s"\n' % conf).start()
    try:
        url = apache.url + '/dig/login'
        assert realm_at(url) == 'trac'
        assert curl(url, 'alice', 'wrong', digest=True)[0] == 401
        status, body = curl(url, 'alice', 'alice-pw', digest=True,
                            extra=LOGIN)
        assert status == 200 and 'logged in as' in body
    finally:
        apache.stop()


def test_realm_when_set_is_every_authname(env_path):
    edit_ini(env_path, 'wsgiauth', 'realm', 'Our Trac')
    conf = conf_of(deploy_ours(env_path).target)
    names = re.findall(r'^#?\s*AuthName (.*)$', conf, re.M)
    assert len(names) == 4 and set(names) == {'"Our Trac"'}


def _vhost_locations(target):
    """trac-locations.conf with the group example live."""
    conf = conf_of(target, 'trac-locations.conf')
    path = os.path.join(target, 'apache', 'vhost.conf')
    with open(path, 'w') as f:
        f.write(conf + uncomment(conf, '#<Location "/vh/admin">'))
    return path


@pytest.mark.apache
def test_one_environment_in_two_virtual_hosts():
    _, _, target = deployed('vh', ('alice', 'alice-pw', 'developers'),
                            ('bob', 'bob-pw'))
    ports = [free_port(), free_port()]
    twice = Apache(virtual_hosts(ports, include(target))).check_syntax()
    assert 'duplicates previous WSGI daemon definition' in twice.stderr
    apache = Apache('Include "%s"\n' % os.path.join(
        target, 'apache', 'trac-daemon.conf') + virtual_hosts(
        ports, 'Include "%s"' % _vhost_locations(target))).start()
    try:
        for port in ports:
            url = 'http://127.0.0.1:%d/vh/' % port
            status, body = curl(url + 'login', 'alice', 'alice-pw',
                                extra=LOGIN)
            assert status == 200 and 'logged in as' in body, port
            assert curl(url + 'admin', 'bob', 'bob-pw')[0] == 401
            assert curl(url + 'admin', 'alice', 'alice-pw')[0] != 401
    finally:
        apache.stop()
