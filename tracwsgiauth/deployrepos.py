"""What ``deploy`` writes for the environment's repositories:
apache/repositories.conf (mod_dav_svn and git-http-backend locations
guarded by cgi-bin/repositories.wsgi) and the hooks that tell Trac of
new commits, and what it says about them."""

import os
import re
import shlex
import subprocess
import sys

from trac.admin.api import AdminCommandError
from trac.util.text import printout

from .deployfiles import _render, _write, apache_quote
from .repoauth import prefixes
from .repoperm import RepositoryPolicy
from .repos import GRANTED, READ, url_name

#: Modules repositories.conf loads when missing (cgid: or mod_cgi).
MODULES = ('dav', 'dav_svn', 'cgid', 'env', 'setenvif', 'alias',
           'access_compat')

#: Where Apache's modules may be, first found wins.
MODULE_DIRS = ('/usr/lib/apache2/modules', '/usr/lib64/httpd/modules',
               '/usr/lib/httpd/modules', '/usr/local/apache2/modules')

HOOKS = {'svn': 'post-commit', 'git': 'post-receive'}


def modules_dir():
    """The folder of Apache's modules (with mod_dav.so), or ''."""
    for folder in MODULE_DIRS:
        if os.path.exists(os.path.join(folder, 'mod_dav.so')):
            return folder
    return ''


def git_http_backend():
    """The path of git-http-backend, or its usual place."""
    try:
        exec_path = subprocess.run(['git', '--exec-path'], text=True,
                                   capture_output=True).stdout.strip()
    except OSError:
        exec_path = ''
    return os.path.join(exec_path or '/usr/lib/git-core', 'git-http-backend')


def _servable(repo):
    """Why Apache cannot serve a repository Trac knows, or ''."""
    name = url_name(repo.name)
    if not re.match(r'\A[\w][-\w.]*\Z', name):
        return 'its name is not letters, digits and - . _'
    if apache_quote(repo.dir) is None:
        return 'its folder cannot be written in Apache syntax'
    if repo.kind == 'svn' and not os.path.isdir(os.path.join(repo.dir, 'db')):
        return 'its folder is not the root of a Subversion repository'
    return ''


def path_rules(env, names):
    """The names among `names` of repositories for which ``[svn]
    authz_file`` has rules below the root, when AuthzSourcePolicy uses
    it: Trac's browser honours those, Apache decides per repository."""
    from trac.versioncontrol.svn_authz import AuthzSourcePolicy, parse
    policies = env.config.getlist('trac', 'permission_policies')
    path = env.config.getpath('svn', 'authz_file')
    if AuthzSourcePolicy.__name__ not in policies or not path or \
            not os.path.isfile(path):
        return []
    default = env.config.get('svn', 'authz_module_name')
    modules = parse(path, set(names) | {'', default})
    below = {module for module, paths in modules.items()
             if any(p.rstrip('/') for p in paths)}
    return [name for name in names
            if (name or default) in below or '' in below]


def check_urls(urls):
    """Refuse ``[wsgiauth] svn_url``/``git_url`` values Apache cannot
    serve: not plain URL paths, or one at or below the other."""
    for kind, url in urls.items():
        if not re.match(r'\A/[-\w./~]*[^/]\Z', url) or '//' in url or \
                {'.', '..'} & set(url.split('/')):
            raise AdminCommandError(
                '[wsgiauth] %s_url = %r: a plain URL path, such as /%s '
                '(no . or .. segment, not /)' % (kind, url, kind))
    svn, git = urls['svn'] + '/', urls['git'] + '/'
    if svn.startswith(git) or git.startswith(svn):
        raise AdminCommandError(
            '[wsgiauth] svn_url = %s and git_url = %s: neither may be at '
            'or below the other' % (urls['svn'], urls['git']))


def repositories(env, data):
    """(what repositories.conf serves, notes on what it cannot)."""
    served, notes = [], []
    urls = prefixes(env.config)
    check_urls(urls)
    known = env[RepositoryPolicy].served()
    if {'', 'default'} <= {repo.name for repo in known}:
        notes.append('the repository named "default" and Trac\'s default '
                     'repository share the URL name "default": only Trac\'s '
                     'default repository is served (rename the other)')
        known = [repo for repo in known if repo.name != 'default']
    for name in path_rules(env, [repo.name for repo in known]):
        notes.append('[svn] authz_file has rules below the root of %s: '
                     'Trac\'s browser honours them, Apache decides for the '
                     'whole repository (see README, "Repositories")'
                     % url_name(name))
    for repo in known:
        why = _servable(repo)
        if why:
            notes.append('%s repository %s is not served: %s'
                         % (repo.kind, url_name(repo.name), why))
            continue
        hook = os.path.join(data['target'], 'hooks', url_name(repo.name),
                            HOOKS[repo.kind])
        url = urls[repo.kind].rstrip('/') + '/' + url_name(repo.name)
        served.append(dict(
            repo._asdict(), label=url_name(repo.name), url=url,
            url_regex=re.escape(url),
            dir_comment=' '.join(repo.dir.split()), hook=hook,
            repo_hook=os.path.join(repo.dir, 'hooks', HOOKS[repo.kind])))
    return served, notes


def write_repositories(env, data):
    """Write apache/repositories.conf, cgi-bin/repositories.wsgi and the
    hooks; print what is served, and to whom without credentials."""
    served, notes = repositories(env, data)
    script = os.path.join(os.path.dirname(data['script']),
                          'repositories.wsgi')
    data = dict(data, repositories=served, repo_script=script,
                granted=GRANTED, modules=MODULES, modules_dir=modules_dir(),
                git_http_backend=git_http_backend(),
                trac_admin=os.path.join(os.path.dirname(sys.executable),
                                        'trac-admin'))
    conf = os.path.join(data['apache_dir'], 'repositories.conf')
    _write(script, _render('repositories.wsgi', data), 0o755)
    _write(conf, _render('repositories.conf', data), 0o644)
    for repo in served:
        os.makedirs(os.path.dirname(repo['hook']), 0o755, exist_ok=True)
        _write(repo['hook'], _render(HOOKS[repo['kind']],
                                     dict(data, **repo)), 0o755)
    _report(env, served, notes, conf)


def _report(env, served, notes, conf):
    policy = env[RepositoryPolicy]
    lines = ['Repositories (Include %s):' % conf]
    for repo in served:
        public = policy.decide('anonymous', repo['name'], READ).allowed
        lines.append('  %-28s %s, %s' % (
            repo['url'], repo['kind'], 'ANONYMOUS MAY READ it' if public
            else 'only users Trac lets read it'))
    if not served:
        lines.append('  none (trac-admin ENV repository list)')
    if any(policy.decide('anonymous', r['name'], READ).allowed
           for r in served):
        lines.append('  To keep a repository private, take BROWSER_VIEW and '
                     'FILE_VIEW from anonymous (see README, "Repositories").')
    lines += ['  ' + note for note in notes]
    if served:
        lines.append('  Hooks that tell Trac of new commits; install each:')
        lines += ['    ln -sf %s %s' % (shlex.quote(r['hook']),
                                        shlex.quote(r['repo_hook']))
                  for r in served]
    printout('\n'.join(lines))
