#!/usr/bin/env bash
# Every benchmark, one after the other on this machine, each writing its
# results table next to this script (results-*.md). Installs what it needs
# like contrib/test.sh. Arguments: N for inprocess.py and apache.py.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
venv=$(bash "$here/contrib/setup.sh" | tail -n 1)
# as modules from the checkout, so that they import the test harness
# (tests.harness); tracwsgiauth then comes from the checkout too in these
# processes, the code setup.sh has just installed for Apache's
cd "$here"
# first the one that is closest to its targets, on a machine nothing of
# this run has loaded yet (the isolation benchmark leaves a load behind)
"$venv/bin/python" -m benchmarks.repositories "${1:-2000}"
"$venv/bin/python" -m benchmarks.inprocess "${1:-2000}"
"$venv/bin/python" -m benchmarks.apache "${1:-4000}"
"$venv/bin/python" -m benchmarks.postgres 50 2000
"$venv/bin/python" -m benchmarks.isolation "${1:-2000}"
"$venv/bin/python" -m benchmarks.guard
"$venv/bin/python" -m benchmarks.apppasswords
