"""Throttling of client addresses that fail to log in, with no Trac
import: after `limit` failed logins from one address within `window`
seconds, every login from it is refused for `duration` seconds.

One `Throttle` in Trac's process counts the failures all Apache child
processes report (see `guard`); each child keeps one too, for the
addresses it has been told are throttled and, while Trac's process
cannot be reached, for its own count.
"""

import collections
import functools
import ipaddress


@functools.lru_cache(maxsize=4096)
def client_address(text):
    """One spelling per client: an IPv4-mapped IPv6 address as IPv4,
    IPv6 compressed; anything else as it is."""
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return text or ''
    mapped = getattr(address, 'ipv4_mapped', None)
    return str(mapped if mapped is not None else address)


class Throttle(object):
    """Failures per address within the window, and who is throttled
    until when (times: seconds since the epoch). `limit` 0: off."""

    #: At most this many addresses are tracked; beyond, the oldest go.
    size = 100000

    def __init__(self, limit, window, duration):
        self.limit, self.window, self.duration = limit, window, duration
        self._failures = collections.OrderedDict()   # address -> [times]
        self._until = {}                             # address -> time

    def limits(self):
        return self.limit, self.window, self.duration

    def refused(self, address, now):
        """Whether logins from `address` are refused now."""
        until = self._until.get(address)
        if until is None:
            return False
        if until > now:
            return True
        del self._until[address]
        return False

    def until(self, address, now):
        """Until when `address` is throttled, or None."""
        return self._until[address] if self.refused(address, now) else None

    def failed(self, address, now, count=1):
        """Count `count` failures of `address` at `now`; the time until
        which it is throttled when this throttles it, else None."""
        if self.limit < 1 or self.refused(address, now):
            return None
        times = self._failures.pop(address, [])
        times = [t for t in times if t > now - self.window]
        times += [now] * min(count, self.limit)
        if len(times) >= self.limit:
            self._until[address] = now + self.duration
            return self._until[address]
        self._failures[address] = times
        while len(self._failures) > self.size:
            self._failures.popitem(last=False)
        return None

    def active(self, now):
        """{address: until} of every address throttled now."""
        return {address: until for address, until in self._until.items()
                if until > now}

    def throttle(self, address, until):
        """Take over what another process decided."""
        if until > self._until.get(address, 0):
            self._until[address] = until
            self._failures.pop(address, None)
