"""Real PostgreSQL and PgBouncer for the tests.

Each `Postgres` is a throwaway cluster (Debian's server binaries, found
under /usr/lib/postgresql/*/bin) in a fresh folder under /tmp, listening
on a free port of 127.0.0.1 with trust authentication; `PgBouncer` is
Debian's pgbouncer in front of it. As root both run as the `postgres`
user (initdb and pgbouncer refuse root). With CI set, a missing server
fails the tests instead of skipping them.
"""

import glob
import os
import pwd
import re
import shutil
import signal
import subprocess
import threading
import time

from tests.harness import (free_port, make_env, needs, public_dir, read_text,
                           require, secret, stop_group, wait_port)

PG_BIN = (sorted(glob.glob('/usr/lib/postgresql/*/bin/postgres'),
                 key=lambda p: int(p.split('/')[4]))[-1:] or [None])[0]
PG_BIN = PG_BIN and os.path.dirname(PG_BIN)
PGBOUNCER = shutil.which('pgbouncer', path='/usr/sbin:' + os.environ['PATH'])
RUN_AS = 'postgres' if os.geteuid() == 0 else None
#: the PgBouncer recipes (and their SQL) this project ships
CONTRIB = os.path.join(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))), 'contrib', 'pgbouncer')


def _as_server_user(args):
    return ['runuser', '-u', RUN_AS, '--'] + args if RUN_AS else args


def _give(path):
    if RUN_AS:
        pw = pwd.getpwnam(RUN_AS)
        for root, _dirs, files in os.walk(path):
            os.chown(root, pw.pw_uid, pw.pw_gid)
            for name in files:
                os.chown(os.path.join(root, name), pw.pw_uid, pw.pw_gid)


def recipe(name):
    """The text of one of contrib/pgbouncer's files."""
    with open(os.path.join(CONTRIB, name)) as f:
        return f.read()


class Postgres(object):
    """A throwaway PostgreSQL cluster."""

    def __init__(self, max_connections=100):
        needs('postgres', 'PostgreSQL')
        require(PG_BIN, 'PostgreSQL server (apt-get install postgresql)')
        import psycopg2  # noqa: F401 -- fail early when it is missing
        self.dir = public_dir('twa-pg-')
        self.data = os.path.join(self.dir, 'data')
        os.mkdir(os.path.join(self.dir, 'sock'))
        _give(self.dir)
        self.port = free_port()
        self.max_connections = max_connections
        subprocess.run(_as_server_user([
            os.path.join(PG_BIN, 'initdb'), '-D', self.data, '-A', 'trust',
            '-U', 'postgres', '--no-sync', '-E', 'UTF8',
            '--locale=C.UTF-8']), check=True, capture_output=True)

    def _ctl(self, *args):
        return subprocess.run(_as_server_user(
            [os.path.join(PG_BIN, 'pg_ctl'), '-D', self.data] + list(args)),
            capture_output=True, text=True, timeout=60)

    def start(self):
        options = ('-p %d -c listen_addresses=127.0.0.1 '
                   '-c unix_socket_directories=%s -c fsync=off '
                   '-c max_connections=%d -c full_page_writes=off' % (
                       self.port, os.path.join(self.dir, 'sock'),
                       self.max_connections))
        proc = self._ctl('-l', os.path.join(self.dir, 'log'), '-w',
                         '-o', options, 'start')
        assert proc.returncode == 0, proc.stdout + proc.stderr + self.log()
        return self

    def stop(self):
        self._ctl('-m', 'fast', '-w', 'stop')

    def log(self):
        return read_text(os.path.join(self.dir, 'log'))

    def url(self, database, schema=None, user='postgres', port=None,
            password=None):
        if password:
            user += ':' + secret(password)
        url = 'postgres://%s@127.0.0.1:%d/%s' % (user, port or self.port,
                                                 database)
        return url + ('?schema=%s' % schema if schema else '')

    def connect(self, database='postgres', user='postgres', port=None):
        import psycopg2
        cnx = psycopg2.connect(host='127.0.0.1', port=port or self.port,
                               user=user, dbname=database, connect_timeout=5)
        cnx.autocommit = True
        return cnx

    def sql(self, statement, args=None, database='postgres'):
        cnx = self.connect(database)
        try:
            with cnx.cursor() as cursor:
                cursor.execute(statement, args)
                return cursor.fetchall() if cursor.description else None
        finally:
            cnx.close()

    def create_database(self, name):
        if not self.sql('SELECT 1 FROM pg_database WHERE datname=%s',
                        (name,)):
            self.sql('CREATE DATABASE "%s"' % name)

    def role_per_environment(self, name, database='trac'):
        """contrib/pgbouncer/role-per-environment.sql for environment
        `name`: login role trac_<name> (password <name>-secret) owning
        schema <name> of `database`. The role's URL options."""
        password = secret(name + '-secret')
        subprocess.run(
            [os.path.join(PG_BIN, 'psql'), '-q', '-h', '127.0.0.1', '-p',
             str(self.port), '-U', 'postgres', '-d', database, '-v',
             'env=' + name, '-v', 'password=' + password, '-f',
             os.path.join(CONTRIB, 'role-per-environment.sql')],
            check=True, capture_output=True)
        return database, name, 'trac_' + name, password

    def connections(self, database=None, user=None):
        """Client connections other than this query's own."""
        query = ("SELECT count(*) FROM pg_stat_activity "
                 "WHERE backend_type='client backend' "
                 "AND pid <> pg_backend_pid()")
        args = []
        if database:
            query += ' AND datname=%s'
            args.append(database)
        if user:
            query += ' AND usename=%s'
            args.append(user)
        return self.sql(query, args)[0][0]


class Peak(object):
    """The most client connections `pg` had (in `databases`, or in all)
    while the block ran; a full server counts as `full`."""

    def __init__(self, pg, databases=None, full=None):
        self.pg, self.databases, self.full = pg, databases, full
        self.most = 0
        self._stop = threading.Event()

    def _count(self):
        if self.databases is None:
            return self.pg.connections()
        return sum(self.pg.connections(db) for db in self.databases)

    def _watch(self):
        while not self._stop.is_set():
            try:
                self.most = max(self.most, self._count())
            except Exception:
                if self.full is None:
                    raise
                self.most = max(self.most, self.full)
            time.sleep(0.02)

    def __enter__(self):
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


BOUNCER_INI = """
[databases]
{databases}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
auth_type = trust
auth_file = {dir}/userlist.txt
admin_users = postgres
pool_mode = {pool_mode}
default_pool_size = {pool_size}
max_client_conn = 500
server_lifetime = 3600
ignore_startup_parameters = extra_float_digits
logfile = {dir}/pgbouncer.log
pidfile = {dir}/pgbouncer.pid
"""


class PgBouncer(object):
    """Debian's PgBouncer in front of a `Postgres`.

    Either `recipe`, the text of one of contrib/pgbouncer's ini files
    (its server port, listen port and file paths are moved to this test's
    own), or `databases`, mapping PgBouncer database names to connection
    options (``dbname=x``). `users` maps login roles to their passwords
    (for auth_file).
    """

    def __init__(self, pg, recipe=None, databases=None,
                 users=None, pool_mode='transaction',
                 pool_size=4, settings=()):
        if users is None:
            users = {'postgres': ''}
        for password in users.values():
            secret(password)
        needs('postgres', 'PgBouncer')
        require(PGBOUNCER, 'PgBouncer (apt-get install pgbouncer)')
        self.pg = pg
        self.dir = public_dir('twa-pgb-')
        self.port = free_port()
        with open(os.path.join(self.dir, 'userlist.txt'), 'w') as f:
            f.write(''.join('"%s" "%s"\n' % item for item in users.items()))
        if recipe is None:
            lines = ['%s = host=127.0.0.1 port=%d %s' % (name, pg.port, opts)
                     for name, opts in databases.items()]
            text = BOUNCER_INI.format(
                databases='\n'.join(lines), port=self.port, dir=self.dir,
                pool_mode=pool_mode, pool_size=pool_size)
        else:
            text = recipe.replace('port=5432', 'port=%d' % pg.port)
            if databases:
                lines = ''.join('%s = host=127.0.0.1 port=%d %s\n' % (
                    name, pg.port, opts) for name, opts in databases.items())
                text = re.sub(r'(?ms)^\[databases\]\n.*?\n\n',
                              '[databases]\n' + lines + '\n', text)
            for key, value in [
                    ('listen_port', str(self.port)),
                    ('auth_file', self.dir + '/userlist.txt'),
                    ('logfile', self.dir + '/pgbouncer.log'),
                    ('pidfile', self.dir + '/pgbouncer.pid')] + \
                    list(dict(settings).items()):
                text, found = re.subn(r'(?m)^%s = .*$' % key,
                                      '%s = %s' % (key, value), text)
                assert found <= 1, key
                if not found:   # [pgbouncer] is the last section
                    text = text.rstrip('\n') + '\n%s = %s\n' % (key, value)
        self.ini = os.path.join(self.dir, 'pgbouncer.ini')
        with open(self.ini, 'w') as f:
            f.write(text)
        _give(self.dir)
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen(
            _as_server_user([PGBOUNCER, self.ini]),
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True)
        wait_port(self.port, self.proc, 'pgbouncer')
        return self

    def stop(self):
        stop_group(self.proc, signal.SIGINT, 10)

    def url(self, database, schema=None, user='postgres', password=None):
        return self.pg.url(database, schema, user, self.port, password)

    def server_connections(self):
        """PostgreSQL connections PgBouncer holds (the only clients that
        connect to the server through TCP other than this query)."""
        return self.pg.connections()

    def log(self):
        return read_text(os.path.join(self.dir, 'pgbouncer.log'))


def make_pg_env(pg, parent, name, database, schema=None, extra_ini='',
                url=None):
    """A real Trac environment whose database is on `pg` (created when
    missing), in `schema` when given."""
    pg.create_database(database)
    return make_env(parent, name, extra_ini=extra_ini,
                    database=url or pg.url(database, schema))
