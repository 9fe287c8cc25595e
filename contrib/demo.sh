#!/usr/bin/env bash
# The demo: a Trac environment on SQLite whose users Apache authenticates.
# Installs what it needs (contrib/setup.sh), creates the environment with a
# user and a group, deploys it with tracwsgiauth's `trac-admin deploy` and
# serves it with Apache (mod_wsgi-express) on 127.0.0.1 until Ctrl-C.
#   PORT=8000 DEMO_DIR=/tmp/tracwsgiauth-demo bash contrib/demo.sh
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
venv=$(bash "$here/contrib/setup.sh" | tail -n 1)
port=${PORT:-8000}
demo=${DEMO_DIR:-/tmp/tracwsgiauth-demo}
admin="$venv/bin/trac-admin"

rm -rf "$demo"
mkdir -p "$demo"
chmod 755 "$demo"
"$admin" "$demo/env" initenv "tracwsgiauth demo" sqlite:db/trac.db >/dev/null
"$admin" "$demo/env" config set components 'tracwsgiauth.*' enabled
"$admin" "$demo/env" config set components trac.env.environmentadmin disabled
echo demo-password | "$admin" "$demo/env" wsgiauth passwd demo
"$admin" "$demo/env" permission add demo developers
"$admin" "$demo/env" permission add developers TRAC_ADMIN
"$admin" "$demo/env" deploy "$demo/deploy" >/dev/null
# As root, the express script runs Apache as the environment's owner:
# give the environment (which Trac writes: sessions) to nobody. Not as
# root, Apache runs as us and nothing needs changing.
if [ "$(id -u)" = 0 ]; then
    chown -R nobody:nogroup "$demo/env"
fi

cat <<MSG

  Trac demo:   http://127.0.0.1:$port/login
  user:        demo
  password:    demo-password   (group: developers, which has TRAC_ADMIN)

  Environment: $demo/env
  Apache conf: $demo/deploy/apache/trac.conf (for your own Apache)
  Stop with Ctrl-C.

MSG
PORT=$port exec "$demo/deploy/apache/mod_wsgi-express" \
    --startup-timeout 15 --request-timeout 30
