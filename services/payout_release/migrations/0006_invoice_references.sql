-- SPEC §12.3: what an Invoice Response `PD` names — the supplier's own invoice number and the
-- parties — kept from intake's invoice.accepted (matching's decisions do not carry the number).
CREATE TABLE invoice_references (
    invoice_id               text PRIMARY KEY,
    supplier_invoice_number  text NOT NULL,
    payee_id                 text NOT NULL,
    legal_entity             text NOT NULL,
    document_type            text NOT NULL CHECK (document_type IN ('invoice', 'credit_note'))
);
