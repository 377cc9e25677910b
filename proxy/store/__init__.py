"""Storage behind one interface (protocol.py: Store, AuditStore): SQLite today (sqlite.py,
audit_db.py), schema in migrations.py. Every SQL statement of recall lives in this package."""

from .protocol import AuditStore, Store
from .records import Exchange
from .sqlite import SQLiteStore
from .writer import StoreUnavailable

__all__ = ["AuditStore", "Exchange", "SQLiteStore", "Store", "StoreUnavailable"]
