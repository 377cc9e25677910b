"""Auditing the database: the queries and renderers behind `recall ls/show/search/...`.

- `queries.py`: every read the CLI makes, and the erase commands in transactions.
- `render.py`: text and JSON forms of what the queries return.
- `export.py`: JSONL and Markdown streams, with a progress bar on a terminal.
- `when.py`: the moments and durations the CLI accepts (`2026-01-31`, `30d`).
"""
