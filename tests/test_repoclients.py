"""Self-tests of tests/repoclients.py: repositories made locally and the
clients' credential handling against a stub HTTP server (no Apache)."""

import base64
import http.server
import os
import pwd
import subprocess
import threading
import time

import pytest

from tests import harness
from tests.harness import free_port, public_dir
from tests.repoclients import (
    APACHE_OWNER, git, git_commit_push, git_repo, svn, svn_commit_file,
    svn_repo)


def svnlook(*args):
    return subprocess.run(['svnlook'] + list(args), check=True,
                          capture_output=True, text=True).stdout


def owned_by_apache_user(path):
    if APACHE_OWNER:
        assert os.stat(path).st_uid == pwd.getpwnam('nobody').pw_uid


class Challenger(http.server.BaseHTTPRequestHandler):
    """Answers every request with a Basic challenge; remembers the
    Authorization headers it was sent."""
    seen = []

    def do_GET(self):
        self.seen.append(self.headers.get('Authorization'))
        body = b'authorization required\n'
        self.send_response(401)
        self.send_header('WWW-Authenticate', 'Basic realm="stub"')
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_OPTIONS = do_PROPFIND = do_GET

    def log_message(self, *args):
        pass


@pytest.fixture
def stub():
    """The URL of a stub server that refuses everybody with a 401."""
    server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), Challenger)
    Challenger.seen = []
    threading.Thread(target=server.serve_forever, args=(0.05,),
                     daemon=True).start()
    yield 'http://127.0.0.1:%d/repo' % server.server_port
    server.shutdown()
    server.server_close()


def basic(user, password):
    token = ('%s:%s' % (user, password)).encode('latin-1')
    return 'Basic ' + base64.b64encode(token).decode('ascii')


def test_svn_repo_of_500_files_in_50_revisions_is_fast():
    start = time.monotonic()
    path = svn_repo(public_dir(), 'big', files=500, revisions=50)
    assert time.monotonic() - start < 20
    assert svnlook('youngest', path).strip() == '50'
    files = [line for line in svnlook('tree', path).splitlines()
             if not line.endswith('/')]
    assert len(files) == 500
    assert svnlook('changed', '-r', '50', path).split() == \
        ['U', 'trunk/d00/f0048.txt']
    owned_by_apache_user(path)


@pytest.mark.parametrize('revisions', [0, 3])
def test_svn_repo_without_files(revisions):
    path = svn_repo(public_dir(), 'empty', revisions=revisions)
    assert svnlook('youngest', path).strip() == str(revisions)
    assert svnlook('tree', path).split() == ['/']


def test_git_repo_is_bare_with_its_commits_on_main():
    path = git_repo(public_dir(), 'g.git', files=20, commits=5)
    log = git(['--git-dir', path, 'log', '--format=%s', 'main'], check=True)
    assert log.stdout.split('\n')[:5] == ['Commit %d' % n
                                          for n in (5, 4, 3, 2, 1)]
    tree = git(['--git-dir', path, 'ls-tree', '-r', '--name-only', 'main'])
    assert len(tree.stdout.split()) == 21       # README.txt and 20 files
    head = git(['--git-dir', path, 'symbolic-ref', 'HEAD'])
    assert head.stdout.strip() == 'refs/heads/main'
    bare = git(['--git-dir', path, 'rev-parse', '--is-bare-repository'])
    assert bare.stdout.strip() == 'true'
    owned_by_apache_user(path)


def test_git_repo_has_at_least_one_commit():
    path = git_repo(public_dir(), 'g.git')
    log = git(['--git-dir', path, 'log', '--oneline', 'main'], check=True)
    assert len(log.stdout.splitlines()) == 1


def test_git_without_credentials_fails_at_once_on_a_closed_port():
    start = time.monotonic()
    out = git(['ls-remote', 'http://127.0.0.1:%d/r.git' % free_port()],
              timeout=20)
    assert out.returncode != 0
    assert 'Failed to connect' in out.stderr
    assert time.monotonic() - start < 10


def test_git_without_credentials_takes_the_401(stub):
    out = git(['ls-remote', stub], timeout=20)
    assert out.returncode != 0
    assert 'terminal prompts disabled' in out.stderr, out.stderr
    assert set(Challenger.seen) == {None}


def test_git_sends_credentials_from_its_helper(stub):
    out = git(['ls-remote', stub], 'alice', 'Pa55-git-word', timeout=20)
    assert out.returncode != 0
    assert basic('alice', 'Pa55-git-word') in Challenger.seen
    assert 'Pa55-git-word' in harness.PASSWORDS
    assert 'Pa55-git-word' not in out.stderr


def test_svn_without_credentials_does_not_prompt(stub):
    out = svn(['info', stub], timeout=20)
    assert out.returncode != 0
    assert 'E215004' in out.stderr or 'E170013' in out.stderr, out.stderr
    assert not any(Challenger.seen)


def test_svn_sends_credentials(stub):
    out = svn(['info', stub], 'bob', 'Pa55-svn-word', timeout=20)
    assert out.returncode != 0
    assert basic('bob', 'Pa55-svn-word') in Challenger.seen
    assert 'Pa55-svn-word' in harness.PASSWORDS


def test_svn_commit_file_adds_then_changes():
    path = svn_repo(public_dir(), 'r', files=1, revisions=1)
    wc = os.path.join(public_dir(), 'wc')
    svn(['checkout', '-q', 'file://' + path, wc], check=True)
    for n in (1, 2):
        out = svn_commit_file(wc, 'trunk/new/a.txt', 'text %d\n' % n,
                              'change %d' % n, 'carol', None)
        assert out.returncode == 0, out.stderr
    assert svnlook('youngest', path).strip() == '3'
    assert svnlook('cat', path, 'trunk/new/a.txt') == 'text 2\n'
    assert svnlook('author', path).strip() == 'carol'


def test_git_commit_push_to_a_new_branch():
    path = git_repo(public_dir(), 'g.git')
    clone = os.path.join(public_dir(), 'clone')
    git(['clone', '-q', path, clone], check=True)
    out = git_commit_push(clone, 'sub/b.txt', 'b\n', 'Add b', 'dave', None,
                          branch='topic')
    assert out.returncode == 0, out.stderr
    log = git(['--git-dir', path, 'log', '-1', '--format=%an %s', 'topic'])
    assert log.stdout.strip() == 'dave Add b'
