#!/usr/bin/env bash
# Run the whole test suite against the installed package, real Apache
# httpd + mod_wsgi, real Trac environments. Extra arguments go to pytest.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
venv=$(bash "$here/contrib/setup.sh" | tail -n 1)
"$venv/bin/ruff" check "$here/tracwsgiauth" "$here/tests" "$here/benchmarks" \
    "$here/setup.py"
cd "$here"
# pytest (not python -m pytest, which puts the checkout on sys.path) and
# tests/pytest.ini's --import-mode=importlib: the installed package is
# tested, not the source folder
exec "$venv/bin/pytest" -p no:cacheprovider tests "$@"
