"""Run many checks against one environment from several threads, as one
Apache process would, and count the answers. Used by test_pgbouncer in
subprocesses:

    python pg_worker.py ENV_PATH THREADS COUNT POOLED MINE OTHER[,OTHER...]

`alice` must log in with MINE and never with an OTHER password; she is in
`developers` exactly when MINE ends with '-dev'. Prints a JSON object:
right, refused (failed closed), wrong (another environment's answer).
"""

import json
import sys
import threading


def main(env_path, threads, count, pooled, mine, others):
    if pooled != 'pooled':
        from trac.db.postgres_backend import PostgreSQLConnection
        PostgreSQLConnection.poolable = False
    from tracwsgiauth.modwsgi import for_environment
    from tracwsgiauth.serve import answer_policy
    answer_policy(env_path)     # group checks, as Trac's process answers
    check, _, groups_for_user, _ = for_environment(env_path)
    errors = open('/dev/null', 'w')
    environ = {'wsgi.errors': errors}
    member = mine.endswith('-dev')
    tally = {'right': 0, 'refused': 0, 'wrong': 0}
    lock = threading.Lock()

    def work():
        counts = dict.fromkeys(tally, 0)
        for i in range(count):
            other = others[i % len(others)]
            # the right password: True, or False when it failed closed;
            # None (unknown user) would be another environment's answer
            got = check(environ, 'alice', mine)
            counts['right' if got is True else
                   'refused' if got is False else 'wrong'] += 1
            # another environment's password: never accepted
            got = check(environ, 'alice', other)
            counts['right' if got is False else 'wrong'] += 1
            groups = groups_for_user(environ, 'alice')
            counts['refused' if groups == [] else
                   'right' if ('developers' in groups) == member else
                   'wrong'] += 1
        with lock:
            for key, value in counts.items():
                tally[key] += value

    workers = [threading.Thread(target=work) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    print(json.dumps(tally))


if __name__ == '__main__':
    path, threads, count, pooled, mine, others = sys.argv[1:]
    main(path, int(threads), int(count), pooled, mine, others.split(','))
