"""Using the farm from a program: ``Client`` (futures of task results),
``FarmExecutor`` (a standard Executor for python callables) and ``LocalFarm``
(a throw-away farm on this machine)."""

from .client import Client
from .executor import FarmExecutor
from .localfarm import LocalFarm
from .tasks import TaskFuture, TaskResult

__all__ = ["Client", "FarmExecutor", "LocalFarm", "TaskFuture", "TaskResult"]
