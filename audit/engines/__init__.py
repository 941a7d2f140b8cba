"""Scan engines: where the stages of ``audit scan`` run (issue #17).

    local  (default)  one process: audit.scan.pipeline, unchanged
    ray               the same stages cut into shards and run as Ray tasks on a cluster
                      (``pip install -e ".[ray]"``; ``audit scan --engine ray [--address ADDR]``)

The sharded stages (:mod:`audit.engines.sharded`) compute exactly what the local engine computes,
bit for bit: the PCA is fitted on the same seeded sample rows, the IVF quantizer is trained once on
the same rows faiss's own k-means would draw, every shard processes whole batches of the local
engine's batch partition, and per-shard neighbour lists are merged by (distance, id). Detectors
then run on the driver with the merged graph, reading pixel rows from where the shards keep them
(:class:`audit.engines.blocks.ShardedRows`). Findings and per-image scores are therefore identical
to a local run (tests/audit/engines). The executor behind the stages is pluggable:
:class:`~audit.engines.executor.SerialExecutor` runs them in this process (the tests of the
shard arithmetic need no Ray), :class:`~audit.engines.ray.RayExecutor` on a cluster.
"""

from __future__ import annotations

ENGINES = ("local", "ray")

__all__ = ["ENGINES"]
