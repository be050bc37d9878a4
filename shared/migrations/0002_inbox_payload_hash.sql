-- SPEC §15: an event_id seen before with a different payload is not applied but deadlettered
-- (`event_id_conflict`). Each inbox row keeps the fingerprint of what its event_id stood for
-- (shared.envelope.payload_fingerprint); rows written before this migration have none and are
-- treated as plain duplicates.
ALTER TABLE inbox ADD COLUMN payload_hash text;
