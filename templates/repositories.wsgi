#!${executable}
# -*- coding: utf-8 -*-
# Written by `trac-admin ENV deploy` (tracwsgiauth ${version}): the auth
# script of the repository locations of ../apache/repositories.conf for
# the Trac environment below (WSGIAuthUserScript, WSGIAuthGroupScript,
# WSGIAccessScript). Apache's child processes load it and import no Trac
# module; Trac's daemon process, which preloads trac.wsgi, answers them.
ENV_PATH = ${pyrepr(env_path)}

from tracwsgiauth.repoauth import for_repositories

{% if non_pooled %}
POOLED = False   # deployed with --no-pooling
{% else %}
POOLED = True    # as [wsgiauth] postgres_pooling says
{% endif %}

check_password, get_realm_hash, groups_for_user, allow_access = \
    for_repositories(ENV_PATH, pooled=POOLED)
