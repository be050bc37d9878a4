-- SPEC §1 rule 8 / §14.1: a payout run is its own trace and links to the trace of each invoice it
-- pays. The W3C traceparent of the span that recorded the invoice's approval, kept for that link.
ALTER TABLE invoices ADD COLUMN traceparent text;
