"""Brute-force protection of the logins Apache's child processes check,
with no Trac import.

* Per account, AccountManager's lock: a wrong password of a known user
  counts as a failed login exactly as its AccountGuard counts one (the
  same ``session_attribute`` values, read and written in the
  environment's database, so every process and AccountManager's web
  form share them); a right one ends the count. The writes happen on a
  thread of their own, after the answer: a wrong password costs the
  client what a right one costs (no timing tells them apart, also while
  the account is locked), and a flood of them becomes one transaction
  per account at a time, whatever the rate.
* Per client address (`throttle`): failures, for unknown users too, are
  reported to Trac's process (`policy`, op ``failures``), which counts
  them for all children and says which addresses are throttled; while it
  cannot be reached, each child counts its own.
* Every refusal, lock and throttle can be written to an audit log
  (`audit`); a lock and a throttle also make one line in Apache's error
  log at ``warn``.
"""

import os
import threading
import time

from . import audit, tables
from .audit import warn
from .apptokens import TOUCH, TOUCH_EVERY
from .lockout import LOCK_ATTRIBUTES, attempts
from .login import DEFAULTS
from .addresses import AddressReports
from .throttle import Throttle

#: While an account is locked, its failures (which only prolong the
#: lock) are written at most once in this many seconds per process.
LOCKED_EVERY = 1.0

#: Most events waiting for the writer per account; more are counted
#: without an entry each in the attempt log (the account is locked long
#: before).
PENDING_PER_ACCOUNT = 1000


def _apply(lock, attrs, events, now):
    """The attribute changes AccountGuard makes for `events` in order
    ((address, time) for a failure, (address, time, 'locked') for one
    while the account was locked, None for a right login, a number for
    that many failures beyond PENDING_PER_ACCOUNT), whether they locked
    the account, and whether it is locked after them.

    A failure made while the account was locked, applied to an account
    that as it reads now was not locked at that time, is dropped (with
    the numbers after it): an administrator unlocked it since, and
    AccountManager, which writes at once, would have counted the failure
    before the unlock, which then ended it. A lock that ended by itself
    still holds at that time, and the failure prolongs it."""
    current, changes, released = dict(attrs), {}, False
    for event in events:
        if event is None:
            delta = {key: None for key in LOCK_ATTRIBUTES if key in current}
        elif isinstance(event, int):
            if released:
                continue
            delta = lock.failure(current, now, None, event)
        elif len(event) > 2 and not lock.locked(current, event[1]):
            released = True
            continue
        else:
            released = False
            delta = lock.failure(current, event[1], event[0])
        changes.update(delta)
        for key, value in delta.items():
            if value is None:
                current.pop(key, None)
            else:
                current[key] = value
    after = lock.locked(current, now)
    return changes, after and not lock.locked(attrs, now), after


class Writer(object):
    """The thread that writes the account changes of failed and right
    logins, for every environment of this process."""

    def __init__(self):
        self._pending = {}        # (reader, name) -> [lock, events, report]
        self._touches = {}        # (reader, app password id) -> (address, t)
        self._quiet = {}          # (reader, name) -> not written before
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._thread = None

    def add(self, reader, lock, name, event, report):
        """Queue `event` (see `_apply`) of account `name`; `report(
        'locked', name, changes)` is called when it locks it."""
        with self._lock:
            entry = self._pending.setdefault((reader, name),
                                             [lock, [], report])
            events = entry[1]
            if len(events) < PENDING_PER_ACCOUNT:
                events.append(event)
            elif isinstance(events[-1], int):
                events[-1] += 1     # a flood: counted, not logged each
            else:
                events.append(1)
            self._start()
        self._wake.set()

    def touch(self, reader, token_id, address):
        """Queue "last used" of an app password: now, from `address`."""
        with self._lock:
            self._touches[(reader, token_id)] = (address, int(time.time()))
            self._start()
        self._wake.set()

    def _start(self):
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(
                target=self._run, name='tracwsgiauth guard', daemon=True)
            self._thread.start()

    def _run(self):
        while True:
            self._wake.wait(self._next_due())
            self._wake.clear()
            batch, touches = self._take()
            for key, (lock, events, report) in batch.items():
                if self._write(key[0], key[1], lock, events, report):
                    self._quiet[key] = time.monotonic() + LOCKED_EVERY
            for (reader, token_id), (address, when) in touches.items():
                try:
                    reader.write(lambda run, args=(
                        when, address, token_id, when - TOUCH_EVERY):
                        run(TOUCH, args))
                except Exception as e:
                    warn('"last used" of an app password not written: %s'
                         % ' '.join(str(e).split())[:200])

    def _take(self):
        """What is due now: every change but those of accounts written
        less than LOCKED_EVERY ago while locked, which wait."""
        now = time.monotonic()
        with self._lock:
            touches, self._touches = self._touches, {}
            due = {key: entry for key, entry in self._pending.items()
                   if self._quiet.get(key, 0) <= now}
            for key in due:
                del self._pending[key]
                self._quiet.pop(key, None)
        return due, touches

    def _next_due(self):
        """Seconds until a waiting change is due, or None."""
        with self._lock:
            waits = [self._quiet[key] for key in self._pending
                     if key in self._quiet]
        return max(min(waits) - time.monotonic(), 0.01) if waits else None

    def _write(self, reader, name, lock, events, report):
        """Write the changes of `events`; whether the account is locked
        after them."""
        now = time.time()
        found = []

        def compute(attrs):
            changes, newly, after = _apply(lock, attrs, events, now)
            found[:] = [newly, after]
            return changes
        try:
            attrs, changes = tables.update_account(reader, name, compute)
        except Exception as e:
            report('unrecorded', name, {'error': '%s: %s' % (
                type(e).__name__, ' '.join(str(e).split())[:200])})
            return False
        if found and found[0]:
            report('locked', name, dict(attrs, **changes))
        return bool(found and found[1])

    def flush(self, timeout=10):
        """Wait until every queued change is written (tests, shutdown)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                idle = not self._pending and not self._touches and \
                    not self._wake.is_set()
            if idle:
                time.sleep(0.05)        # the batch being written
                with self._lock:
                    if not self._pending and not self._touches:
                        return True
            time.sleep(0.01)
        return False


#: One per process.
writer = Writer()


class Guard(object):
    """The protection of one environment's logins in this process: its
    options as trac.ini now says (`configure`), kept across reloads."""

    def __init__(self, env_path):
        self.env_path = env_path
        self.audit_log = ''
        self.failure_delay = DEFAULTS['failure_delay']
        self._addresses = None

    def configure(self, config, timeout):
        """Read the ``[wsgiauth]`` options of the guard from `config`."""
        self.audit_log = audit_path(self.env_path, config)
        self.failure_delay = max(0, config.getint(
            'wsgiauth', 'failure_delay', DEFAULTS['failure_delay']))
        limits = address_limits(config)
        if self._addresses is None or \
                self._addresses.throttle.limits() != limits:
            self._addresses = AddressReports(
                self.env_path, Throttle(*limits), timeout, self.report)
        self._addresses.timeout = timeout

    def recorder(self, reader, lock):
        """`record(name, event)` for `login.Login`: queues the account
        changes AccountGuard makes (nothing while its guard is off)."""
        def record(name, event):
            if lock.max_count > 0:
                writer.add(reader, lock, name, event, self.report)
        return record

    def touch(self, reader, token_id, token, address):
        """Write when and from where an app password was used, at most
        once a minute (by what its row says)."""
        if (token.get('last_used') or 0) < time.time() - TOUCH_EVERY:
            writer.touch(reader, token_id, address)

    def refused(self, address):
        """Whether logins from `address` are throttled now."""
        return self._addresses.refused(address)

    def failure(self, environ, sent, name, address, reason):
        """A refused login: counted for its address, audited, and
        answered after ``[wsgiauth] failure_delay`` seconds. The wait
        holds this request's thread, not the GIL: a client that guesses
        waits for each answer, so a connection guesses at most once per
        delay, and guesses take that little of the machine's time."""
        self._addresses.failed(address)
        audit.record(self.audit_log, 'refused', self.env_path, sent, name,
                     address, environ.get('REQUEST_URI', '').split('?')[0],
                     reason)
        if self.failure_delay:
            time.sleep(self.failure_delay)

    def report(self, event, subject, details):
        """What the writer and the address reports tell: 'locked' (user,
        its attributes), 'throttled' (address), 'unrecorded' (user)."""
        if event == 'locked':
            tries = attempts(details.get('failed_logins'))
            last = tries[-1][0] if tries else None
            warn('account %r of %s locked after %s failed logins (the last '
                 'from %s)' % (subject, self.env_path,
                               details.get('failed_logins_count'), last))
            audit.record(self.audit_log, 'locked', self.env_path, None,
                         subject, last, None, 'failed logins')
        elif event == 'throttled':
            count, window, _ = details['limits']
            warn('address %s throttled for %s until %s after %d failed '
                 'logins within %d s (counted by %s)' % (
                     subject, self.env_path, time.strftime(
                         '%H:%M:%S', time.localtime(details['until'])),
                     count, window, details.get('where')))
            audit.record(self.audit_log, 'throttled', self.env_path, None,
                         None, subject, None, 'failed logins')
        else:
            warn('a failed login of %r could not be counted in %s: %s'
                 % (subject, self.env_path, details.get('error')))


def audit_path(env_path, config):
    """``[wsgiauth] audit_log`` as a path (relative: to the
    environment's folder), or ''."""
    path = config.get('wsgiauth', 'audit_log', '')
    return os.path.join(env_path, path) if path else ''


def address_limits(config):
    """(failures, window, duration) of ``[wsgiauth]``."""
    return tuple(config.getint('wsgiauth', option, DEFAULTS[option])
                 for option in ('address_failures', 'address_window',
                                'address_block_time'))


_guards = {}


def guard_for(env_path):
    """The one `Guard` of this process for an environment."""
    return _guards.setdefault(env_path, Guard(env_path))
