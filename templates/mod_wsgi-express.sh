{##}#!/bin/sh
{##}# Serve the Trac environment ${env_path_comment}
{##}# with Apache through mod_wsgi-express; every request needs a user of the
{##}# environment in the permission group $GROUP (default ${group}).
{##}# Written by `trac-admin ENV deploy` (tracwsgiauth ${version}).
{##}# Usage: HOST=127.0.0.1 PORT=8000 GROUP=developers mod_wsgi-express [more options]
{##}# (as root add: --user www-data --group www-data)
exec ${sh(express)} start-server ${sh(script)} \
    --host "${'$'}{HOST:-127.0.0.1}" --port "${'$'}{PORT:-8000}" \
    --server-root ${sh(express_root)} \
    --working-directory ${sh(target)} \
    --url-alias /chrome ${sh(htdocs)} \
    --auth-user-script ${sh(script)} \
    --auth-group-script ${sh(script)} \
    --auth-group "${'$'}{GROUP:-${group}}" \
    "$@"
