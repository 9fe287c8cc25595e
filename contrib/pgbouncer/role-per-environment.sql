-- A login role for one Trac environment, with its search_path pinned to
-- the environment's schema, for role-per-environment.ini. Run as a
-- superuser in the shared database:
--
--   psql -d trac -v env=proj1 -v password='...' -f role-per-environment.sql
--
-- then create the environment as that role (Trac creates the schema):
--
--   trac-admin /srv/trac/proj1 initenv proj1 \
--     'postgres://trac_proj1:...@127.0.0.1:6432/trac?schema=proj1'
\set ON_ERROR_STOP on
\set role trac_ :env
CREATE ROLE :"role" LOGIN PASSWORD :'password';
-- every session of the role starts in the environment's schema, whatever
-- server connection PgBouncer hands it
ALTER ROLE :"role" IN DATABASE :"DBNAME" SET search_path = :"env";
-- Trac creates its schema itself; the role gets no rights on other
-- environments' schemas (PostgreSQL 15 grants no CREATE on public)
GRANT CONNECT, CREATE ON DATABASE :"DBNAME" TO :"role";
