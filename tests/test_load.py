"""10,000 authenticated requests at concurrency 8 through a real Apache,
spread over three environments (two SQLite, one PostgreSQL without
pooling), with right, wrong, unknown and another environment's
credentials on plain and group-protected locations: every answer right,
nothing in the error log but Apache's own refusals, no PostgreSQL
connection left open."""

import os

import pytest

from tests.harness import (Apache, auth_location, auth_script, docs_folder,
                           hammer, make_env, open_up, public_dir,
                           set_password)
from tests.pg import make_pg_env

pytestmark = pytest.mark.apache

REQUESTS = 10000


def test_ten_thousand_requests_over_three_environments(pg):
    parent = public_dir()
    ini = '\n[wsgiauth]\nhash_scheme = md5\n'
    paths = [make_env(parent, 'la', ini), make_env(parent, 'lb', ini),
             make_pg_env(pg, parent, 'lc', 'twa_load', 'lc', ini)]
    docs = docs_folder(parent)
    body = 'AliasMatch "^/l[a-c]/(basic|group)/f.txt" "%s/f.txt"\n' % docs
    for path in paths:
        name = os.path.basename(path)
        set_password(path, 'alice', 'alice-' + name, 'developers')
        set_password(path, 'bob', 'bob-' + name)
        script = auth_script(os.path.join(parent, name + '.wsgi'), path,
                             pooled=name != 'lc')
        body += auth_location('/%s/basic' % name, script)
        body += auth_location('/%s/group' % name, script, 'developers')
    open_up(parent)

    names = [os.path.basename(p) for p in paths]
    kinds = []
    for i, name in enumerate(names):
        other = names[(i + 1) % 3]
        for where, member_only in (('basic', False), ('group', True)):
            url = '/%s/%s/f.txt' % (name, where)
            kinds += [
                ((url, 'alice', 'alice-' + name), 200),
                ((url, 'bob', 'bob-' + name), 401 if member_only else 200),
                ((url, 'alice', 'alice-' + other), 401),
                ((url, 'alice', 'wrong'), 401),
                ((url, 'mallory', 'alice-' + name), 401),
                ((url, 'CORP\\alice', 'alice-' + name), 401),
            ]
    cases = [kinds[i % len(kinds)] for i in range(REQUESTS)]
    apache = Apache(body).start()
    try:
        statuses = hammer(apache.port, [c for c, _ in cases], concurrency=8)
    finally:
        apache.stop()
    wrong = [(case, got, want) for (case, want), got
             in zip(cases, statuses, strict=True) if got != want]
    assert len(statuses) == REQUESTS
    assert not wrong, (len(wrong), wrong[:5])
    log = apache.error_log()
    unexpected = [line for line in log.splitlines()
                  if ':error]' in line or ':crit]' in line
                  or ':alert]' in line or 'Traceback' in line]
    # Apache's own refusals only: no thread, Python or tracwsgiauth errors
    unexpected = [line for line in unexpected
                  if not any(code in line for code in
                             ('AH01617', 'AH01618', 'AH01631', 'WSGI0060'))]
    assert not unexpected, unexpected[:5]
    assert pg.connections('twa_load') == 0
