"""The Ray executor: the sharded scan's tasks as Ray tasks (``audit scan --engine ray``).

``RayExecutor()`` joins the cluster named by ``RAY_ADDRESS`` if set, else starts a local Ray
instance with this machine's CPUs (or ``num_cpus``);
``RayExecutor("ray://host:10001")`` / ``RayExecutor("auto")`` joins a running cluster, whose
workers must have this package installed (the same version: tasks are shipped by reference).

Failures: Ray runs a task again when its worker dies (a lost node, the OOM killer, a decoder
crash) and, here, when it raises, up to ``retries`` more times (``max_retries``,
``retry_exceptions``); a task that fails every time comes back as
:class:`~audit.engines.executor.TaskFailed` with the last reason, and the stage reports it
(:mod:`audit.engines.sources`: its files are unreadable entries; other stages: a clear error).
Progress is reported per finished task.
"""

from __future__ import annotations

import os
from typing import Any, Sequence

from audit.engines.executor import DEFAULT_RETRIES, Executor, Progress, Task, TaskFailed, _tick, one_line
from audit.errors import AuditError, InvalidParameterError


def _ray():
    try:
        import ray
    except ImportError:
        raise InvalidParameterError("--engine ray needs Ray, which is not installed: pip install "
                                    "'ssl-poison-audit[ray]' (or use the default --engine local)") from None
    return ray


class RayExecutor(Executor):
    def __init__(self, address: str | None = None, *, num_cpus: int | None = None,
                 retries: int = DEFAULT_RETRIES) -> None:
        ray = _ray()
        self.ray, self.retries = ray, retries
        self.owns = not ray.is_initialized()
        if self.owns:
            # No --address: RAY_ADDRESS if set, else a fresh local instance ("local"). Ray's own
            # default would also follow /tmp/ray/ray_current_cluster, which a stopped `ray start`
            # leaves behind and which then fails with a connection error.
            address = address or os.environ.get("RAY_ADDRESS") or "local"
            try:
                ray.init(address=address, num_cpus=num_cpus if address == "local" else None, include_dashboard=False,
                         logging_level="ERROR", log_to_driver=False, configure_logging=False)
            except (ConnectionError, RuntimeError, ValueError) as exc:
                where = "a local Ray instance" if address == "local" else f"the Ray cluster at {address}"
                raise AuditError(f"cannot start or reach {where}: {one_line(exc)}") from None
        self.workers = max(1, int(ray.cluster_resources().get("CPU", 1)))
        self._fns: dict[tuple, Any] = {}

    def put(self, value: Any) -> Any:
        return self.ray.put(value)

    def get(self, ref: Any) -> Any:
        return self.ray.get(ref)

    def _remote(self, fn, returns: int):
        key = (fn, returns)
        if key not in self._fns:
            self._fns[key] = self.ray.remote(fn).options(num_cpus=1, num_returns=returns, max_retries=self.retries,
                                                         retry_exceptions=True)
        return self._fns[key]

    def run(self, stage: str, tasks: Sequence[Task], progress: Progress | None = None) -> list:
        ray = self.ray
        total = sum(t.weight for t in tasks)
        _tick(progress, stage, 0, total)
        refs = [self._remote(t.fn, t.returns).remote(*t.args) for t in tasks]
        # a multi-result task is finished (or failed) when its last result is: wait on that one
        last = {(r[-1] if isinstance(r, list) else r): i for i, r in enumerate(refs)}
        out: list = [None] * len(tasks)
        done = 0
        pending = list(last)
        while pending:
            ready, pending = ray.wait(pending, num_returns=1)
            for ref in ready:
                i = last[ref]
                try:
                    value = ray.get(ref)
                except ray.exceptions.RayError as exc:
                    cause = getattr(exc, "cause", None) or exc
                    out[i] = TaskFailed(one_line(cause), self.retries + 1)
                else:
                    out[i] = tuple(refs[i]) if tasks[i].returns > 1 else value
                done += tasks[i].weight
                _tick(progress, stage, done, total)
        return out

    def close(self) -> None:
        if self.owns and self.ray.is_initialized():
            self.ray.shutdown()
