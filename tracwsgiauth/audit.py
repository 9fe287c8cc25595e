"""What the brute-force protection tells the administrator, with no Trac
import: one line in Apache's error log at ``warn`` when an account locks
or an address is throttled, and, with ``[wsgiauth] audit_log = PATH``,
one JSON line per refused login and per lock and throttle::

    {"time": "2026-11-25T15:00:00Z", "event": "refused",
     "environment": "/srv/trac/proj", "user_sent": "CORP\\\\alice",
     "user": "alice", "address": "192.0.2.7", "location": "/svn/code/",
     "reason": "wrong password"}

``event`` is ``refused``, ``locked``, ``throttled`` or ``unlocked``;
fields that do not apply are null. Never a password or a hash.
"""

import json
import logging
import os
import sys
import time

_logger = logging.getLogger('tracwsgiauth.guard')
_logger.propagate = False


def _handler():
    """mod_wsgi's handler that keeps the level in Apache's error log,
    or standard error outside Apache."""
    try:
        import mod_wsgi
        return mod_wsgi.LogHandler()
    except (ImportError, AttributeError, TypeError):
        return logging.StreamHandler(sys.stderr)


def warn(message):
    """One line in Apache's error log at ``warn``."""
    if not _logger.handlers:
        _logger.addHandler(_handler())
        _logger.setLevel(logging.WARNING)
    _logger.warning('tracwsgiauth: %s', ' '.join(message.split()))


def record(path, event, environment, user_sent=None, user=None,
           address=None, location=None, reason=None):
    """Append one JSON line to the audit log at `path` (nothing when
    empty); a file that cannot be written is said in the error log."""
    if not path:
        return
    line = json.dumps({
        'time': time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime()),
        'event': event, 'environment': environment, 'user_sent': user_sent,
        'user': user, 'address': address, 'location': location,
        'reason': reason}, ensure_ascii=False) + '\n'
    try:
        new = not os.path.exists(path)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        try:
            if new and os.geteuid() == 0:
                # trac-admin run by root: the file stays Apache's, the
                # owner of the environment
                owner = os.stat(environment)
                os.fchown(fd, owner.st_uid, owner.st_gid)
            os.write(fd, line.encode('utf-8', 'surrogateescape'))
        finally:
            os.close(fd)
    except OSError as e:
        warn('cannot write the audit log %s: %s' % (path, e.strerror))
