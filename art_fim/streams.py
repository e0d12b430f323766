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


def _seed_sequence(seed: int, index: int) -> np.random.SeedSequence:
    return np.random.SeedSequence(seed, spawn_key=(index,))


def input_generators(seed: int, start: int, count: int) -> list[torch.Generator]:
    """Return the CPU generators of inputs ``start .. start + count − 1``.

    Args:
        seed: the user's seed (non-negative).
        start: index in ``x`` of the first input of the batch.
        count: inputs in the batch.
    """
    generators = []
    for index in range(start, start + count):
        state = _seed_sequence(seed, index).generate_state(1, np.uint64)[0]
        generators.append(torch.Generator().manual_seed(int(state)))
    return generators


def input_rngs(seed: int, start: int, count: int) -> list[np.random.Generator]:
    """Return the NumPy generators of inputs ``start .. start + count − 1``.

    Input ``i``'s is ``default_rng(SeedSequence(seed).spawn(N)[i])`` for any ``N > i``.
    """
    return [np.random.default_rng(_seed_sequence(seed, i)) for i in range(start, start + count)]
