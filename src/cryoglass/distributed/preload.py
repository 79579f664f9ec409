"""Dask worker preload: import the task code and tune the allocator as a worker starts.

Without it, each worker's first task pays for ``import torch`` and cryoglass (about a second on
a laptop core) while the job waits.  The LocalClusters cryoglass starts load this module into
every worker (:func:`cryoglass.distributed.open_client`), so the imports happen while the
cluster starts, all workers at once.  Workers of an existing cluster get it with

    dask worker tcp://scheduler:8786 --preload cryoglass.distributed.preload

(docs/scaling.md); without it they import on their first task, with the same results.
"""

from __future__ import annotations

import cryoglass.geometry  # noqa: F401 - imported for its side effect: loaded before any task
import cryoglass.io  # noqa: F401
import cryoglass.reconstruct  # noqa: F401
from cryoglass.distributed.tasks import tune_allocator


def dask_setup(worker) -> None:
    """Called by Dask once the worker has started: let glibc reuse freed heap for tensors."""
    tune_allocator()
