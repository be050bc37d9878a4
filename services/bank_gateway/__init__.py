"""bank_gateway: the reference rail of SPEC §12.4 (ISO 20022 files out and in)."""
