{##}#!${executable}
{##}# -*- coding: utf-8 -*-
{##}# Written by `trac-admin ENV deploy` (tracwsgiauth ${version}) for the
{##}# Trac environment below. One file, three uses in Apache:
{##}#   WSGIScriptAlias     /proj ${script_path_comment}
{##}#   WSGIAuthUserScript  ${script_path_comment}  (check_password, get_realm_hash)
{##}#   WSGIAuthGroupScript ${script_path_comment}  (groups_for_user)
{##}# and WSGIAccessScript (allow_access). See ../apache/trac.conf.
ENV_PATH = ${pyrepr(env_path)}
{% if non_pooled %}

{##}# [wsgiauth] postgres_pooling is off: one PostgreSQL connection per
{##}# query, so many environments in many Apache processes do not hold
{##}# the server's connections open.
from trac.db.postgres_backend import PostgreSQLConnection
PostgreSQLConnection.poolable = False
{% endif %}

from tracwsgiauth.modwsgi import for_environment
from tracwsgiauth.serve import serving

check_password, get_realm_hash, groups_for_user, allow_access = \
    for_environment(ENV_PATH)
application = serving(ENV_PATH, reflect_user=${reflect_user})
