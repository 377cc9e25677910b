"""The layout's rules, read from the source: imports run one way, no cycle, no module too long.

recall is a stack of layers (docs/ARCHITECTURE.md draws it). A module may import
from its own layer and those below, never from above: the edge (http/) knows the
pipeline, the pipeline never the edge. A cycle, even through a local import,
fails here too, as does a module past MAX_LINES: split it by concern.
"""

from __future__ import annotations

import ast
from pathlib import Path

PROXY = Path(__file__).resolve().parent.parent / "proxy"

# Bottom first. A name is a top-level module or package of proxy/.
LAYERS: tuple[tuple[str, frozenset[str]], ...] = (
    ("the neutral model", frozenset({"__init__", "errors", "ids", "model", "deltas", "sse", "files", "seal"})),
    ("codecs", frozenset({"codecs"})),
    ("settings", frozenset({"config", "auth", "origin", "limits", "sdk_env"})),
    ("store", frozenset({"store"})),
    ("replay", frozenset({"replay"})),
    ("pipeline", frozenset({"pipeline"})),
    ("endpoints", frozenset({"endpoints"})),
    ("audit", frozenset({"audit"})),
    ("viewer", frozenset({"viewer"})),
    ("http", frozenset({"http"})),
    ("cli", frozenset({"cli", "__main__"})),
)
MAX_LINES = 600


def _layer(top: str) -> int:
    for index, (_, names) in enumerate(LAYERS):
        if top in names:
            return index
    raise AssertionError(f"proxy/{top} is in no layer of tests/test_layers.py: add it where it belongs")


def _module_name(path: Path) -> str:
    parts = path.relative_to(PROXY.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """The proxy modules `path` imports, local imports included, resolved to module names."""
    name = _module_name(path)
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join([*base, *(node.module.split(".") if node.module else [])])
            for alias in node.names:
                candidate = f"{module}.{alias.name}"
                found.add(candidate if _exists(candidate) else module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {_existing(target) for target in found if target == "proxy" or target.startswith("proxy.")} - {name}


def _exists(module: str) -> bool:
    path = PROXY.parent.joinpath(*module.split("."))
    return path.with_suffix(".py").exists() or (path / "__init__.py").exists()


def _existing(module: str) -> str:
    while not _exists(module):
        module = module.rpartition(".")[0]
    return module


def _top(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


GRAPH = {_module_name(path): _imports(path) for path in sorted(PROXY.rglob("*.py"))}


def test_imports_run_one_way() -> None:
    upward = []
    for module, targets in GRAPH.items():
        own = _layer(_top(module))
        for target in sorted(targets):
            if _layer(_top(target)) > own:
                upward.append(f"{module} ({LAYERS[own][0]}) imports {target} ({LAYERS[_layer(_top(target))][0]})")
    assert upward == []


def test_no_import_cycle() -> None:
    cycles = []
    for start in GRAPH:
        # Depth-first from each module, looking for a way back to it.
        stack, seen = [(start, (start,))], set()
        while stack:
            module, path = stack.pop()
            for target in GRAPH.get(module, ()):
                if target == start:
                    cycles.append(" -> ".join([*path, start]))
                elif target not in seen:
                    seen.add(target)
                    stack.append((target, (*path, target)))
    assert cycles == []


def test_no_module_is_longer_than_it_can_be_read() -> None:
    long = [f"{path.relative_to(PROXY.parent)}: {count} lines" for path in sorted(PROXY.rglob("*.py"))
            if (count := len(path.read_text().splitlines())) > MAX_LINES]
    assert long == []


def test_from_the_cli_down_to_the_model_is_at_most_eight_packages() -> None:
    """However many modules a package holds, a chain of packages (cli → http → … → model) stays short."""
    between: dict[str, set[str]] = {}
    for module, targets in GRAPH.items():
        between.setdefault(_top(module), set()).update(_top(t) for t in targets if _top(t) != _top(module))

    def floors(package: str, seen: tuple[str, ...] = ()) -> int:
        if package in seen:  # a cycle between packages: test_imports_run_one_way names it
            return 0
        return 1 + max((floors(p, (*seen, package)) for p in between.get(package, ())), default=0)

    assert floors("cli") <= 8
