"""Storage behind one interface: SQLite today (sqlite.py), schema in migrations.py."""

from .records import Exchange
from .sqlite import SQLiteStore
from .writer import StoreUnavailable

__all__ = ["Exchange", "SQLiteStore", "StoreUnavailable"]
