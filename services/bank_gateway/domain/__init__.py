"""bank_gateway's pure rules: identifiers, accounts, the pain.001 file, reading bank reports."""
