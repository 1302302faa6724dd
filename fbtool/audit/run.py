"""Run the audit over many files on all cores, streaming records in a stable order."""
from __future__ import annotations

import itertools
import os
from collections import deque
from concurrent.futures import ProcessPoolExecutor
from typing import Iterable, Iterator

from .discover import models_in_file, walk
from .policy import Policy, judge
from .record import audit_found

BATCH = 32               # files per task: one task per file cost more in the parent than the audit itself
WINDOW_PER_WORKER = 4    # batches in flight per worker: memory stays bounded for any tree size
INLINE_BELOW = 4         # so few files are not worth starting worker processes for


def audit_file(path: str, policy: Policy) -> list[dict]:
    """Every model a file is or holds, audited and judged."""
    return [judge(audit_found(found, policy.for_location(found.location).target_runtime), policy)
            for found in models_in_file(path)]


def audit_batch(paths: list[str], policy: Policy) -> list[dict]:
    return [record for path in paths for record in audit_file(path, policy)]


def audit_paths(paths: Iterable[str], policy: Policy, jobs: int | None = None) -> Iterator[dict]:
    """Records for every model under ``paths``, in walk order."""
    files = walk(list(paths))
    jobs = jobs or os.cpu_count() or 1
    head = []
    for path in files:
        head.append(path)
        if len(head) >= INLINE_BELOW:
            break
    if jobs == 1 or len(head) < INLINE_BELOW:
        for path in head:
            yield from audit_file(path, policy)
        for path in files:
            yield from audit_file(path, policy)
        return
    paths = itertools.chain(head, files)
    with ProcessPoolExecutor(jobs) as pool:
        pending: deque = deque()
        while batch := list(itertools.islice(paths, BATCH)):
            pending.append(pool.submit(audit_batch, batch, policy))
            if len(pending) >= jobs * WINDOW_PER_WORKER:
                yield from pending.popleft().result()
        while pending:
            yield from pending.popleft().result()
