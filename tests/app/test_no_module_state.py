"""No module of app/ holds mutable state: per-version data lives on the read side (IndexedSurvey.derived),
per-app limits on app.state, so a swap or a second app in the same process shares nothing by accident."""

from __future__ import annotations

import importlib
import pkgutil
import threading
import weakref
from collections import OrderedDict, deque
from pathlib import Path

# The project's app/ package by path: under pytest, `import app` can resolve to the tests/app folder.
APP_DIR = Path(__file__).resolve().parents[2] / "app"

MUTABLE = (dict, list, set, OrderedDict, deque, weakref.WeakKeyDictionary, weakref.WeakValueDictionary,
           type(threading.Lock()), type(threading.RLock()))
# Read-only tables by convention: constants are upper case.
ALLOWED_UPPER = True


def test_no_module_level_mutable_state_in_app() -> None:
    found = []
    names = [info.name for info in pkgutil.walk_packages([str(APP_DIR)], "app.")]
    assert "app.routes.votes" in names and "app.uploads" in names  # the real package, walked whole
    for module_name in names:
        module = importlib.import_module(module_name)
        for name, value in vars(module).items():
            if name.startswith("__") or (ALLOWED_UPPER and name.isupper()):
                continue
            if isinstance(value, MUTABLE):
                found.append(f"{module_name}.{name} ({type(value).__name__})")
            elif type(value).__module__.startswith("app.") and not isinstance(value, type):
                found.append(f"{module_name}.{name} (an instance of {type(value).__name__})")
    assert not found, "module-level mutable state in app/: " + ", ".join(found)
