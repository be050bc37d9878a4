-- The append-only triggers fire even with session_replication_role = replica (which a
-- superuser could set to skip ordinary triggers): the journal is append-only for every role.
ALTER TABLE journal_entries ENABLE ALWAYS TRIGGER journal_entries_append_only;
ALTER TABLE journal_entries ENABLE ALWAYS TRIGGER journal_entries_no_truncate;
ALTER TABLE journal_lines ENABLE ALWAYS TRIGGER journal_lines_append_only;
ALTER TABLE journal_lines ENABLE ALWAYS TRIGGER journal_lines_no_truncate;
ALTER TABLE journal_entries ENABLE ALWAYS TRIGGER journal_entries_balanced;
