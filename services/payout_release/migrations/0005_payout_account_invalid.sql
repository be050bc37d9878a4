-- SPEC §12.4: a rail failure pointing at the payee's account (unknown_account, AC01, AC04, AC06)
-- blocks the payee's invoices with payout_account_invalid until the payee's profile changes
-- (a newer profile_version clears it), instead of re-releasing them to the same account every run.
ALTER TABLE payees ADD COLUMN account_invalid text;
