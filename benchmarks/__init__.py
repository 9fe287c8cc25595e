"""tracwsgiauth's benchmarks, run from the checkout as modules
(``python -m benchmarks.apache``; benchmarks/run.sh runs them all), so
that they import the test harness as a package: ``tests.harness``."""

import os

HERE = os.path.dirname(os.path.abspath(__file__))


def publish(out, lines):
    """Write a results table (markdown `lines`) to `out` and print it."""
    text = '\n'.join(lines) + '\n'
    with open(out, 'w', encoding='utf-8') as f:
        f.write(text)
    print(text)
