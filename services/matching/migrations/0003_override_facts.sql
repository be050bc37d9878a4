-- SPEC §13.4: an accepted override records, per hold it released, the facts that check compared
-- ([[reason, line_id, facts], …]); it stands only while the check sees the same facts. Overrides
-- accepted before this migration have none and stand as v1 said.
ALTER TABLE overrides ADD COLUMN facts jsonb;
-- A hold that reopens a check whose override lapsed names that override.
ALTER TABLE holds ADD COLUMN lapsed_override_id text;
