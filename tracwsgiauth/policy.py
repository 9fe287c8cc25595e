"""Questions only Trac's own policy engine can answer (the groups plugin
providers give, what permission policies decide for a repository),
asked by Apache's child processes of the process where Trac already
runs, over a local socket.

Apache's children run our auth functions on every request; they import
no Trac module (memory, and no Trac environment to reload under them).
The Trac application's daemon process (trac.wsgi, preloaded) answers
for its environment on a Unix socket in a folder only Apache's user may
enter; both ends check that the other runs as the same user.

One request per connection, one JSON line each way::

    {"op": "groups", "user": "alice"}   ->   {"groups": ["developers"]}
    {"op": "repository", "user": "alice", "repository": "code",
     "action": "write"}                 ->   {"allowed": true, "why": "..."}
                                        or   {"error": "..."}
"""

import hashlib
import json
import os
import socket
import stat
import struct
import sys
import tempfile
import threading
import time

#: Longest request or answer, in bytes.
MAX_LINE = 1 << 16


class PolicyError(Exception):
    """The policy process did not answer, or answered with an error."""


def socket_dir():
    """The folder of the sockets: private to the user Apache runs as."""
    return os.path.join(tempfile.gettempdir(),
                        'tracwsgiauth-%d' % os.geteuid())


def socket_path(env_path):
    """Where the policy process of an environment listens."""
    digest = hashlib.sha256(os.path.realpath(env_path).encode(
        'utf-8', 'surrogateescape')).hexdigest()[:24]
    return os.path.join(socket_dir(), digest + '.sock')


def _private_dir():
    """Make or check the socket folder: ours and mode 0700, else fail."""
    folder = socket_dir()
    try:
        os.mkdir(folder, 0o700)
    except FileExistsError:
        pass
    info = os.lstat(folder)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid() \
            or stat.S_IMODE(info.st_mode) & 0o077:
        raise PolicyError('%s must be a folder of user %d with mode 0700'
                          % (folder, os.geteuid()))
    return folder


def _same_user(sock):
    """Raise unless the process at the other end runs as our user."""
    creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED,
                            struct.calcsize('3i'))
    uid = struct.unpack('3i', creds)[1]
    if uid != os.geteuid():
        raise PolicyError('the policy socket is held by user %d' % uid)


class _Dropped(ConnectionError):
    """The policy process closed the connection before it answered (it
    is exiting: Apache restarts its daemons)."""


def _read_line(sock):
    data = b''
    while not data.endswith(b'\n'):
        chunk = sock.recv(4096)
        if not chunk:
            raise _Dropped('the policy process closed the connection')
        data += chunk
        if len(data) > MAX_LINE:
            raise PolicyError('answer too long')
    return json.loads(data.decode('utf-8'))


#: socket path -> until when a question is refused at once: nobody
#: listened there for a whole timeout (no daemon preloads the script)
_absent = {}


def _connect(sock, path, deadline):
    """Connect, waiting until `deadline` for a policy process that is
    starting (Apache just started, or restarted its daemon); after a
    whole wait in vain, for as long again without waiting, so that a
    missing daemon holds up one request, not every one."""
    started = time.monotonic()
    while True:
        try:
            sock.connect(path)
            _absent.pop(path, None)
            return
        except (FileNotFoundError, ConnectionRefusedError):
            now = time.monotonic()
            if now < _absent.get(path, 0):
                raise               # nobody there a moment ago either
            if now + 0.05 > deadline:
                _absent[path] = now + (now - started)
                raise
            time.sleep(0.05)


def _ask_once(path, question, deadline):
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(max(deadline - time.monotonic(), 0.01))
        _connect(sock, path, deadline)
        _same_user(sock)
        sock.sendall(json.dumps(question).encode('utf-8') + b'\n')
        return _read_line(sock)


def ask(env_path, timeout, **question):
    """The answer of the environment's policy process (a dict); raises
    PolicyError when it cannot be had within `timeout` seconds. Asked
    once more when the process went away before answering: the one
    Apache starts instead takes the question."""
    path = socket_path(env_path)
    deadline = time.monotonic() + timeout
    try:
        try:
            answer = _ask_once(path, question, deadline)
        except (_Dropped, ConnectionResetError, BrokenPipeError):
            answer = _ask_once(path, question, deadline)
    except OSError as e:
        raise PolicyError('no answer from the policy process at %s '
                          '(%s); it runs in the Trac daemon process that '
                          'preloads trac.wsgi' % (path, e.strerror or e)) \
            from None
    if 'error' in answer:
        raise PolicyError(str(answer['error'])[:300])
    return answer


class Remembered(object):
    """Answers of the policy process, remembered per question while the
    permission table reads the same -- any change of it asks again --
    and for at most `ttl` seconds (for groups plugins take from
    elsewhere than Trac's tables)."""

    ttl = 60
    size = 1000

    def __init__(self):
        self._answers = {}

    def get(self, key, rows):
        found = self._answers.get(key)
        if found is None:
            return None
        seen, answer, when = found
        if (seen is rows or seen == rows) and \
                time.monotonic() - when < self.ttl:
            return answer
        return None

    def put(self, key, rows, answer):
        if len(self._answers) >= self.size:
            self._answers.clear()
        self._answers[key] = (rows, answer, time.monotonic())


def _listen(path):
    """A listening socket at `path`, replacing a stale one; None when a
    live process already answers there."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(path)
    except OSError:
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect(path)
            sock.close()
            return None         # another process of ours answers
        except OSError:
            os.unlink(path)     # left by a process that is gone
            sock.bind(path)
        finally:
            probe.close()
    sock.listen(64)
    return sock


def serve(env_path, answer):
    """Answer questions about the environment in a daemon thread:
    `answer(question) -> dict`. While another live process answers for
    it (Apache restarting its daemons: the old one not gone yet), or the
    socket folder cannot be used (one line on stderr says why), look
    again every `STANDBY` seconds. Returns the thread."""
    thread = threading.Thread(target=_serve_forever,
                              args=(socket_path(env_path), answer),
                              name='tracwsgiauth policy', daemon=True)
    thread.start()
    return thread


#: Seconds between two looks at whether the socket can be taken.
STANDBY = 0.5


def _take(path, said):
    """A listening socket at `path`, or None for now."""
    try:
        _private_dir()
        return _listen(path)
    except (OSError, PolicyError) as e:
        if not said:
            sys.stderr.write('tracwsgiauth: cannot answer group checks at '
                             '%s (refused until it can): %s\n' % (path, e))
            sys.stderr.flush()
            said.append(e)
        return None


def _serve_forever(path, answer):
    said = []
    sock = _take(path, said)
    while sock is None:
        time.sleep(STANDBY)
        sock = _take(path, said)
    if said:
        sys.stderr.write('tracwsgiauth: answering group checks at %s\n'
                         % path)
    _accept(sock, answer)


#: Most questions answered at once; beyond them a question is refused at
#: once, so that answers stuck on a database that never replies cannot
#: pile up threads without end.
IN_FLIGHT = 64


def _accept(sock, answer):
    slots = threading.BoundedSemaphore(IN_FLIGHT)
    while True:
        conn, _ = sock.accept()
        if not slots.acquire(blocking=False):
            _reply(conn, {'error': 'more than %d questions in flight'
                                   % IN_FLIGHT})
            continue
        threading.Thread(target=_handle, args=(conn, answer, slots),
                         daemon=True).start()


def _handle(conn, answer, slots):
    try:
        conn.settimeout(30)
        _same_user(conn)
        result = answer(_read_line(conn))
    except Exception as e:
        result = {'error': '%s: %s' % (type(e).__name__,
                                       ' '.join(str(e).split())[:200])}
    finally:
        slots.release()
    _reply(conn, result)


def _reply(conn, result):
    with conn:
        try:
            conn.sendall(json.dumps(result).encode('utf-8') + b'\n')
        except OSError:
            pass
