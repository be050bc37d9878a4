-- Roles and databases (SPEC §11 "PostgreSQL"), as the superuser `postgres`:
--   <service>_owner  owns the service's database and runs its migrations;
--   <service>        the runtime role the service connects as (named like the service); what it
--                    may do on each table the service grants it after migrating (shared/db.py);
--   concord_reader   the CLI's and the console's login: SELECT on ledger's, matching's and
--                    payout_release's tables (the console's "why not paid": payout blocks), nothing else;
--   console          the console's runtime role, in its own database (override requests);
--   concord_admin    the superuser the tests create and drop scratch databases with.
-- None but concord_admin is a superuser, and none reaches another service's database. Every
-- password is local-dev-<role>: local development only (shared/production.py refuses them).
--
-- Idempotent, and it upgrades a v1 cluster (password = role name, the service role owning its
-- database and tables) in place: deploy/postgres.sh runs it on every start; the postgres image
-- runs it once on an empty volume. Needs psql (\gexec, \connect, \ir).

\set ON_ERROR_STOP on

SELECT format('CREATE ROLE %I', r)
  FROM unnest(ARRAY['concord_admin', 'concord_reader',
                    'intake', 'matching', 'compliance_gate', 'payout_release', 'ledger', 'console',
                    'intake_owner', 'matching_owner', 'compliance_gate_owner',
                    'payout_release_owner', 'ledger_owner', 'console_owner']) AS r
 WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r)
\gexec

ALTER ROLE concord_admin WITH LOGIN SUPERUSER CREATEDB CREATEROLE PASSWORD 'local-dev-concord_admin';

SELECT format('ALTER ROLE %I WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS '
              'PASSWORD %L', r, 'local-dev-' || r)
  FROM unnest(ARRAY['concord_reader',
                    'intake', 'matching', 'compliance_gate', 'payout_release', 'ledger', 'console',
                    'intake_owner', 'matching_owner', 'compliance_gate_owner',
                    'payout_release_owner', 'ledger_owner', 'console_owner']) AS r
\gexec

-- Collation "C" (byte order; for UTF-8 the code point order C.UTF-8 sorts in too, so no result
-- changes): PostgreSQL 15 compares text under any other collation through strcoll, ~20% slower
-- on the services' text keys (docs/performance.md, "Stop 30"). template0: the collation may
-- differ from the cluster's (one initialised before keeps C.UTF-8 for its own databases).
SELECT format('CREATE DATABASE %I OWNER %I TEMPLATE template0 LC_COLLATE %L', d, d || '_owner', 'C')
  FROM unnest(ARRAY['intake', 'matching', 'compliance_gate', 'payout_release', 'ledger', 'console']) AS d
 WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = d)
\gexec

-- v1 made the runtime role the database's owner.
SELECT format('ALTER DATABASE %I OWNER TO %I', d, d || '_owner')
  FROM unnest(ARRAY['intake', 'matching', 'compliance_gate', 'payout_release', 'ledger', 'console']) AS d
\gexec

-- A role reaches only its own service's database (concord_reader: ledger's, matching's, payout_release's).
SELECT format('REVOKE CONNECT, TEMPORARY ON DATABASE %I FROM PUBLIC', d)
     || format('; GRANT CONNECT ON DATABASE %I TO %I, %I', d, d, d || '_owner')
  FROM unnest(ARRAY['intake', 'matching', 'compliance_gate', 'payout_release', 'ledger', 'console']) AS d
\gexec
GRANT CONNECT ON DATABASE ledger, matching, payout_release TO concord_reader;

-- Inside each database (database.psql reads these variables).
\set db intake
\set reader false
\set append_only ''
\ir database.psql
\set db compliance_gate
\ir database.psql
\set db console
\ir database.psql
\set db matching
\set reader true
\ir database.psql
\set db payout_release
\ir database.psql
\set db ledger
\set append_only 'journal_entries,journal_lines'
\ir database.psql

-- bank_gateway (SPEC §12.4): its own database, owner and runtime roles, reached by no other role.
-- Appended as one block so the lists above stay as other services left them.
SELECT format('CREATE ROLE %I', r)
  FROM unnest(ARRAY['bank_gateway', 'bank_gateway_owner']) AS r
 WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r)
\gexec
SELECT format('ALTER ROLE %I WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS '
              'PASSWORD %L', r, 'local-dev-' || r)
  FROM unnest(ARRAY['bank_gateway', 'bank_gateway_owner']) AS r
\gexec
SELECT 'CREATE DATABASE bank_gateway OWNER bank_gateway_owner TEMPLATE template0 LC_COLLATE ''C'''
 WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = 'bank_gateway')
\gexec
REVOKE CONNECT, TEMPORARY ON DATABASE bank_gateway FROM PUBLIC;
GRANT CONNECT ON DATABASE bank_gateway TO bank_gateway, bank_gateway_owner;
\set db bank_gateway
\set reader false
\set append_only ''
\ir database.psql
