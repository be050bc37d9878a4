-- SPEC §13.1: the roles-file entry (approval_limits.<person>.<kind>[i]) that allowed each
-- approval, kept with the version or requisition it approved so the trace can show it.
ALTER TABLE po_versions ADD COLUMN approval_limit jsonb;
ALTER TABLE requisitions ADD COLUMN approval_limit jsonb;
