"""tracwsgiauth's test suite, and the harness its tests and the
benchmarks share (`from tests.harness import ...`).

pytest imports this package with ``--import-mode=importlib``
(tests/pytest.ini), which puts nothing on sys.path: the checkout's
source folder never shadows the installed tracwsgiauth under test.
"""
