"""Which repository a request is for and whether it reads or writes
(tracwsgiauth.repos), and what Trac's policies decide for it
(tracwsgiauth.repoperm), in-process on real Trac environments."""

import os

import pytest

from tests.harness import make_env, public_dir, trac_admin, trac_env, \
    write_file
from tracwsgiauth.repos import READ, WRITE, action, git_action, locate, \
    svn_action

PREFIXES = {'svn': '/svn', 'git': '/git'}


@pytest.mark.parametrize('method', ['GET', 'HEAD', 'OPTIONS', 'PROPFIND',
                                    'REPORT'])
def test_svn_reads(method):
    assert svn_action(method) == READ


@pytest.mark.parametrize('method', [
    'POST', 'PUT', 'DELETE', 'MKCOL', 'COPY', 'MOVE', 'LOCK', 'UNLOCK',
    'PROPPATCH', 'MKACTIVITY', 'CHECKOUT', 'MERGE', 'get', 'Propfind',
    'FOO', '', 'GET ', 'BASELINE-CONTROL'])
def test_every_other_svn_method_writes(method):
    assert svn_action(method) == WRITE


@pytest.mark.parametrize('method, rest, query, expected', [
    ('GET', '/info/refs', 'service=git-upload-pack', READ),
    ('HEAD', '/info/refs', 'service=git-upload-pack', READ),
    ('GET', '/info/refs', '', READ),                      # dumb HTTP
    ('GET', '/info/refs', 'service=git-receive-pack', WRITE),
    ('GET', '/info/refs', 'service=git-upload-pack&service=git-receive-pack',
     WRITE),
    ('GET', '/info/refs', 'service=git-receive-pack&service=git-upload-pack',
     WRITE),
    ('GET', '/info/refs', 'service=anything', WRITE),
    ('GET', '/info/refs', 'service=git%2Dreceive%2Dpack', WRITE),
    ('POST', '/info/refs', 'service=git-upload-pack', WRITE),
    ('POST', '/git-upload-pack', '', READ),
    ('GET', '/git-upload-pack', '', WRITE),
    ('POST', '/git-receive-pack', '', WRITE),
    ('GET', '/git-receive-pack', '', WRITE),
    ('GET', '/HEAD', '', READ),
    ('GET', '/objects/12/3456', '', READ),
    ('PUT', '/objects/12/3456', '', WRITE),
    ('PROPFIND', '/', '', WRITE),                         # not git's
    ('DELETE', '/refs/heads/main', '', WRITE),
])
def test_git_services(method, rest, query, expected):
    assert git_action(method, rest, query) == expected


@pytest.mark.parametrize('path, expected', [
    ('/svn/code', ('svn', 'code', '')),
    ('/svn/code/', ('svn', 'code', '/')),
    ('/svn/code/trunk/a b.txt', ('svn', 'code', '/trunk/a b.txt')),
    ('/svn/code/!svn/me', ('svn', 'code', '/!svn/me')),
    ('/git/tools/info/refs', ('git', 'tools', '/info/refs')),
    ('/svn/default/trunk', ('svn', '', '/trunk')),     # Trac's default
    ('/svn/Code', ('svn', 'Code', '')),                # names keep case
    ('/svn/prüf/x', ('svn', 'prüf', '/x')),
    ('/svn', None), ('/svn/', None), ('/svnx/code', None), ('/', None),
    ('/git', None), ('/other/code', None), ('', None),
])
def test_locate(path, expected):
    assert locate(path, PREFIXES) == expected


def test_the_longer_of_two_nested_prefixes_wins():
    prefixes = {'svn': '/code', 'git': '/code/git'}
    assert locate('/code/git/tools/HEAD', prefixes) == \
        ('git', 'tools', '/HEAD')
    assert locate('/code/proj/trunk', prefixes) == ('svn', 'proj', '/trunk')


def test_action_goes_by_kind():
    assert action('svn', 'POST', '/git-upload-pack', '') == WRITE
    assert action('git', 'POST', '/git-upload-pack', '') == READ
    assert action('git', 'PROPFIND', '', '') == WRITE


# -- Trac's decisions (repoperm), in-process

REPOSITORIES = """
[repositories]
code.dir = {parent}/code
code.type = svn
tools.dir = {parent}/tools
tools.type = git
alias.alias = code
.dir = {parent}/code
.type = svn
"""


@pytest.fixture(scope='module')
def env_path():
    """An environment whose trac.ini names svn repositories `code` and
    the default one, the git repository `tools`, and an alias."""
    parent = public_dir()
    for name in ('code', 'tools'):
        os.makedirs(os.path.join(parent, name, 'db'))
    return make_env(parent, 'proj', extra_ini=REPOSITORIES.format(
        parent=parent))


def decide(env_path, user, name, what):
    from tracwsgiauth.repoperm import RepositoryPolicy
    with trac_env(env_path) as env:
        return RepositoryPolicy(env).decide(user, name, what)


def test_trac_defaults_let_anonymous_read_and_nobody_write(env_path):
    for name in ('code', 'tools', ''):
        assert decide(env_path, 'anonymous', name, READ).allowed
        assert not decide(env_path, 'anonymous', name, WRITE).allowed
        assert not decide(env_path, 'someone', name, WRITE).allowed


def test_unknown_repositories_and_aliases_are_refused(env_path):
    for name in ('nope', 'alias', 'Code'):
        decision = decide(env_path, 'anonymous', name, READ)
        assert not decision.allowed
        assert 'no repository' in decision.why


def test_commit_takes_repository_commit_which_trac_admin_implies(env_path):
    trac_admin(env_path, 'permission', 'add', 'ann', 'REPOSITORY_COMMIT')
    trac_admin(env_path, 'permission', 'add', 'root', 'TRAC_ADMIN')
    trac_admin(env_path, 'permission', 'add', 'vc', 'VERSIONCONTROL_ADMIN')
    try:
        assert decide(env_path, 'ann', 'code', WRITE).allowed
        assert decide(env_path, 'root', 'tools', WRITE).allowed
        refused = decide(env_path, 'vc', 'code', WRITE)
        assert not refused.allowed
        assert 'REPOSITORY_COMMIT' in refused.why
    finally:
        trac_admin(env_path, 'permission', 'remove', 'ann', '*')
        trac_admin(env_path, 'permission', 'remove', 'root', '*')
        trac_admin(env_path, 'permission', 'remove', 'vc', '*')


def test_commit_implies_read_where_anonymous_may_not(env_path):
    trac_admin(env_path, 'permission', 'remove', 'anonymous', 'BROWSER_VIEW',
               'FILE_VIEW')
    trac_admin(env_path, 'permission', 'add', 'devs', 'REPOSITORY_COMMIT')
    trac_admin(env_path, 'permission', 'add', 'ann', 'devs')
    try:
        assert not decide(env_path, 'anonymous', 'code', READ).allowed
        assert not decide(env_path, 'bob', 'code', READ).allowed
        assert decide(env_path, 'ann', 'code', READ).allowed
        assert decide(env_path, 'ann', 'code', WRITE).allowed
    finally:
        trac_admin(env_path, 'permission', 'remove', 'ann', 'devs')
        trac_admin(env_path, 'permission', 'remove', 'devs', '*')
        trac_admin(env_path, 'permission', 'add', 'anonymous',
                   'BROWSER_VIEW', 'FILE_VIEW')


def test_a_raw_permission_write_counts_at_the_next_decision(env_path):
    """AccountManager deletes a user's permission rows with plain SQL,
    which Trac's caches never hear of: the next decision sees it."""
    from trac.env import Environment
    from tracwsgiauth.repoperm import RepositoryPolicy
    env = Environment(env_path)
    try:
        policy = RepositoryPolicy(env)
        trac_admin(env_path, 'permission', 'add', 'cy', 'REPOSITORY_COMMIT')
        assert policy.decide('cy', 'code', WRITE).allowed
        with env.db_transaction as db:
            db("DELETE FROM permission WHERE username='cy'")
        assert not policy.decide('cy', 'code', WRITE).allowed
    finally:
        env.shutdown()


def test_authz_policy_sections_decide_per_repository(env_path):
    parent = os.path.dirname(env_path)
    authz = write_file(os.path.join(parent, 'authz.ini'),
                       '[repository:code@*]\ndee = REPOSITORY_COMMIT\n'
                       'anonymous = !BROWSER_VIEW\n')
    with trac_env(env_path) as env:
        env.config.set('components', 'tracopt.perm.authz_policy.*',
                       'enabled')
        env.config.set('trac', 'permission_policies',
                       'AuthzPolicy, DefaultPermissionPolicy')
        env.config.set('authz_policy', 'authz_file', authz)
        env.config.save()
    try:
        assert decide(env_path, 'dee', 'code', WRITE).allowed
        assert not decide(env_path, 'dee', 'tools', WRITE).allowed
        refused = decide(env_path, 'anonymous', 'code', READ)
        assert not refused.allowed and 'AuthzPolicy' in refused.why
        assert decide(env_path, 'anonymous', 'tools', READ).allowed
    finally:
        with trac_env(env_path) as env:
            env.config.remove('trac', 'permission_policies')
            env.config.remove('authz_policy', 'authz_file')
            env.config.save()


@pytest.mark.parametrize('rules, expected', [
    ('[/]\n* = r\n', []),
    ('[code:/]\nalice = r\n', []),
    ('[code:/secret]\n* =\n', ['code']),
    ('[tools:/x/]\nbob = r\n', ['tools']),
    ('[/trunk]\n* = r\n', ['', 'code', 'tools']),     # any repository
    ('[groups]\ndevs = alice\n[other:/x]\n@devs = rw\n', []),
])
def test_deploy_names_repositories_with_path_rules(env_path, rules,
                                                   expected):
    from tracwsgiauth.deployrepos import path_rules
    authz = write_file(os.path.join(os.path.dirname(env_path), 'svnauthz'),
                       rules)
    with trac_env(env_path) as env:
        env.config.set('trac', 'permission_policies',
                       'AuthzSourcePolicy, DefaultPermissionPolicy')
        env.config.set('svn', 'authz_file', authz)
        assert path_rules(env, ['', 'code', 'tools']) == expected
        env.config.remove('trac', 'permission_policies')
        assert path_rules(env, ['', 'code', 'tools']) == []
