-- One role and one database per service (role = database = password = service
-- name; local development only), plus the concord_admin superuser that tests
-- use to create and drop scratch databases. Idempotent: deploy/postgres.sh runs
-- it on every start; the postgres image runs it once on an empty volume.
-- Needs psql (\gexec).

SELECT format('CREATE ROLE %I', r)
  FROM unnest(ARRAY['concord_admin', 'intake', 'matching', 'compliance_gate',
                    'payout_release', 'ledger']) AS r
 WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r)
\gexec

ALTER ROLE concord_admin WITH LOGIN SUPERUSER CREATEDB CREATEROLE PASSWORD 'concord_admin';

SELECT format('ALTER ROLE %I WITH LOGIN NOSUPERUSER PASSWORD %L', r, r)
  FROM unnest(ARRAY['intake', 'matching', 'compliance_gate', 'payout_release', 'ledger']) AS r
\gexec

SELECT format('CREATE DATABASE %I OWNER %I', d, d)
  FROM unnest(ARRAY['intake', 'matching', 'compliance_gate', 'payout_release', 'ledger']) AS d
 WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = d)
\gexec

-- A service reaches only its own database (concord_admin is a superuser).
SELECT format('REVOKE CONNECT, TEMPORARY ON DATABASE %I FROM PUBLIC', d)
  FROM unnest(ARRAY['intake', 'matching', 'compliance_gate', 'payout_release', 'ledger']) AS d
\gexec
