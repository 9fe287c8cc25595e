-- Apache mod_lua log hook for tracwsgiauth ([wsgiauth] log_trac_logins):
-- gives the access log (%u) the user Trac considers logged in, also when
-- the login happened through a Trac form rather than Apache auth.
--
-- trac.wsgi reports the user in X-Remote-User/X-Auth-Type response
-- headers. mod_headers must copy them into request notes and strip them
-- before the response leaves (the client must never see them):
--     Header note X-Remote-User tracwsgiauth-user
--     Header note X-Auth-Type tracwsgiauth-auth-type
--     Header unset X-Remote-User
--     Header unset X-Auth-Type
--     LuaHookLog /path/to/log_remote_user.lua log_remote_user
-- `trac-admin ENV deploy` writes exactly this into apache/trac.conf.

function log_remote_user(r)
    local user = r.notes['tracwsgiauth-user']
    if user and user ~= '' and not r.user then
        r.user = user
        r.ap_auth_type = r.notes['tracwsgiauth-auth-type'] or 'Trac'
    end
    return apache2.DECLINED
end
