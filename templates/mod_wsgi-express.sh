#!/bin/sh
# Serve the Trac environment ${env_path_comment}
# with Apache through mod_wsgi-express. EVERY URL needs a user of the
# environment in the permission group $GROUP (default ${sh(group)}),
# except the Subversion and Git repositories of repositories.conf, where
# Trac's repository permissions decide.
# Written by `trac-admin ENV deploy` (tracwsgiauth ${version}).
# Usage: HOST=127.0.0.1 PORT=8000 GROUP=developers mod_wsgi-express [more options]
# As root, Apache runs as the owner of the environment (chown -R it to the
# user Apache should run as, e.g. www-data) unless you give --user/--group.
ENV_DIR=${sh(env_path)}
[ -n "${'$'}{GROUP:-}" ] || GROUP=${sh(group)}
{% if express %}

serve() {
    exec ${express} start-server ${sh(script)} \
        --host "${'$'}{HOST:-127.0.0.1}" --port "${'$'}{PORT:-8000}" \
        --locale C.UTF-8 \
        --server-root ${sh(express_root)} \
        --working-directory ${sh(target)} \
        --url-alias /chrome ${sh(htdocs)} \
        --auth-user-script ${sh(script)} \
        --auth-group-script ${sh(script)} \
        --auth-group "$GROUP" \
        --include-file ${sh(apache_dir + '/repositories.conf')} \
        "$@"
}

[ "$(id -u)" = 0 ] || serve "$@"
for arg in "$@"; do
    case $arg in --user|--user=*) serve "$@" ;; esac
done
owner=$(stat -c %U -- "$ENV_DIR") && group=$(stat -c %G -- "$ENV_DIR") \
    || exit 1
if [ "$owner" = root ]; then
    echo "Apache must not run as root, and runs as the owner of $ENV_DIR," >&2
    echo "which is root. Give the environment to the user Apache should run" >&2
    echo "as (chown -R www-data:www-data \"$ENV_DIR\") or add --user and --group." >&2
    exit 1
fi
serve --user "$owner" --group "$group" "$@"
{% else %}
echo ${sh('mod_wsgi is not installed for %s:' % executable)} >&2
echo "pip install 'tracwsgiauth[apache]' (Debian: apt-get install apache2 apache2-dev first)," >&2
echo "then run trac-admin ENV wsgiauth deploy again." >&2
exit 127
{% endif %}
