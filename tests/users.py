"""The users, groups and account states the tests share."""

import time

from tests.harness import secret
from tracwsgiauth import hashes

REALM = 'trac'

#: name -> (password, scheme)
USERS = {
    'alice': ('secret', 'bcrypt'),
    'bob': ('hunter2', 'md5'),
    'carol': ('carol-pw', 'sha512'),     # locked
    'dave': ('dave:pw', 'htdigest'),     # Digest-capable, ':' in password
    'eve': ('eve-pw', 'sha'),            # awaiting approval
    'frank': ('frank-pw', 'sha256'),     # e-mail not verified
    'jürgen': ('pässword', 'htdigest'),  # non-ASCII over the wire
    'BOB': ('upper-pw', 'crypt'),        # looks like a permission action
}

for _password, _ in USERS.values():
    secret(_password)

GROUPS = [('alice', 'developers'), ('developers', 'staff'),
          ('authenticated', 'everyone'), ('jürgen', 'developers'),
          ('BOB', 'developers'), ('developers', 'WIKI_ADMIN')]


def populate(env):
    now = int(time.time())
    with env.db_transaction as db:
        for name, (password, scheme) in USERS.items():
            db("INSERT INTO session (sid, authenticated, last_visit) "
               "VALUES (%s, 1, %s)", (name, now))
            db("INSERT INTO session_attribute VALUES (%s, 1, 'password', %s)",
               (name, hashes.make(scheme, name, password, REALM)))
        for name, attr, value in [
                ('carol', 'failed_logins_count', '5'),
                ('carol', 'failed_logins',
                 repr([{'ipnr': '127.0.0.1', 'time': now}])),
                ('eve', 'approval', 'pending'),
                ('frank', 'email_verification_token', 'abc123')]:
            db("INSERT INTO session_attribute VALUES (%s, 1, %s, %s)",
               (name, attr, value))
        for subject, action in GROUPS:
            db("INSERT INTO permission VALUES (%s, %s)", (subject, action))
    env.config.set('account-manager', 'login_attempt_max_count', '3')
    env.config.set('account-manager', 'user_lock_time', '3600')
    env.config.set('wsgiauth', 'strip_domains', 'CORP')
    env.config.save()
