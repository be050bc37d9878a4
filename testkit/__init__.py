"""Test kit: the one set of document builders, records and topic watchers that the tests, the
chaos run, the benchmark and the demo share, and a SQL statement counter for set-based tests.

- `testkit.documents`: the `data` of every document (upstream, commands, rail, intake's);
- `testkit.samples`: the tests' sample documents (PO-1 and its invoice, …) built from them;
- `testkit.scenario`: the demo's month of spend;
- `testkit.records`: a record as a consumer receives it (no Kafka);
- `testkit.watch`: watching topics as an outsider does;
- `testkit.sql`: counting the SQL statements a batch issues on a connection.
"""
