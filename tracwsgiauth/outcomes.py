"""Accepted logins remembered while the database reads the same, with no
Trac import.

A repository client sends the same credential with every one of the
hundreds of requests of an ``svn checkout``. Checking it means reading
the account and verifying the password (remembered by
`login.VerifiedCache`), then the account's state -- work that gives the
same answer as long as nothing in the database changed. `Outcomes`
keeps that answer, keyed by a MAC of what the client sent, under the
version of the database it was read at (`sqlite.SQLiteReader.version`):
any commit by anyone -- a new password, a lock, a removed user, a
permission -- is a new version, and the next request checks afresh.

Only accepted logins are kept, and not:

* where the database cannot tell its version cheaply (PostgreSQL, SQLite
  in WAL mode): every login is checked;
* where verified credentials are not remembered (``[wsgiauth]
  cache_size`` or ``cache_ttl`` below 1);
* for an account with failed logins counted, which a right login ends
  (a write that must not be skipped).

An entry lives no longer than the verification of its password is
remembered (``cache_ttl`` after the hash was computed), its app password
is valid, or its app password may go without its "last used" being
written.
Refusals are never kept: each is checked, counted and delayed.
"""

import hashlib
import os
import time

from .apptokens import TOUCH_EVERY
from .lockout import LOCK_ATTRIBUTES


class Outcomes(object):
    """The accepted logins of one environment as its trac.ini is now
    (`login`: its `login.Login`), remembered (see the module)."""

    size = 1000

    def __init__(self, login):
        self._login = login
        # keyed once: each key is a copy of it
        self._mac = hashlib.blake2b(key=os.urandom(32), digest_size=32)
        # (database version, {key: (deadline, deadline by the wall
        # clock, outcome)}): the entries of one version, replaced whole
        # by another's (they are of no use after a commit, and each
        # holds that version's rows)
        self._memo = (None, {})

    def key(self, user, password, kind):
        """What stands for a credential as the client sent it (never the
        password itself) at a location of `kind`; the user name's length
        leads, so no other split of the same text stands for it."""
        data = '%d\0%s\0%s\0%s' % (len(user), user, password, kind)
        mac = self._mac.copy()
        mac.update(data.encode('utf-8', 'surrogatepass'))
        return mac.digest()

    def get(self, key, version):
        """The outcome remembered for `key` at database `version`, or
        None."""
        seen, entries = self._memo
        found = entries.get(key) if version == seen else None
        if found is None or found[0] <= time.monotonic() or \
                found[1] <= time.time():
            return None
        return found[2]

    def put(self, key, version, outcome, password, attrs, token=None):
        """Remember `outcome` of the login of `outcome.name` accepted for
        `password` (the account's, or the app password of row `token`)
        whose account read `attrs` at database `version`, where the
        module allows it. A login checked at an older version than the
        last one remembered swaps the memo back to it: the next request
        checks afresh."""
        lifetime = self._login.remembered_for(outcome.name, password,
                                              attrs, token)
        ends = self._ends(attrs, token)
        if version is None or lifetime <= 0 or ends <= time.time():
            return
        entry = (time.monotonic() + lifetime, ends, outcome)
        seen, entries = self._memo
        if version != seen:
            self._memo = (version, {key: entry})
        elif len(entries) < self.size or key in entries:
            entries[key] = entry

    def _ends(self, attrs, token):
        """When, by the wall clock (an app password's expiry is), the
        outcome must be checked afresh; 0 where it must be each time."""
        if self._login.settings.lock.max_count > 0 and any(
                attribute in attrs for attribute in LOCK_ATTRIBUTES):
            return 0
        if token is None:
            return float('inf')
        ends = (token['last_used'] or 0) + TOUCH_EVERY
        return min(ends, token['expires']) if token['expires'] else ends
