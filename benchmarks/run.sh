#!/usr/bin/env bash
# Every benchmark, one after the other on this machine, each writing its
# results table next to this script (results-*.md). Installs what it needs
# like contrib/test.sh. Arguments: N for inprocess.py and apache.py.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
venv=$(bash "$here/contrib/setup.sh" | tail -n 1)
cd "$here"
"$venv/bin/python" benchmarks/inprocess.py "${1:-2000}"
"$venv/bin/python" benchmarks/apache.py "${1:-4000}"
"$venv/bin/python" benchmarks/postgres.py 50 2000
