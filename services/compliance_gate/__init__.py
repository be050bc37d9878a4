"""compliance_gate: payee profiles → payout eligibility (SPEC §7). Configuration: see app.py."""
