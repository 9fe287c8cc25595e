#!${executable}
# -*- coding: utf-8 -*-
# Written by `trac-admin ENV deploy` (tracwsgiauth ${version}) for the
# Trac environment below. One file, three uses in Apache:
#   WSGIScriptAlias     /proj ${script_path_comment}
#   WSGIAuthUserScript  ${script_path_comment}  (check_password, get_realm_hash)
#   WSGIAuthGroupScript ${script_path_comment}  (groups_for_user)
# and WSGIAccessScript (allow_access). See ../apache/trac.conf.
ENV_PATH = ${pyrepr(env_path)}

# Apache's child processes load this file as auth script and import no
# Trac module; the daemon process that serves Trac preloads it and also
# answers the children's group questions (tracwsgiauth.policy).
from tracwsgiauth.modwsgi import application_for, for_environment

{% if non_pooled %}
# deployed with --no-pooling: one PostgreSQL connection per query, in
# Apache's children and in Trac's process, whatever trac.ini says.
POOLED = False
{% else %}
POOLED = True    # as [wsgiauth] postgres_pooling says
{% endif %}

check_password, get_realm_hash, groups_for_user, allow_access = \
    for_environment(ENV_PATH, pooled=POOLED)
application = application_for(ENV_PATH, reflect_user=${reflect_user},
                              pooled=POOLED)
