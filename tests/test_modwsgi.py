"""The mod_wsgi entry points in-process, on real Trac environments: when
they read trac.ini and the files it inherits again."""

import io
import os
import subprocess
import sys

import pytest
from trac.env import Environment

import tracwsgiauth.tracini
from tests.harness import bump, edit_ini, make_env, public_dir
from tracwsgiauth.modwsgi import for_environment
from tracwsgiauth.serve import answer_policy
from tests.users import populate


@pytest.fixture
def site():
    parent = public_dir()
    shared = os.path.join(parent, 'shared.ini')
    path = make_env(parent)
    env = Environment(path)
    populate(env)
    env.shutdown()
    edit_ini(path, 'inherit', 'file', shared)
    return path, shared


def login(entry, user='alice', password='secret'):
    errors = io.StringIO()
    answer = entry.check_password({'wsgi.errors': errors}, user, password)
    return answer, errors.getvalue()


def test_an_inherited_file_created_and_changed_counts_at_once(site):
    path, shared = site
    entry = for_environment(path)
    assert login(entry, 'alice@EXAMPLE.COM') == (None, '')
    with open(shared, 'w') as f:      # did not exist when first read
        f.write('[wsgiauth]\nstrip_realms = EXAMPLE.COM\n')
    assert login(entry, 'alice@EXAMPLE.COM') == ('alice', '')
    assert login(entry, 'ALICE@EXAMPLE.COM') == (None, '')
    with open(shared, 'a') as f:
        f.write('[trac]\nignore_auth_case = true\n')
    bump(shared)
    assert login(entry, 'ALICE@EXAMPLE.COM') == ('alice', '')
    os.unlink(shared)       # gone: its options no longer count (Trac
    assert login(entry, 'ALICE@EXAMPLE.COM') == (None, '')  # keeps them)


def test_trac_ini_is_only_reread_when_it_changed(site, monkeypatch):
    path, _ = site
    loads = []
    real = tracwsgiauth.tracini.load

    def counting(*args):
        loads.append(1)
        return real(*args)
    monkeypatch.setattr(tracwsgiauth.tracini, 'load', counting)
    entry = for_environment(path)
    assert [login(entry)[0] for _ in range(20)] == [True] * 20
    assert len(loads) == 1
    edit_ini(path, 'wsgiauth', 'strip_realms', 'EXAMPLE.ORG')
    assert login(entry, 'alice@example.org') == ('alice', '')
    assert login(entry, 'alice@example.org') == ('alice', '')
    assert len(loads) == 2
    # group checks ask Trac's process, with the same trac.ini snapshot
    answer_policy(path)
    groups = entry.groups_for_user({'wsgi.errors': io.StringIO()}, 'alice')
    assert 'developers' in groups and len(loads) == 2


def test_the_child_side_imports_no_trac_module():
    code = ('import sys; from tracwsgiauth.modwsgi import for_environment; '
            'for_environment(sys.argv[1]).check_password({}, "alice", "x"); '
            'print(sorted(m for m in sys.modules if m.split(".")[0] in '
            '("trac", "bcrypt", "passlib", "psycopg2")))')
    path = make_env(public_dir())
    out = subprocess.run([sys.executable, '-c', code, path], check=True,
                         capture_output=True, text=True).stdout
    assert out.strip() == '[]'


def test_an_invalid_option_fails_closed_then_heals(site):
    path, _ = site
    entry = for_environment(path)
    assert login(entry) == (True, '')
    edit_ini(path, 'account-manager', 'login_attempt_max_count', 'many')
    answer, log = login(entry)
    assert answer is False
    assert 'login_attempt_max_count' in log and 'secret' not in log
    assert login(entry, password='wrong')[0] is False
    edit_ini(path, 'account-manager', 'login_attempt_max_count', '3')
    assert login(entry) == (True, '')
