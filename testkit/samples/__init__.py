"""The tests' sample documents: `upstream` (what intake is sent: PO-1 and its invoice, …),
`intake` (what intake publishes on concord.intake.documents, and the commands ops sends)."""
