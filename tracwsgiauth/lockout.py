"""AccountManager's account lock, with no Trac import: the
``[account-manager]`` lock options read the way its AccountGuard reads
them, whether the session attributes it writes say an account is locked
now, and what it writes for a failed or a right login."""

import collections
import re

#: AccountManager writes ``failed_logins`` as a Python repr of a list of
#: dicts; read only the ``time`` numbers out of it, never evaluate it.
_ATTEMPT_TIME = re.compile(r"""['"]time['"]\s*:\s*(\d{1,12})\b""")

#: One entry of that list: its address (a quoted string or None) and time.
_ATTEMPT = re.compile(r"""\{\s*['"]ipnr['"]\s*:\s*(None|'[^'\\]*'|"[^"\\]*")"""
                      r"""\s*,\s*['"]time['"]\s*:\s*(\d{1,12})\s*\}""")

#: The attributes of the lock; a right login removes them.
LOCK_ATTRIBUTES = ('failed_logins', 'failed_logins_count', 'lock_count')

#: A lock option AccountManager cannot read either: accounts whose lock
#: state depends on it are refused (fail closed).
INVALID = object()


def _integer(text, default):
    """An ``[account-manager]`` integer read as Trac's IntOption reads it
    (empty is 0), or INVALID."""
    if text is None:
        return default
    try:
        return int(text or 0)
    except ValueError:
        return INVALID


def _progression(text):
    """``user_lock_time_progression`` as AccountGuard reads it: below 1
    or unreadable is 1; infinite makes AccountGuard fail (INVALID)."""
    try:
        value = float(text if text is not None else 1)
    except ValueError:
        return 1
    if value != value:          # NaN: AccountGuard falls back to 1
        return 1
    if value in (float('inf'), float('-inf')):
        return INVALID
    return max(value, 1)


class LockPolicy(collections.namedtuple(
        'LockPolicy', 'max_count lock_time max_time progression')):
    """AccountManager's ``[account-manager]`` lock options, read the way
    its AccountGuard reads them (and fixes them: ``user_lock_max_time``
    below 1 is 86400, a negative ``login_attempt_max_count`` turns the
    guard off)."""

    @classmethod
    def from_options(cls, get):
        """`get(name)`: the raw text of an option, or None when unset.
        Raises ValueError when ``login_attempt_max_count`` is not a
        number: AccountManager then refuses every login, and so do we."""
        max_count = _integer(get('login_attempt_max_count'), 0)
        if max_count is INVALID:
            raise ValueError('[account-manager] login_attempt_max_count '
                             'is not an integer')
        max_time = _integer(get('user_lock_max_time'), 86400)
        if max_time is not INVALID and max_time < 1:
            max_time = 86400
        return cls(max_count, _integer(get('user_lock_time'), 0), max_time,
                   _progression(get('user_lock_time_progression')))

    def locked(self, attrs, now):
        """AccountGuard.user_locked for these attributes, read-only; True
        also where AccountGuard would fail on a value it cannot read."""
        if self.max_count < 1 or 'failed_logins_count' not in attrs:
            return False
        try:
            count = int(attrs['failed_logins_count'])
        except ValueError:
            return True         # unreadable: fail closed
        if count < self.max_count or not attrs.get('known'):
            return False        # AccountManager only locks known users
        if self.lock_time is INVALID:
            return True
        if self.lock_time == 0:
            return True         # until an administrator unlocks it
        attempts = _ATTEMPT_TIME.findall(attrs.get('failed_logins') or '')
        if not attempts or INVALID in (self.max_time, self.progression):
            return True
        return int(attempts[-1]) + self._lock_time(attrs) > now

    def release(self, attrs):
        """When the lock of a locked account ends (seconds since the
        epoch), or None when only an administrator ends it."""
        tries = attempts(attrs.get('failed_logins'))
        if self.lock_time in (0, INVALID) or not tries or \
                INVALID in (self.max_time, self.progression):
            return None
        return tries[-1][1] + self._lock_time(attrs)

    def _lock_time(self, attrs):
        try:
            lock_count = int(attrs.get('lock_count') or 0)
        except ValueError:
            lock_count = 0
        length = self.lock_time * self.progression ** (lock_count - 1)
        return min(length, self.max_time)

    def failure(self, attrs, now, address, times=1):
        """The attributes AccountGuard writes for a failed login (`times`
        of them) of the account `attrs` describe, from `address` at
        `now`: the count and the attempt log, and one more lock per
        failure when it is locked after it ({} when the guard is off, the
        user has no authenticated session, or the count cannot be read:
        then it stays locked)."""
        if self.max_count < 1 or not attrs.get('known'):
            return {}
        try:
            count = int(attrs.get('failed_logins_count') or 0) + times
        except ValueError:
            return {}
        tries = attempts(attrs.get('failed_logins'))
        del tries[:max(len(tries) - self.max_count, 0)]
        tries.append((address, int(now)))
        changes = {'failed_logins_count': str(count),
                   'failed_logins': attempts_text(tries)}
        if self.locked(dict(attrs, **changes), now):
            try:
                lock_count = int(attrs.get('lock_count') or 0)
            except ValueError:
                lock_count = 0
            changes['lock_count'] = str(lock_count + times)
        return changes


def attempts(text):
    """The (address, time) entries of a ``failed_logins`` value, read
    without evaluating it; entries of another shape are left out."""
    found = []
    for address, when in _ATTEMPT.findall(text or ''):
        found.append((None if address == 'None' else address[1:-1],
                      int(when)))
    return found


def attempts_text(tries):
    """``failed_logins`` as AccountGuard writes it (a Python repr of a
    list of dicts, which it reads back with eval)."""
    return str([{'ipnr': address, 'time': when} for address, when in tries])
