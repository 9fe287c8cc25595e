"""The questions Apache's children ask of Trac's process (groups), on a
real Unix socket in this process: the answer, what is remembered and
when it is asked again, failures and the socket folder's checks."""

import os
import time

import pytest

from tests.harness import wait_for
from tracwsgiauth import policy


@pytest.fixture
def answering(tmp_path, monkeypatch):
    """A policy server in this process for a made-up environment path;
    the questions it got."""
    monkeypatch.setattr(policy, 'socket_dir', lambda: str(tmp_path / 's'))
    asked = []

    def answer(question):
        asked.append(question)
        if question.get('user') == 'boom':
            raise RuntimeError('no database')
        return {'groups': ['developers']}
    env = str(tmp_path / 'env')
    policy.serve(env, answer)
    return env, asked


def answers(env):
    """The groups answered now, or None when there is no answer."""
    try:
        return policy.ask(env, 1, op='groups')['groups']
    except policy.PolicyError:
        return None


def test_the_answer_and_a_failure(answering):
    env, asked = answering
    assert policy.ask(env, 2, op='groups', user='alice') == {
        'groups': ['developers']}
    assert asked == [{'op': 'groups', 'user': 'alice'}]
    with pytest.raises(policy.PolicyError, match='RuntimeError: no database'):
        policy.ask(env, 2, op='groups', user='boom')


OTHER_PROCESS = """
import sys, time
from tests.harness import wait_for
from tracwsgiauth import policy
policy.socket_dir = lambda: sys.argv[1]
policy.serve(sys.argv[2], lambda q: {'groups': ['from-the-first']})
print('serving', flush=True)
time.sleep(60)
"""


def test_a_second_server_stands_by_and_takes_over(tmp_path, monkeypatch):
    """As when Apache restarts its daemons: the new process starts while
    the old one still answers, and answers once it is gone."""
    import subprocess
    import sys
    folder, env = str(tmp_path / 's'), str(tmp_path / 'env')
    monkeypatch.setattr(policy, 'socket_dir', lambda: folder)
    first = subprocess.Popen([sys.executable, '-c', OTHER_PROCESS, folder,
                              env], stdout=subprocess.PIPE, text=True)
    try:
        assert first.stdout.readline().strip() == 'serving'
        assert policy.ask(env, 2, op='groups')['groups'] == \
            ['from-the-first']
        policy.serve(env, lambda q: {'groups': ['from-the-second']})
        time.sleep(2 * policy.STANDBY)
        assert policy.ask(env, 2, op='groups')['groups'] == \
            ['from-the-first']
    finally:
        first.kill()
        first.wait()
    # gone: the next question waits for the stand-by to take over
    assert policy.ask(env, 3, op='groups')['groups'] == ['from-the-second']


def test_no_server_is_a_bounded_refusal(tmp_path, monkeypatch):
    """A missing daemon holds up one question for the whole timeout, the
    next ones not at all for as long again; then one waits again."""
    monkeypatch.setattr(policy, 'socket_dir', lambda: str(tmp_path / 's'))
    env = str(tmp_path / 'nowhere')

    def refused_in():
        started = time.monotonic()
        with pytest.raises(policy.PolicyError, match='no answer from'):
            policy.ask(env, 0.5, op='groups', user='a')
        return time.monotonic() - started
    assert 0.4 < refused_in() < 2
    assert refused_in() < 0.1
    time.sleep(0.6)
    policy.serve(env, lambda q: {'groups': ['late']})
    assert wait_for(lambda: answers(env) == ['late'], timeout=3)


def test_a_stale_socket_is_replaced(tmp_path, monkeypatch):
    import socket
    monkeypatch.setattr(policy, 'socket_dir', lambda: str(tmp_path / 's'))
    env = str(tmp_path / 'env')
    os.mkdir(tmp_path / 's', 0o700)
    dead = socket.socket(socket.AF_UNIX)
    dead.bind(policy.socket_path(env))   # bound, never listening
    dead.close()
    policy.serve(env, lambda q: {'groups': []})
    assert policy.ask(env, 2, op='groups', user='a') == {'groups': []}


@pytest.mark.parametrize('mode', [0o755, 0o777])
def test_a_socket_folder_others_can_enter_is_refused_until_mended(
        tmp_path, monkeypatch, capfd, mode):
    folder = tmp_path / 's'
    os.mkdir(folder)
    os.chmod(folder, mode)
    monkeypatch.setattr(policy, 'socket_dir', lambda: str(folder))
    env = str(tmp_path / 'env')
    policy.serve(env, lambda q: {'groups': ['mended']})
    with pytest.raises(policy.PolicyError, match='no answer'):
        policy.ask(env, 1, op='groups')
    assert 'with mode 0700' in capfd.readouterr().err
    os.chmod(folder, 0o700)         # the administrator mends it
    assert wait_for(lambda: answers(env) == ['mended'], timeout=5)


def test_answers_are_remembered_while_the_permission_table_is_the_same(
        monkeypatch):
    remembered = policy.Remembered()
    rows = (('alice', 'developers'),)
    remembered.put('alice', rows, ['developers'])
    assert remembered.get('alice', rows) == ['developers']
    assert remembered.get('alice', (('alice', 'developers'),)) == \
        ['developers']                          # equal rows: the same table
    assert remembered.get('alice', ()) is None  # changed: ask again
    assert remembered.get('bob', rows) is None
    now = [time.monotonic() + policy.Remembered.ttl + 1]
    monkeypatch.setattr(policy.time, 'monotonic', lambda: now[0])
    assert remembered.get('alice', rows) is None   # plugins' groups: 60 s


def test_asked_again_when_the_process_goes_before_answering(tmp_path,
                                                            monkeypatch):
    """An exiting daemon (Apache's graceful restart) may take a question
    and close without answering: the question goes to the next one."""
    import socket
    import threading
    folder = tmp_path / 's'
    os.mkdir(folder, 0o700)
    monkeypatch.setattr(policy, 'socket_dir', lambda: str(folder))
    env = str(tmp_path / 'env')
    server = socket.socket(socket.AF_UNIX)
    server.bind(policy.socket_path(env))
    server.listen(4)

    def first_drops_then_answers():
        server.accept()[0].close()
        conn = server.accept()[0]
        conn.recv(4096)
        conn.sendall(b'{"groups": ["second"]}\n')
        conn.close()
    threading.Thread(target=first_drops_then_answers, daemon=True).start()
    assert policy.ask(env, 3, op='groups')['groups'] == ['second']
    server.close()


def test_answers_stuck_on_a_database_cannot_pile_up(tmp_path, monkeypatch):
    import threading
    monkeypatch.setattr(policy, 'socket_dir', lambda: str(tmp_path / 's'))
    monkeypatch.setattr(policy, 'IN_FLIGHT', 3)
    stuck = threading.Event()
    env = str(tmp_path / 'env')
    policy.serve(env, lambda q: stuck.wait(10) and {'groups': []})
    outcomes = []

    def ask_and_give_up():
        try:
            outcomes.append(policy.ask(env, 0.5, op='groups'))
        except policy.PolicyError as e:
            outcomes.append(type(e))
    waiting = [threading.Thread(target=ask_and_give_up) for _ in range(3)]
    for thread in waiting:
        thread.start()
    time.sleep(0.3)                 # three answers hang on "the database"
    started = time.monotonic()
    with pytest.raises(policy.PolicyError, match='3 questions in flight'):
        policy.ask(env, 5, op='groups')
    assert time.monotonic() - started < 1
    for thread in waiting:
        thread.join()
    assert outcomes == [policy.PolicyError] * 3     # each gave up at 0.5 s
    stuck.set()                     # the database answers again

    # once the three slots are given back
    assert wait_for(lambda: answers(env) == [], timeout=5)
