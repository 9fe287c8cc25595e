"""Failed logins per client address, reported by Apache's children to
Trac's process, which counts them for all of them (`throttle`) and
writes the throttled addresses where every child looks before a login.
No Trac import."""

import json
import os
import threading
import time

from . import policy


class AddressReports(object):
    """Failures per address, reported to Trac's process in batches by a
    thread of their own; what it answers throttles addresses here."""

    def __init__(self, env_path, throttle, timeout, report):
        self.env_path, self.throttle = env_path, throttle
        self.timeout, self._report = timeout, report
        self._counts = {}
        self._unsent = {}       # counted here while Trac's process was away
        self._seen = None
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._thread = None

    def refused(self, address):
        """Whether `address` is throttled, as Trac's process last wrote
        for all children (`throttle_file`) or this process found."""
        if self.throttle.limit < 1:
            return False
        self._read_shared()
        with self._lock:
            return self.throttle.refused(address, time.time())

    def _read_shared(self):
        path = throttle_file(self.env_path)
        try:
            found = os.stat(path)
        except OSError:
            return
        # each version is a new file (os.replace), but a freed inode is
        # soon reused and modification times move in coarse ticks: a file
        # written in the last second is read again whatever its stamp
        stamp = (found.st_ino, found.st_mtime_ns, found.st_size)
        if stamp == self._seen and found.st_mtime < time.time() - 1:
            return
        self._seen = stamp
        try:
            with open(path, encoding='utf-8') as f:
                shared = json.load(f)
            with self._lock:
                for address, until in shared.items():
                    self.throttle.throttle(str(address), float(until))
        except (OSError, ValueError, AttributeError, TypeError):
            pass        # being replaced: read at the next look

    def failed(self, address):
        """Count a failed login from `address` (reported later)."""
        if self.throttle.limit < 1:
            return
        with self._lock:
            self._counts[address] = self._counts.get(address, 0) + 1
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name='tracwsgiauth throttle',
                    daemon=True)
                self._thread.start()
        self._wake.set()

    def _run(self):
        while True:
            self._wake.wait(1 if self._unsent else None)
            self._wake.clear()
            with self._lock:
                counts, self._counts = self._counts, {}
            self._send(counts)

    def _send(self, counts):
        merged = dict(self._unsent)
        for address, count in counts.items():
            merged[address] = merged.get(address, 0) + count
        try:
            answer = policy.ask(self.env_path, self.timeout, op='failures',
                                failures=merged)
            self._unsent = {}
        except Exception:
            # Trac's process is away: count here, and tell it again later
            answer, self._unsent = None, dict(list(merged.items())[:10000])
        now = time.time()
        with self._lock:
            if answer is None:
                for address, count in counts.items():
                    until = self.throttle.failed(address, now, count)
                    if until:
                        self._report('throttled', address, {
                            'until': until, 'where': 'this process',
                            'limits': self.throttle.limits()})
                return
            for address, until in answer.get('throttled', {}).items():
                self.throttle.throttle(address, until)


def throttle_file(env_path):
    """Where Trac's process writes the throttled addresses of an
    environment for Apache's children: beside its policy socket, in the
    folder only Apache's user may enter."""
    return policy.socket_path(env_path)[:-len('.sock')] + '.throttled'


def write_throttled(env_path, throttled):
    """Replace the file of throttled addresses ({address: until})."""
    path = throttle_file(env_path)
    temporary = '%s.%d' % (path, threading.get_ident())
    with open(temporary, 'w', encoding='utf-8') as f:
        json.dump(throttled, f)
    os.replace(temporary, path)
