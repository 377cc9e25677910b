"""Auditing the database: the renderers behind `recall ls/show/search/...`.

The reads and erases themselves are the store's (AuditStore, proxy/store/protocol.py).

- `render.py`: text and JSON forms of what the queries return.
- `export.py`: JSONL and Markdown streams, with a progress bar on a terminal.
- `when.py`: the moments and durations the CLI accepts (`2026-01-31`, `30d`).
"""
