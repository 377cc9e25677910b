"""pytest's entry point into recall (`[project.entry-points.pytest11]`).

recall's import package is called `proxy`, a name many projects use for a
package of their own. pytest loads every installed plugin before any test runs,
so an entry point of `proxy.cli.pytest_plugin` made plain `pytest` die in such a
project. This module has a name nobody else uses, and finds recall's package
by its location beside this file, not by winning the name `proxy`:

- when `import proxy` would give recall's package, it is used as usual;
- when another `proxy` package shadows it, recall's is loaded under the private
  name `_recall_proxy` (it imports itself only relatively), leaving `proxy` to
  the project;
- if even that fails, the project's tests still run: the `recall_proxy` fixture
  is missing and pytest shows one warning saying why.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

_PACKAGE = Path(__file__).resolve().parent / "proxy"
_ALIAS = "_recall_proxy"


def _is_recalls(spec: Any) -> bool:
    origin = getattr(spec, "origin", None)
    return isinstance(origin, str) and Path(origin).resolve().parent == _PACKAGE


def _load_plugin() -> ModuleType:
    try:
        spec = importlib.util.find_spec("proxy")
    except (ImportError, ValueError):  # a broken or half-imported `proxy` of the project's
        spec = None
    if spec is not None and _is_recalls(spec):
        return importlib.import_module("proxy.cli.pytest_plugin")
    if _ALIAS not in sys.modules:
        init = _PACKAGE / "__init__.py"
        alias_spec = importlib.util.spec_from_file_location(_ALIAS, init, submodule_search_locations=[str(_PACKAGE)])
        if alias_spec is None or alias_spec.loader is None:
            raise ImportError(f"recall's package is not at {_PACKAGE}")
        package = importlib.util.module_from_spec(alias_spec)
        sys.modules[_ALIAS] = package
        try:
            alias_spec.loader.exec_module(package)
        except BaseException:
            del sys.modules[_ALIAS]
            raise
    return importlib.import_module(f"{_ALIAS}.cli.pytest_plugin")


try:
    _plugin = _load_plugin()
except Exception as exc:  # never break a project's pytest because of recall
    _problem = (f"recall's pytest plugin is off: its package could not be loaded from {_PACKAGE} ({exc!r}); "
                "the recall_proxy fixture is unavailable. Reinstall recall-proxy, or run with -p no:recall "
                "to silence this.")

    def pytest_configure(config: Any) -> None:
        import pytest

        config.issue_config_time_warning(pytest.PytestConfigWarning(_problem), stacklevel=2)
else:
    pytest_addoption = _plugin.pytest_addoption
    pytest_configure = _plugin.pytest_configure
    recall_proxy = _plugin.recall_proxy
