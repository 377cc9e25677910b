"""Storage behind one interface: SQLite today (sqlite.py), schema in migrations.py."""

from .records import Exchange
from .sqlite import SQLiteStore

__all__ = ["Exchange", "SQLiteStore"]
