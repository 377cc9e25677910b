"""The store's boundary: SQL and the database drivers stay under proxy/store/, and the
implementations keep to the protocols (proxy/store/protocol.py) the rest of recall speaks.

A second backend (PostgreSQL) is written against those protocols; SQL outside the store would
have to be written twice, once per backend, and would be missed.
"""

from __future__ import annotations

import ast
import asyncio
import inspect
import re
from pathlib import Path

import pytest

from proxy.store.audit_db import AuditDB
from proxy.store.pg_audit import PgAudit
from proxy.store.postgres import PostgresStore
from proxy.store.protocol import AuditStore, Store
from proxy.store.sqlite import SQLiteStore

PROXY = Path(__file__).resolve().parent.parent / "proxy"
STORE = PROXY / "store"
DRIVERS = {"sqlite3", "aiosqlite", "asyncpg"}

# What an SQL statement looks like in a string: a query, a write, a pragma, a transaction.
SQL = re.compile(
    r"\bSELECT\b[\s\S]*\bFROM\b|\bINSERT\s+(?:OR\s+\w+\s+)?INTO\b|\bUPDATE\s+\w+\s+SET\b|\bDELETE\s+FROM\b"
    r"|\bPRAGMA\s+\w+|^\s*(?:BEGIN(?:\s+IMMEDIATE)?|COMMIT|ROLLBACK|SAVEPOINT\s+\w+|VACUUM)\s*$"
)


def _modules_outside_store() -> list[Path]:
    return sorted(p for p in PROXY.rglob("*.py") if STORE not in p.parents)


def _name(path: Path) -> str:
    return path.relative_to(PROXY.parent).as_posix()


def _strings(tree: ast.AST) -> list[str]:
    """Every string a module computes with (docstrings and other bare strings are prose, not statements);
    an f-string counts by its literal parts joined."""
    prose = {id(node.value) for node in ast.walk(tree) if isinstance(node, ast.Expr)}
    found: list[str] = []
    for node in ast.walk(tree):
        if id(node) in prose:
            continue
        if isinstance(node, ast.JoinedStr):
            found.append(" ".join(v.value for v in node.values if isinstance(v, ast.Constant) and isinstance(v.value, str)))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            found.append(node.value)
    return found


def _imported(tree: ast.AST) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_the_scan_finds_sql_where_it_is() -> None:
    """The scan itself works: the store's own modules are full of what it looks for."""
    tree = ast.parse((STORE / "sqlite.py").read_text())
    assert any(SQL.search(text) for text in _strings(tree))
    assert {"sqlite3", "aiosqlite"} <= _imported(tree)
    postgres = ast.parse((STORE / "pg_audit.py").read_text())
    assert "asyncpg" in _imported(postgres)
    assert any(SQL.search(text) for text in _strings(ast.parse((STORE / "pg_audit_reads.py").read_text())))
    assert "asyncpg" in _imported(ast.parse((STORE / "pg_connect.py").read_text()))


@pytest.mark.parametrize("path", _modules_outside_store(), ids=_name)
def test_no_sql_and_no_driver_outside_the_store(path: Path) -> None:
    tree = ast.parse(path.read_text(), filename=str(path))
    name = _name(path)
    drivers = _imported(tree) & DRIVERS
    assert not drivers, f"{name} imports {sorted(drivers)}: go through proxy.store"
    statements = {text.strip() for text in _strings(tree) if SQL.search(text)}
    assert not statements, f"{name} holds SQL; move it under proxy/store/: {statements}"


def _members(protocol: type) -> list[str]:
    return sorted(name for name in vars(protocol) if not name.startswith("_"))


@pytest.mark.parametrize(("implementation", "protocol"),
                         [(SQLiteStore, Store), (PostgresStore, Store), (AuditDB, AuditStore), (PgAudit, AuditStore)],
                         ids=["SQLiteStore", "PostgresStore", "AuditDB", "PgAudit"])
def test_the_sqlite_implementation_has_every_operation_as_declared(implementation: type, protocol: type) -> None:
    """Each operation of the protocol, with the same parameters (names, kinds, defaults) and,
    where the protocol's is a coroutine, a coroutine too. mypy checks the types
    (the `type[...]` assignments at the end of sqlite.py and audit_db.py)."""
    for name in _members(protocol):
        declared = getattr(protocol, name)
        if isinstance(declared, property):
            continue  # an attribute: checked on an instance below
        made = getattr(implementation, name, None)
        assert made is not None, f"{implementation.__name__} has no {name}"
        assert inspect.iscoroutinefunction(made) == inspect.iscoroutinefunction(declared), name
        expected = [(p.name, p.kind, p.default) for p in inspect.signature(declared).parameters.values()]
        actual = [(p.name, p.kind, p.default) for p in inspect.signature(made).parameters.values()]
        assert actual == expected, f"{implementation.__name__}.{name}"


def test_an_open_store_is_a_store_and_its_file_an_audit_store(tmp_path: Path) -> None:
    path = tmp_path / "recall.db"

    async def open_and_close() -> None:
        store = await SQLiteStore.open(path)
        try:
            assert isinstance(store, Store)
        finally:
            await store.close()

    asyncio.run(open_and_close())
    audit = AuditDB.open(path)
    try:
        assert isinstance(audit, AuditStore)
    finally:
        audit.close()
