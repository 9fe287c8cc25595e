"""tracwsgiauth.tracini reads trac.ini as Trac itself does: checked against
trac.config.Configuration and trac.env.Environment."""

import configparser
import itertools
import os
import shutil
import subprocess
import sys
import tempfile

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from trac.config import Configuration, Option
from trac.core import TracError
from trac.env import Environment

from tracwsgiauth import tracini
from tracwsgiauth.accounts import AuthStore

#: What Trac raises for a file it refuses (an inherit cycle ends in
#: RecursionError).
TRAC_REFUSES = (TracError, UnicodeDecodeError, configparser.Error,
                RecursionError)

#: Distinct modification times, one second apart, for every write.
_clock = itertools.count(1_600_000_000 * 10**9, 10**9)

COMPONENTS = ['tracwsgiauth.accounts.AuthStore', 'tracwsgiauth.admin.Admin',
              'TracWsgiAuth.Accounts.AuthStore', 'tracwsgiauth',
              'otherplugin.web.Module', 'trac.ticket.api.TicketSystem',
              'trac.tests.functional.Thing', 'tracopt.perm.Store',
              'tracwsgiauthx.Thing']


def write(path, content):
    """Write text or bytes and give the file a new modification time."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    data = content.encode('utf-8') if isinstance(content, str) else content
    with open(path, 'wb') as f:
        f.write(data)
    stamp = next(_clock)
    os.utime(path, ns=(stamp, stamp))


def make_env(root, files):
    """An environment folder `root`/env (VERSION, conf/, log/) and the
    other `files` ({path relative to root: content})."""
    env_path = os.path.join(root, 'env')
    os.makedirs(os.path.join(env_path, 'log'), exist_ok=True)
    write(os.path.join(env_path, 'VERSION'), 'Trac Environment Version 1\n')
    for name, content in files.items():
        write(os.path.join(root, name), content)
    return env_path


def trac_files(config):
    """The files Trac reads, nearest first (as modwsgi lists them)."""
    files = [config.filename]
    for parent in config.parents:
        files.extend(trac_files(parent))
    return files


def trac_rule(config, component):
    """Environment.is_component_enabled over `config`, without loading
    any plugin."""
    env = Environment.__new__(Environment)
    env.config = config
    return bool(Environment.is_component_enabled(env, component))


def assert_option(config, ini, section, name):
    if (section, name) in Option.registry and \
            not config.has_option(section, name, defaults=False):
        return      # Trac answers the registered default, not the caller's
    assert ini.get(section, name) == config.get(section, name, None)
    assert ini.get(section, name, 'dflt') == config.get(section, name, 'dflt')
    assert ini.getbool(section, name) == config.getbool(section, name)
    assert ini.getbool(section, name, True) == \
        config.getbool(section, name, True)
    assert ini.getlist(section, name) == config.getlist(section, name)
    assert ini.getlist(section, name, ['a', '', 'b']) == \
        config.getlist(section, name, ['a', '', 'b'])
    try:
        expected = config.getint(section, name, 7)
    except TracError as e:
        with pytest.raises(ValueError) as raised:
            ini.getint(section, name, 7)
        assert str(raised.value) == e.message
    else:
        assert ini.getint(section, name, 7) == expected


def assert_same(env_path):
    """Our reading of the environment's trac.ini is Trac's; returns it, or
    None when Trac refuses the files (and then so do we)."""
    try:
        config = Configuration(tracini.config_path(env_path))
    except TRAC_REFUSES:
        with pytest.raises(tracini.TracIniError):
            tracini.load(env_path)
        return None
    ini = tracini.load(env_path)
    assert ini.files == trac_files(config)
    assert not ini.changed()
    sections = config.sections(defaults=False)
    assert ini.sections() == sections
    seen = {'no-such-option'}
    for section in sections:
        names = list(config[section].iterate(defaults=False))
        assert ini.options(section) == names
        seen.update(names + [name.upper() for name in names])
    for section in sections + ['no-such-section', 'DEFAULT']:
        for name in sorted(seen):
            assert_option(config, ini, section, name)
    for component in COMPONENTS:
        assert ini.enabled(component) == trac_rule(config, component)
    return ini


# -- a corpus of hand-written files

BASICS = """\
# -*- coding: utf-8 -*-
; a comment
[wsgiauth]
Realm = Our %(realm)s 100%
strip_domains = CORP, ,Other ,
cache_size: 12
cache_ttl = 1_000
hash_scheme = bcrypt # not a comment
deny_hosts =
flag =
  Yes
multi = first
  second line

  after a blank line
    # indented, still a comment
[WsgiAuth]
realm = another section: names of sections keep their case
[account-manager]
verify_email = Off
user_lock_max_time = 1.5
[trac]
ignore_auth_case = nan
[components]
tracwsgiauth.* = enabled
"""

CORPUS = {
    'basics': {'env/conf/trac.ini': BASICS},
    'crlf and lone cr': {'env/conf/trac.ini': BASICS.replace('\n', '\r\n')
                         .replace('[trac]\r\n', '[trac]\r')},
    'default section': {'env/conf/trac.ini': """\
[DEFAULT]
realm = from default
file = base.ini
[wsgiauth]
cache_size = 3
[inherit]
[components]
"""},
    'inherit chain': {
        'env/conf/trac.ini': """\
[inherit]
file = base.ini, ../../shared/site.ini ,missing.ini,, {abs}
[wsgiauth]
realm = nearest
[components]
tracwsgiauth.accounts.* = disabled
""",
        'env/conf/base.ini': """\
[inherit]
file = deeper/d.ini
[wsgiauth]
REALM = base
cache_size = 5
[components]
tracwsgiauth = enabled
""",
        'env/conf/deeper/d.ini': """\
[inherit]
file = ../../../shared/site.ini
[wsgiauth]
cache_ttl = from d
[account-manager]
verify_email = yes
""",
        'shared/site.ini': """\
[wsgiauth]
cache_size = 9
cache_ttl = from site
strip_realms = EXAMPLE.ORG
[components]
TracWsgiAuth.* = on
""",
        'abs/other.ini': """\
[trac]
ignore_auth_case = enabled
""",
    },
    'empty inherit list': {'env/conf/trac.ini':
                           '[inherit]\nfile =\n[a]\nb=c\n'},
    'inherit of a folder': {'env/conf/trac.ini': '[inherit]\nfile = .\n'},
    'duplicate section': {'env/conf/trac.ini': '[a]\nx=1\n[a]\ny=2\n'},
    'duplicate option': {'env/conf/trac.ini': '[a]\nX=1\nx=2\n'},
    'option before section': {'env/conf/trac.ini': 'x = 1\n[a]\n'},
    'no delimiter': {'env/conf/trac.ini': '[a]\njust a word\n'},
    'bom': {'env/conf/trac.ini': b'\xef\xbb\xbf[a]\nx = 1\n'},
    'latin-1': {'env/conf/trac.ini': b'[a]\nx = caf\xe9\n'},
    'latin-1 inherited': {
        'env/conf/trac.ini': '[inherit]\nfile = p.ini\n',
        'env/conf/p.ini': b'[a]\nx = caf\xe9\n'},
    'inherit cycle': {
        'env/conf/trac.ini': '[inherit]\nfile = p.ini\n',
        'env/conf/p.ini': '[inherit]\nfile = ./trac.ini\n'},
    'same section in several files': {
        'env/conf/trac.ini': '[inherit]\nfile = p.ini\n[a]\nx = 1\n',
        'env/conf/p.ini': '[a]\nX = 2\ny = 3\n[inherit]\nfile = q.ini\n',
        'env/conf/q.ini': '[a]\ny = 4\nz = 5\n'},
}


@pytest.mark.parametrize('case', sorted(CORPUS))
def test_corpus_reads_as_trac_reads(case, tmp_path):
    files = {name: content.replace('{abs}', str(tmp_path / 'abs/other.ini'))
             if isinstance(content, str) else content
             for name, content in CORPUS[case].items()}
    assert_same(make_env(str(tmp_path), files))


def test_inherit_chain_precedence(tmp_path):
    files = {n: c.replace('{abs}', str(tmp_path / 'abs/other.ini'))
             for n, c in CORPUS['inherit chain'].items()}
    ini = assert_same(make_env(str(tmp_path), files))
    conf = os.path.dirname(ini.files[0])
    assert conf == os.path.realpath(str(tmp_path / 'env/conf'))
    assert ini.files == [
        conf + '/trac.ini', conf + '/base.ini', conf + '/deeper/d.ini',
        conf + '/deeper/../../../shared/site.ini',
        conf + '/../../shared/site.ini', conf + '/missing.ini', conf + '/',
        str(tmp_path / 'abs/other.ini')]
    assert ini.stamp[5] is None
    assert ini.get('wsgiauth', 'realm') == 'nearest'
    assert ini.getint('wsgiauth', 'cache_size') == 5
    assert ini.get('wsgiauth', 'cache_ttl') == 'from d'
    assert ini.getlist('wsgiauth', 'strip_realms') == ['EXAMPLE.ORG']
    assert ini.getbool('trac', 'ignore_auth_case')
    assert not ini.enabled('tracwsgiauth.accounts.AuthStore')
    assert ini.enabled('tracwsgiauth.admin.Admin')


def test_basics_values(tmp_path):
    ini = assert_same(make_env(str(tmp_path),
                               {'env/conf/trac.ini': BASICS}))
    assert ini.get('wsgiauth', 'REALM') == 'Our %(realm)s 100%'
    assert ini.getlist('wsgiauth', 'strip_domains') == ['CORP', 'Other']
    assert ini.get('wsgiauth', 'multi') == (
        'first\nsecond line\n\nafter a blank line')
    assert ini.get('wsgiauth', 'hash_scheme') == 'bcrypt # not a comment'
    assert ini.getint('wsgiauth', 'cache_ttl') == 1000
    assert ini.get('wsgiauth', 'flag') == '\nYes'
    assert ini.getbool('wsgiauth', 'flag')
    assert ini.getbool('trac', 'ignore_auth_case')
    with pytest.raises(ValueError, match=r'\[account-manager\] '
                       'user_lock_max_time: expected integer'):
        ini.getint('account-manager', 'user_lock_max_time')


def test_config_path_is_trac_s(tmp_path):
    """conf/trac.ini under the real path of conf, after Trac's normpath
    of the environment path (which drops 'link/..' before resolving)."""
    env_path = make_env(str(tmp_path / 'real'), {'env/conf/trac.ini':
                                                 '[a]\n'})
    os.symlink(str(tmp_path / 'real'), str(tmp_path / 'link'))
    os.makedirs(str(tmp_path / 'elsewhere/sub'))
    os.symlink(str(tmp_path / 'elsewhere/sub'), str(tmp_path / 'jump'))
    for path in (env_path, str(tmp_path / 'link/env'),
                 str(tmp_path / 'jump/../link/env'),
                 str(tmp_path / 'link/env/')):
        expected = Environment(path).config_file_path
        assert tracini.config_path(path) == expected
        assert tracini.load(path).files[0] == expected


def test_missing_trac_ini(tmp_path):
    env_path = make_env(str(tmp_path), {})
    with pytest.raises(TracError):
        Environment(env_path)
    with pytest.raises(FileNotFoundError, match='trac.ini'):
        tracini.load(env_path)
    os.makedirs(os.path.join(env_path, 'conf', 'trac.ini'))
    with pytest.raises(FileNotFoundError, match='trac.ini'):
        tracini.load(env_path)


UNREADABLE = """
import sys
from trac.config import Configuration, Option
from trac.core import TracError
from tracwsgiauth import tracini
try:
    Configuration(tracini.config_path(sys.argv[1]))
except TracError:
    print('trac refuses')
try:
    tracini.load(sys.argv[1])
except OSError as e:
    print('OSError', e.filename)
"""


@pytest.mark.parametrize('which', ['env/conf/trac.ini', 'shared/p.ini'])
def test_unreadable_file(which):
    """Trac refuses the whole configuration; load raises an OSError
    naming the file.  As root, checked by the user nobody."""
    root = tempfile.mkdtemp(prefix='twa-ini-', dir='/tmp')
    try:
        os.chmod(root, 0o755)
        env_path = make_env(root, {
            'env/conf/trac.ini': '[inherit]\nfile = ../../shared/p.ini\n',
            'shared/p.ini': '[a]\nx = 1\n'})
        for dirpath, _, _ in os.walk(root):
            os.chmod(dirpath, 0o755)
        os.chmod(os.path.join(root, which), 0)
        user = 'nobody' if os.geteuid() == 0 else None
        out = subprocess.run([sys.executable, '-c', UNREADABLE, env_path],
                             user=user, cwd='/', capture_output=True,
                             text=True, timeout=60, check=True).stdout
        name = tracini.config_path(env_path)
        if which.startswith('shared'):
            name = os.path.join(os.path.dirname(name), '../../shared/p.ini')
        assert out.splitlines() == ['trac refuses', 'OSError ' + name]
    finally:
        shutil.rmtree(root)


# -- [components]

ENABLE_TABLE = [
    {},
    {'tracwsgiauth.*': 'enabled'},
    {'tracwsgiauth.accounts.authstore': 'enabled'},
    {'TracWsgiAuth.Accounts.AuthStore': 'on'},
    {'tracwsgiauth': 'enabled'},
    {'tracwsgiauth.accounts': 'yes'},
    {'tracwsgiauth.*': 'enabled', 'tracwsgiauth.accounts.*': 'disabled'},
    {'tracwsgiauth.*': 'disabled', 'tracwsgiauth.accounts.AuthStore': '1'},
    {'tracwsgiauth.*': 'enabled', 'TRACWSGIAUTH': 'disabled'},
    {'tracwsgiauth': 'disabled', 'tracwsgiauth.*': 'enabled'},
    {'tracwsgiauth..**': 'on'},
    {'tracwsgiauth.*': 'maybe'},
    {'tracwsgiauth.*': 'nan'},
    {'tracwsgiauth.*': '0.0'},
    {'tracwsgiauth.*': ''},
    {'*': 'enabled'},
    {'trac*': 'enabled'},
    {'trac.*': 'disabled', 'tracwsgiauth.*': 'enabled'},
    {'trac': 'disabled'},
]


def components_ini(rules):
    return '[components]\n' + ''.join('%s = %s\n' % rule
                                      for rule in rules.items())


def check_enabled(env_path):
    ini = tracini.load(env_path)
    env = Environment(env_path)
    try:
        for name in COMPONENTS:
            assert ini.enabled(name) == bool(env.is_component_enabled(name))
        assert ini.enabled('tracwsgiauth.accounts.AuthStore') == \
            bool(env.is_enabled(AuthStore))
    finally:
        env.shutdown()


@pytest.mark.parametrize('rules', ENABLE_TABLE, ids=str)
def test_enabled_as_a_real_environment(rules, tmp_path):
    check_enabled(make_env(str(tmp_path),
                           {'env/conf/trac.ini': components_ini(rules)}))


@pytest.mark.parametrize('near, far', [
    ({'tracwsgiauth.accounts.*': 'disabled'}, {'tracwsgiauth.*': 'enabled'}),
    ({'tracwsgiauth.accounts.AuthStore': 'enabled'},
     {'tracwsgiauth.*': 'disabled'}),
    ({'tracwsgiauth.*': 'enabled'}, {'tracwsgiauth.*': 'disabled'}),
    ({'tracwsgiauth.*': 'enabled'}, {'tracwsgiauth': 'disabled'}),
    ({}, {'TracWsgiAuth.*': 'on'}),
], ids=str)
def test_enabled_through_inherit(near, far, tmp_path):
    check_enabled(make_env(str(tmp_path), {
        'env/conf/trac.ini': '[inherit]\nfile = far.ini\n'
                             + components_ini(near),
        'env/conf/far.ini': components_ini(far)}))


# -- changed()

@pytest.fixture
def chain(tmp_path):
    return make_env(str(tmp_path), {
        'env/conf/trac.ini': '[inherit]\nfile = a.ini\n[x]\nk = 0\n',
        'env/conf/a.ini': '[x]\nk = a\nj = a\n'})


def test_changed_after_editing_trac_ini(chain):
    ini = tracini.load(chain)
    assert not ini.changed()
    write(ini.files[0], '[inherit]\nfile = a.ini\n[x]\nk = 1\n')
    assert ini.changed()
    ini = tracini.load(chain)
    assert not ini.changed() and ini.get('x', 'k') == '1'


def test_changed_after_editing_an_inherited_file(chain):
    ini = tracini.load(chain)
    write(ini.files[1], '[x]\nj = b\n')
    assert ini.changed()
    assert tracini.load(chain).get('x', 'j') == 'b'


def test_changed_after_the_inherit_list_changes(chain):
    ini = tracini.load(chain)
    conf = os.path.dirname(ini.files[0])
    write(os.path.join(conf, 'b.ini'), '[x]\ni = b\n')
    assert not ini.changed()
    write(ini.files[0], '[inherit]\nfile = b.ini, a.ini\n')
    assert ini.changed()
    ini = assert_same(chain)
    assert ini.files[1:] == [conf + '/b.ini', conf + '/a.ini']
    assert ini.get('x', 'i') == 'b' and not ini.changed()


def test_changed_after_a_file_goes_and_comes(chain):
    ini = tracini.load(chain)
    os.remove(ini.files[1])
    assert ini.changed()
    ini = assert_same(chain)
    assert ini.stamp[1] is None and not ini.changed()
    assert ini.get('x', 'j') is None
    write(ini.files[1], '[x]\nj = back\n')
    assert ini.changed()
    ini = tracini.load(chain)
    os.remove(ini.files[0])
    assert ini.changed()
    with pytest.raises(FileNotFoundError):
        tracini.load(chain)


def test_a_write_during_the_read_shows_next(chain, monkeypatch):
    """The stamp is taken before a file is read: a write while it is read
    makes the next changed() true."""
    def open_and_write(path, *args, **kwargs):
        f = open(path, *args, **kwargs)
        stamp = next(_clock)
        os.utime(path, ns=(stamp, stamp))
        return f
    monkeypatch.setattr(tracini, 'open', open_and_write, raising=False)
    ini = tracini.load(chain)
    monkeypatch.undo()
    assert ini.changed()


# -- generated files

SECTIONS = st.sampled_from(['components', 'wsgiauth', 'WsgiAuth', 'trac',
                            'account-manager', 'DEFAULT', 'x y', '%'])
ODD = st.characters(blacklist_categories=('Cs',))
NAMES = st.sampled_from([
    'realm', 'Realm', 'CACHE_SIZE', 'cache_size', 'strip_domains',
    'tracwsgiauth.*', 'TracWsgiAuth.Accounts.AuthStore', 'tracwsgiauth',
    'tracwsgiauth.accounts', 'trac.*', '*', 'x%(y)s', 'a b', 'k;']) | \
    st.text(ODD, min_size=1, max_size=6)
VALUES = st.sampled_from([
    'yes', 'Yes', 'TRUE', 'on', 'Enabled', 'no', 'OFF', 'disabled',
    'false', '1', '0', '0.0', '-0', 'nan', 'inf', '1e-400', '1_0', '\u0661',
    ' 2 ', 'maybe', '', '12', '+4', '1_000', '0x10', '1.5', '\u0661\u0662',
    'a,b', ' a , ,b ,', ',', 'a;b', '%(x)s, 100%', '# not a comment',
    'x\x0by', 'x\u2028y', '\xa0z\xa0']) | st.text(ODD, max_size=10)
OPTION = st.tuples(NAMES, st.sampled_from(['=', ' = ', ':', ' :', '==']),
                   VALUES).map(''.join)
#: An option line, then perhaps continuation lines and comments.
ENTRY = st.tuples(OPTION, st.lists(st.one_of(
    VALUES.map(lambda v: '  ' + v),
    st.sampled_from(['', '# c', '; c', '  # c'])), max_size=2))
SECTION = st.tuples(SECTIONS, st.lists(ENTRY, max_size=5).map(
    lambda entries: [line for e in entries for line in [e[0]] + e[1]]))
#: A file: sections of unique names, then, one time in five, a line of
#: any text (most often one Trac cannot parse).
FILES = st.tuples(
    st.lists(SECTION, max_size=4, unique_by=lambda section: section[0]),
    st.one_of(st.just(()), st.just(()), st.just(()), st.just(()),
              st.sampled_from(['rem x', '[', '  orphan', 'x = [y]'])
              .map(lambda line: (line,)),
              st.text(ODD, max_size=10).map(lambda line: (line,))))
INHERITS = st.lists(st.sampled_from(['a.ini', ' ../b.ini', 'missing.ini',
                                     '', '{abs}', 'sub']), max_size=3)


def render(text, inherits):
    sections, extra = text
    lines = []
    for name, body in sections:
        lines += ['[%s]' % name] + body
    lines += extra
    if inherits is not None:
        lines += ['[inherit]', 'file = ' + ','.join(inherits)]
    return '\n'.join(lines) + '\n'


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(FILES, FILES, FILES, INHERITS, st.booleans(),
       st.sampled_from([b'', b'\xef\xbb\xbf', b'\xe9']))
def test_generated_files_read_as_trac_reads(near, middle, far, inherits,
                                            middle_inherits, odd_bytes):
    """trac.ini (inheriting a list of files), conf/a.ini (perhaps
    inheriting ../b.ini), b.ini: every answer is Trac's."""
    with tempfile.TemporaryDirectory() as root:
        far_path = os.path.join(root, 'env', 'b.ini')
        names = [n.replace('{abs}', far_path) for n in inherits]
        env_path = make_env(root, {
            'env/conf/trac.ini': render(near, names),
            'env/conf/a.ini': render(middle, ['../b.ini'] if
                                     middle_inherits else None),
            'env/b.ini': render(far, None).encode('utf-8') + odd_bytes})
        os.makedirs(os.path.join(env_path, 'conf', 'sub'))
        assert_same(env_path)


@settings(max_examples=100, deadline=None)
@given(st.dictionaries(NAMES, VALUES, max_size=5),
       st.sampled_from(COMPONENTS) | st.text(ODD, max_size=12))
def test_generated_component_rules(rules, component):
    with tempfile.TemporaryDirectory() as root:
        env_path = make_env(root, {'env/conf/trac.ini': components_ini(
            rules)})
        try:
            config = Configuration(tracini.config_path(env_path))
        except TRAC_REFUSES:
            with pytest.raises(tracini.TracIniError):
                tracini.load(env_path)
            return
        assert tracini.load(env_path).enabled(component) == \
            trac_rule(config, component)


# -- no Trac in the process

def test_import_loads_no_trac_module(tmp_path):
    code = ('import tracwsgiauth.tracini, sys; print([m for m in '
            'sys.modules if m == "trac" or m.startswith("trac.")])')
    out = subprocess.run([sys.executable, '-c', code], cwd=str(tmp_path),
                         capture_output=True, text=True, timeout=60,
                         check=True).stdout
    assert out.strip() == '[]'


def test_a_load_loads_no_trac_module(tmp_path):
    env_path = make_env(str(tmp_path), {'env/conf/trac.ini': BASICS})
    code = ('import sys; from tracwsgiauth import tracini; '
            'ini = tracini.load(sys.argv[1]); ini.changed(); '
            'ini.enabled("tracwsgiauth.accounts.AuthStore"); print(sorted('
            'm for m in sys.modules if m.split(".")[0] == "trac"))')
    out = subprocess.run([sys.executable, '-c', code, env_path],
                         cwd=str(tmp_path), capture_output=True, text=True,
                         timeout=60, check=True).stdout
    assert out.strip() == '[]'
