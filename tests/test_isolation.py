"""One environment must not hurt another, nor the Apache process: several
environments in one real Apache with several child processes, trac.ini
saved again and again while clients log in, and an environment whose
PostgreSQL server accepts connections and never answers."""

import os
import threading
import time

import pytest

from tests.harness import (Apache, SilentServer, add_user, auth_location,
                           auth_script, basic_get, docs_folder, edit_ini,
                           make_env, mpm, open_up, public_dir, trac_env)

pytestmark = pytest.mark.apache

#: several Apache children, each with a few threads
CHILDREN = mpm(3, 8)


def _serve(parent, paths):
    """The environments `paths` (name -> path), alice in developers in
    each, behind a group location /<name>/f.txt, in one Apache with
    several children."""
    docs = docs_folder(parent)
    body = CHILDREN + 'AliasMatch "^/([a-z0-9]+)/f.txt" "%s/f.txt"\n' % docs
    for name, path in paths.items():
        if name != 'hung':
            add_user(path, 'alice', 'alice-pw', 'developers')
        script = auth_script(os.path.join(parent, name + '.wsgi'), path)
        body += auth_location('/' + name, script, group='developers')
    open_up(parent)
    apache = Apache(body).start()
    apache.paths = paths
    return apache


def _tally(statuses):
    return {s: statuses.count(s) for s in set(statuses)}


def _crashes(apache):
    return [line for line in apache.error_log().splitlines()
            if 'exit signal' in line or 'Segmentation' in line]


def _load(apache, names, seconds, statuses):
    """Right credentials to every environment from 8 threads."""
    deadline = time.monotonic() + seconds

    def work(i):
        while time.monotonic() < deadline:
            name = names[i % len(names)]
            try:
                status = basic_get(apache.port, '/%s/f.txt' % name,
                                   'alice', 'alice-pw', timeout=15)[0]
            except OSError as e:
                status = type(e).__name__
            statuses.append(status)
            i += 1
    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    return threads


def _saved_under_load(apache, names, seconds):
    """trac.ini of the first of `names` saved again and again while
    clients log in to all; (saves, statuses)."""
    statuses = []
    threads = _load(apache, names, seconds, statuses)
    saves = _save_again_and_again(apache.paths[names[0]], seconds)
    for thread in threads:
        thread.join()
    return saves, statuses


def _save_again_and_again(path, seconds):
    """Save trac.ini every 0.3 s, as the web admin or trac-admin would."""
    deadline = time.monotonic() + seconds
    count = 0
    while time.monotonic() < deadline:
        with trac_env(path) as env:
            env.config.set('wiki', 'saved_by_test', str(count))
            env.config.save()
        count += 1
        time.sleep(0.3)
    return count


@pytest.fixture(scope='module')
def sqlite_site():
    parent = public_dir()
    apache = _serve(parent, {name: make_env(parent, name)
                             for name in ('one', 'two', 'three')})
    yield apache
    apache.stop()


def test_trac_ini_saved_under_load_crashes_nothing(sqlite_site):
    saves, statuses = _saved_under_load(sqlite_site, ['one', 'two', 'three'],
                                        12)
    assert saves >= 20 and len(statuses) > 500
    assert set(statuses) == {200}, _tally(statuses)
    assert _crashes(sqlite_site) == []
    # and a change still counts on the very next request
    path = sqlite_site.paths['two']
    assert basic_get(sqlite_site.port, '/two/f.txt', 'CORP\\alice',
                     'alice-pw')[0] == 401
    edit_ini(path, 'wsgiauth', 'strip_domains', 'CORP')
    assert basic_get(sqlite_site.port, '/two/f.txt', 'CORP\\alice',
                     'alice-pw')[0] == 200


def test_trac_ini_saved_under_load_on_postgres(pg):
    from tests.pg import make_pg_env
    parent = public_dir()
    apache = _serve(parent, {
        'pa': make_pg_env(pg, parent, 'pa', 'iso_a'),
        'pb': make_pg_env(pg, parent, 'pb', 'iso_b', schema='pb')})
    try:
        saves, statuses = _saved_under_load(apache, ['pa', 'pb'], 10)
        assert saves >= 15 and len(statuses) > 300
        assert set(statuses) == {200}, _tally(statuses)
        assert _crashes(apache) == []
    finally:
        apache.stop()


def test_a_hung_database_fails_closed_in_time_and_holds_up_nobody():
    hole = SilentServer()
    parent = public_dir()
    try:
        hung = make_env(parent, 'hung', extra_ini=(
            '\n[wsgiauth]\nconnect_timeout = 2\n'))
        edit_ini(hung, 'trac', 'database',
                 'postgres://trac:pw@127.0.0.1:%d/trac' % hole.port)
        apache = _serve(parent, {'ok': make_env(parent, 'ok'),
                                 'hung': hung})
        try:
            _hung_and_ok(apache, apache.paths['hung'])
        finally:
            apache.stop()
    finally:
        hole.close()


def _timed_get(apache, name, password='alice-pw'):
    started = time.monotonic()
    status = basic_get(apache.port, '/%s/f.txt' % name, 'alice', password,
                       timeout=30)[0]
    return status, time.monotonic() - started


def _hung_and_ok(apache, hung):
    before = [_timed_get(apache, 'ok') for _ in range(50)]
    results = {'hung': [], 'ok': []}

    def hammer(name, count):
        for _ in range(count):
            results[name].append(_timed_get(apache, name))
    threads = [threading.Thread(target=hammer, args=('hung', 2))
               for _ in range(6)] + [
        threading.Thread(target=hammer, args=('ok', 60)) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert {s for s, _ in before + results['ok']} == {200}
    assert {s for s, _ in results['hung']} == {401}
    # the hung one is refused within its connect_timeout (2 s), bounded
    assert max(t for _, t in results['hung']) < 2 + 2
    lines = [line for line in apache.error_log().splitlines()
             if 'tracwsgiauth: login refused for environment %s' % hung
             in line]
    assert len(lines) == 12 and all('did not complete a connection within'
                                    in line for line in lines), lines[:2]
    assert 'pw' not in ' '.join(lines).replace('pwd', '')
    ok = sorted(t for _, t in results['ok'])
    usual = sorted(t for _, t in before)
    print('ok p99 %.1f ms while hung, %.1f ms before' % (
        ok[int(len(ok) * .99) - 1] * 1e3, usual[int(len(usual) * .99) - 1]
        * 1e3))


def test_group_checks_survive_a_graceful_restart(sqlite_site):
    """Apache restarts its daemons (and Trac's process with them) while
    clients keep asking: the new process takes the questions over."""
    import signal
    statuses = []
    threads = _load(sqlite_site, ['one', 'two', 'three'], 6, statuses)
    time.sleep(1.5)
    os.kill(sqlite_site.proc.pid, signal.SIGUSR1)     # apachectl graceful
    for thread in threads:
        thread.join()
    assert len(statuses) > 200
    assert set(statuses) == {200}, _tally(statuses)
    assert _crashes(sqlite_site) == []
