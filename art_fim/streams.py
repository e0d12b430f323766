"""Per-input random streams: input ``i``'s random draws depend on ``(seed, i)`` only.

A batch drawing its probes from one generator would give an input different probes (and a
different Hutchinson value) at a different ``batch_size``. Input ``i`` of ``x`` gets its own
generator instead, seeded from ``SeedSequence(seed, spawn_key=(i,))`` (the ``i``-th child
of ``SeedSequence(seed).spawn``, as the query-only estimator uses), so values do not depend
on how ``x`` is cut into batches.
"""

from __future__ import annotations

import numpy as np
import torch


def input_generators(seed: int, start: int, count: int) -> list[torch.Generator]:
    """Return the CPU generators of inputs ``start .. start + count − 1``.

    Args:
        seed: the user's seed (non-negative).
        start: index in ``x`` of the first input of the batch.
        count: inputs in the batch.
    """
    generators = []
    for index in range(start, start + count):
        state = np.random.SeedSequence(seed, spawn_key=(index,)).generate_state(1, np.uint64)[0]
        generators.append(torch.Generator().manual_seed(int(state)))
    return generators
