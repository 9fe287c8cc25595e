#!/usr/bin/env bash
# The demo: a Trac environment on SQLite whose users Apache authenticates.
# Installs what it needs (contrib/setup.sh), creates the environment with
# users, a group, a Subversion and a Git repository, deploys it with tracwsgiauth's `trac-admin deploy` and
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
"$admin" "$demo/env" config set components trac.env.environmentadmin disabled
"$admin" "$demo/env" config set components 'tracwsgiauth.*' enabled
"$admin" "$demo/env" upgrade >/dev/null
echo demo-password | "$admin" "$demo/env" wsgiauth passwd demo
"$admin" "$demo/env" permission add demo developers
"$admin" "$demo/env" permission add developers TRAC_ADMIN
echo reader-password | "$admin" "$demo/env" wsgiauth passwd reader

# Two repositories, served by Apache with Trac's permissions: only users
# may read them (anonymous may not), only developers commit and push.
"$admin" "$demo/env" config set components 'tracopt.versioncontrol.svn.*' enabled
"$admin" "$demo/env" config set components 'tracopt.versioncontrol.git.*' enabled
"$admin" "$demo/env" permission remove anonymous BROWSER_VIEW FILE_VIEW
"$admin" "$demo/env" permission add authenticated BROWSER_VIEW FILE_VIEW
"$admin" "$demo/env" permission add developers REPOSITORY_COMMIT
mkdir -p "$demo/repos"
svnadmin create "$demo/repos/code"
svnmucc -m "Start" -U "file://$demo/repos/code" mkdir trunk >/dev/null
git init -q --bare -b main "$demo/repos/tools"
work=$(mktemp -d)
git -C "$work" init -q -b main
echo "Tools of the tracwsgiauth demo" > "$work/README"
git -C "$work" add README
git -C "$work" -c user.name=demo -c user.email=demo@example.org \
    commit -q -m "Start"
git -C "$work" push -q "$demo/repos/tools" main
rm -rf "$work"
"$admin" "$demo/env" repository add code "$demo/repos/code" svn
"$admin" "$demo/env" repository add tools "$demo/repos/tools" git
"$admin" "$demo/env" repository resync '*' >/dev/null
"$admin" "$demo/env" deploy "$demo/deploy" | sed -n '/^Repositories/,$p'
# an app password for the Git and Subversion clients (more in Trac:
# Preferences -> App passwords)
token=$("$admin" "$demo/env" wsgiauth token add demo "demo clients" commit \
        | sed -n 's/^App password [0-9a-f]*: //p')
# the hooks deploy wrote tell Trac of each commit and push
ln -sf "$demo/deploy/hooks/code/post-commit" "$demo/repos/code/hooks/"
ln -sf "$demo/deploy/hooks/tools/post-receive" "$demo/repos/tools/hooks/"
# As root, the express script runs Apache as the environment's owner:
# give the environment (which Trac writes: sessions) and the repositories
# (which svn and git clients write) to nobody. Not as root, Apache runs
# as us and nothing needs changing.
if [ "$(id -u)" = 0 ]; then
    chown -R nobody:nogroup "$demo/env" "$demo/repos"
fi

cat <<MSG

  Trac demo:   http://127.0.0.1:$port/login
  user:        demo
  password:    demo-password   (group: developers, which has TRAC_ADMIN)

  Subversion:  svn checkout http://127.0.0.1:$port/svn/code --username demo
  Git:         git clone http://demo@127.0.0.1:$port/git/tools
               (user "reader", password reader-password, may read but
               not commit; anonymous may not read)
  App password of demo, for svn and git (read and commit):
               $token
               (make more in Trac: Preferences -> App passwords)
  Why not?     $admin $demo/env wsgiauth explain reader POST \\
                   http://127.0.0.1:$port/git/tools/git-receive-pack

  Environment: $demo/env
  Apache conf: $demo/deploy/apache/trac.conf and repositories.conf
               (for your own Apache)
  Stop with Ctrl-C.

MSG
PORT=$port exec "$demo/deploy/apache/mod_wsgi-express" \
    --startup-timeout 15 --request-timeout 30
