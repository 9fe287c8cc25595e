#!/usr/bin/env bash
# Install what tracwsgiauth's demo and tests need on a Debian machine:
# Apache httpd (+ apxs for mod_wsgi), htpasswd and ab, curl, Subversion
# (with svnmucc), mod_dav_svn and the Python bindings that Trac's svn
# backend needs, git, the PostgreSQL server and PgBouncer (the tests start
# throwaway ones), Chromium (the browser tests), and a virtualenv with
# Trac, this package, its test dependencies and Playwright.
# Prints the virtualenv's path on its last line.
#
# The virtualenv uses Debian's /usr/bin/python3: Apache's children run as
# an unprivileged user and must be able to read that Python (a pyenv under
# /root is not readable by them).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)

need=()
for cmd in apache2:apache2 apxs:apache2-dev htpasswd:apache2-utils curl:curl \
           pg_config:libpq-dev svnadmin:subversion svnmucc:subversion \
           git:git; do
    command -v "${cmd%%:*}" >/dev/null 2>&1 || [ -x "/usr/sbin/${cmd%%:*}" ] \
        || [ -x "/usr/bin/${cmd%%:*}" ] || need+=("${cmd#*:}")
done
[ -e /usr/lib/apache2/modules/mod_dav_svn.so ] || need+=(libapache2-mod-svn)
[ -d /usr/lib/python3/dist-packages/libsvn ] || need+=(python3-subversion)
ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || need+=(postgresql)
command -v pgbouncer >/dev/null 2>&1 || [ -x /usr/sbin/pgbouncer ] \
    || need+=(pgbouncer)
[ -x /usr/bin/python3-config ] || need+=(python3-dev)
# Debian's Chromium, which the browser tests drive through Playwright
# (Playwright never downloads a browser of its own here)
[ -x /usr/bin/chromium ] || need+=(chromium)
[ -x /usr/bin/python3 ] && /usr/bin/python3 -c "import venv, ensurepip" \
    2>/dev/null || need+=(python3-venv)
if [ ${#need[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ]; then
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >&2
    else
        echo "Please install: ${need[*]} (apt-get install ${need[*]})" >&2
        exit 1
    fi
fi

if [ "$(id -u)" = 0 ]; then
    venv=${TRACWSGIAUTH_VENV:-/opt/tracwsgiauth-venv}
else
    venv=${TRACWSGIAUTH_VENV:-$here/.venv}
fi
[ -x "$venv/bin/python" ] || /usr/bin/python3 -m venv "$venv" >&2
"$venv/bin/pip" install -q --upgrade pip >&2
"$venv/bin/pip" install -q "$here[test,postgres,apache]" >&2
# Playwright drives Debian's /usr/bin/chromium (no `playwright install`)
"$venv/bin/pip" install -q playwright >&2
"$venv/bin/python" -c 'import playwright.sync_api' \
    || { echo "Playwright not importable in $venv" >&2; exit 1; }
[ -x /usr/bin/chromium ] \
    || { echo "Debian's chromium is missing (/usr/bin/chromium)" >&2; exit 1; }
# always this checkout's code, even when the version number did not change
"$venv/bin/pip" install -q --no-deps --force-reinstall "$here" >&2
# Debian's Subversion bindings (svn, libsvn) are built for /usr/bin/python3:
# the venv sees them through symlinks when it runs that Python's version.
pyver='import sys; print("%d.%d" % sys.version_info[:2])'
if [ "$("$venv/bin/python" -c "$pyver")" = "$(/usr/bin/python3 -c "$pyver")" ]
then
    site=$("$venv/bin/python" -c \
        'import sysconfig; print(sysconfig.get_path("purelib"))')
    for pkg in svn libsvn; do
        ln -sfn "/usr/lib/python3/dist-packages/$pkg" "$site/$pkg"
    done
    "$venv/bin/python" -c 'import svn.core' \
        || { echo "Subversion bindings not importable in $venv" >&2; exit 1; }
else
    echo "Not linking Subversion bindings: $venv's Python is not" \
         "/usr/bin/python3's version (Trac's svn backend is off)" >&2
fi
chmod -R a+rX "$venv"
echo "$venv"
