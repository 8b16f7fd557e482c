"""Serving tasks, one module each, loaded by name on demand.

A task module ``py_bridge/tasks/<name>.py`` defines ``TASK``, a subclass of
:class:`py_bridge.tasks.base.Task`. Modules are imported only when a worker
is asked for that task, so a worker imports torch and transformers for the
task it serves and nothing else.
"""

from __future__ import annotations

import importlib
import pkgutil

from py_bridge.errors import UnsupportedError
from py_bridge.tasks.base import BatchContext, Task

__all__ = ["BatchContext", "Task", "available", "task_class"]

_NOT_TASKS = {"base"}


def available() -> list[str]:
    """Names of every task this worker can serve."""
    return sorted(
        m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_") and m.name not in _NOT_TASKS
    )


def task_class(name: str) -> type[Task]:
    """The Task class for ``name``, or UnsupportedError listing the known tasks."""
    if name not in available():
        raise UnsupportedError(f"unknown task {name!r}; this worker serves: {', '.join(available())}")
    module = importlib.import_module(f"{__name__}.{name}")
    return module.TASK
