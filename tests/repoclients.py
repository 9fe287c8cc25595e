"""Real Subversion and Git command-line clients for the tests and the
benchmarks, and the repositories they talk to.

`svn_repo` and `git_repo` make repositories (optionally filled, fast)
owned by Apache's user, so that mod_dav_svn and git-http-backend may write
them. `svn` and `git` run the clients non-interactively, isolated from the
machine's configuration and from each other: every call has its own
throwaway configuration, so no credential is cached between calls.
Passwords never go into a URL or a command line (svn reads it on stdin,
git from a credential helper that reads the environment), and every one
is registered with `tests.harness.secret`, so no Apache log may show it.
"""

import os
import shutil
import subprocess
import tempfile

from tests.harness import require, secret, write_file

#: who must own a served repository: Apache runs as nobody:nogroup when
#: the tests run as root, else as the current user (no change needed)
APACHE_OWNER = 'nobody:nogroup' if os.geteuid() == 0 else None

#: files per folder in the trees of svn_repo and git_repo
PER_FOLDER = 100

#: the only git configuration a `git` call sees (HOME is a throwaway)
GIT_CONFIG = """\
[user]
\tname = tracwsgiauth tests
\temail = tests@example.org
[init]
\tdefaultBranch = main
[safe]
\tdirectory = *
"""

#: a git credential helper answering with this call's user and password,
#: taken from its environment (not from a URL, not from a command line)
CREDENTIAL_HELPER = """\
#!/bin/sh
[ "$1" = get ] || exit 0
printf 'username=%s\\n' "$TWA_GIT_USER"
[ -z "${TWA_GIT_PASSWORD+set}" ] || printf 'password=%s\\n' "$TWA_GIT_PASSWORD"
"""


def _run(cmd, cwd=None, timeout=60, input=None, env=None, check=False):
    """`cmd` run to its end with an English C.UTF-8 locale, text output
    captured, stdin `input` (or nothing: a client that would ask reads
    end of file)."""
    env = dict(os.environ if env is None else env, LC_ALL='C.UTF-8')
    stdin = None if input is not None else subprocess.DEVNULL
    return subprocess.run(cmd, cwd=cwd, env=env, input=input, stdin=stdin,
                          capture_output=True, text=True, timeout=timeout,
                          check=check)


def _own(path):
    """Give a repository to Apache's user (it writes there on commits)."""
    if APACHE_OWNER:
        subprocess.run(['chown', '-R', APACHE_OWNER, path], check=True)


def tree_paths(files):
    """The relative paths of a tree of `files` files, PER_FOLDER a folder:
    d00/f0000.txt, d00/f0001.txt, ..., d01/f0100.txt, ..."""
    return ['d%02d/f%04d.txt' % (i // PER_FOLDER, i) for i in range(files)]


# -- Subversion -----------------------------------------------------------

def svn_repo(parent, name, files=0, revisions=0):
    """A new Subversion repository parent/name owned by Apache's user;
    its path. With `files`, r1 adds trunk/ and `files` files in it
    (tree_paths); each later revision up to `revisions` changes one file
    (sets a property on the root when there are no files)."""
    require(shutil.which('svnadmin'), 'svnadmin (apt-get install subversion)')
    require(shutil.which('svnmucc'), 'svnmucc (apt-get install subversion)')
    path = os.path.abspath(os.path.join(parent, name))
    _run(['svnadmin', 'create', path], check=True)
    with tempfile.TemporaryDirectory(prefix='twa-svnmucc-') as tmp:
        if files:
            _svnmucc(tmp, path, 'Add %d files' % files, _svn_adds(tmp, files))
        for rev in range(2 if files else 1, revisions + 1):
            _svnmucc(tmp, path, 'Revision %d' % rev,
                     _svn_change(tmp, path, rev, files))
    _own(path)
    return path


def _svn_adds(tmp, files):
    """svnmucc operations adding trunk/ and the files of tree_paths."""
    ops = ['mkdir', 'trunk']
    for i, relpath in enumerate(tree_paths(files)):
        if i % PER_FOLDER == 0:
            ops += ['mkdir', 'trunk/' + os.path.dirname(relpath)]
        src = write_file(os.path.join(tmp, 'add%d' % i), '%s\n' % relpath)
        ops += ['put', src, 'trunk/' + relpath]
    return ops


def _svn_change(tmp, repo, rev, files):
    """svnmucc operations of revision `rev`: one file changed, or without
    files a property of the root of `repo`."""
    if not files:
        return ['propset', 'twa:revision', str(rev), 'file://' + repo]
    relpath = tree_paths(files)[(rev - 2) % files]
    src = write_file(os.path.join(tmp, 'change'), 'changed in r%d\n' % rev)
    return ['put', src, 'trunk/' + relpath]


def _svnmucc(tmp, repo, message, ops):
    """One revision of the local repository `repo` made of `ops` (given
    through a file: there may be thousands)."""
    args = write_file(os.path.join(tmp, 'args'), '\n'.join(ops) + '\n')
    _run(['svnmucc', '--config-dir', os.path.join(tmp, 'config'),
          '--non-interactive', '-U', 'file://' + repo, '-m', message,
          '-X', args], check=True)


def svn(args, user=None, password=None, cwd=None, timeout=60, check=False):
    """`svn args`, non-interactive, with a throwaway --config-dir and
    --no-auth-cache, as `user` when given; the password goes in on stdin
    (--password-from-stdin), so no process list shows it."""
    require(shutil.which('svn'), 'svn (apt-get install subversion)')
    with tempfile.TemporaryDirectory(prefix='twa-svn-') as config:
        cmd = ['svn', '--config-dir', config, '--non-interactive',
               '--no-auth-cache']
        if user is not None:
            cmd += ['--username', user]
        if password is not None:
            cmd.append('--password-from-stdin')
            password = secret(password) + '\n'
        return _run(cmd + list(args), cwd=cwd, timeout=timeout,
                    input=password, check=check)


def svn_commit_file(wc, relpath, text, message, user, password):
    """Write `text` to `relpath` of the working copy `wc`, add it (and new
    parent folders) when new, and commit the working copy as `user`; the
    commit's CompletedProcess."""
    path = os.path.join(wc, relpath)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    write_file(path, text)
    svn(['add', '-q', '--parents', '--force', relpath], cwd=wc, check=True)
    return svn(['commit', '-m', message], user, password, cwd=wc)


# -- Git ------------------------------------------------------------------

def git_repo(parent, name, files=0, commits=0):
    """A new bare Git repository parent/name owned by Apache's user; its
    path. Branch main (HEAD) holds max(commits, 1) commits: the first adds
    README.txt and `files` files (tree_paths), each later one changes one
    file. Push over HTTP is left to git-http-backend (REMOTE_USER)."""
    require(shutil.which('git'), 'git (apt-get install git)')
    path = os.path.abspath(os.path.join(parent, name))
    git(['init', '-q', '--bare', '-b', 'main', path], check=True)
    stream = _fast_import(['README.txt'] + tree_paths(files), max(commits, 1))
    git(['--git-dir', path, 'fast-import', '--quiet'], input=stream,
        check=True)
    _own(path)
    return path


def _fast_import(paths, commits):
    """A `git fast-import` stream of `commits` commits on main: the first
    adds `paths`, each later one changes one of them."""
    out = []
    for n in range(commits):
        changed = paths if n == 0 else [paths[n % len(paths)]]
        out += ['commit refs/heads/main',
                'committer tracwsgiauth tests <tests@example.org> %d +0000'
                % (1700000000 + 60 * n),
                _data('Commit %d' % (n + 1))]
        for path in changed:
            out += ['M 100644 inline ' + path,
                    _data('%s in commit %d\n' % (path, n + 1))]
        out.append('')
    return '\n'.join(out) + '\n'


def _data(text):
    """A fast-import `data` command holding `text`."""
    return 'data %d\n%s' % (len(text.encode('utf-8')), text)


def git(args, user=None, password=None, cwd=None, timeout=60, input=None,
        check=False):
    """`git args` that never prompts and ignores the machine's git
    configuration (throwaway HOME, no system config). With `user`, a
    credential helper answers any server's 401 with `user` and
    `password`; without, the 401 is the answer."""
    require(shutil.which('git'), 'git (apt-get install git)')
    with tempfile.TemporaryDirectory(prefix='twa-git-') as home:
        return _run(['git'] + list(args), cwd=cwd, timeout=timeout,
                    input=input, env=_git_env(home, user, password),
                    check=check)


def _git_env(home, user, password):
    """The environment of one `git` call, its configuration in `home`:
    no inherited GIT_* variable and no askpass program."""
    env = {key: value for key, value in os.environ.items()
           if not key.startswith('GIT_') and key != 'SSH_ASKPASS'}
    env.update(HOME=home, XDG_CONFIG_HOME=home, GIT_CONFIG_NOSYSTEM='1',
               GIT_TERMINAL_PROMPT='0')
    config = GIT_CONFIG
    if user is not None:
        helper = write_file(os.path.join(home, 'credential'),
                            CREDENTIAL_HELPER)
        os.chmod(helper, 0o700)
        config += '[credential]\n\thelper = %s\n' % helper
        env['TWA_GIT_USER'] = user
        if password is not None:
            env['TWA_GIT_PASSWORD'] = secret(password)
    write_file(os.path.join(home, '.gitconfig'), config)
    return env


def git_commit_push(clone, relpath, text, message, user, password,
                    branch='main'):
    """Write `text` to `relpath` of `clone`, commit it (author `user`)
    and push HEAD to `branch` of origin as `user`; the push's
    CompletedProcess."""
    path = os.path.join(clone, relpath)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    write_file(path, text)
    git(['add', relpath], cwd=clone, check=True)
    git(['-c', 'user.name=%s' % (user or 'anonymous'), 'commit', '-q',
         '-m', message], cwd=clone, check=True)
    return git(['push', 'origin', 'HEAD:refs/heads/' + branch], user,
               password, cwd=clone)
