"""The first model of a run is not charged for start-up: the warm-up pass is timed apart.

A fake clock stands in for ``time.perf_counter``: the warm-up call of ``fisher_statistics``
advances it by 100 s (CUDA initialisation, kernel loading, the allocator's first requests),
the timed pass by 2 s. The record must say 100 s of warm-up, 2 s of Fisher time and the
images per second of the timed pass alone.
"""

from __future__ import annotations

import numpy as np
import pytest
from test_zoo_leaderboard import make_zoo

import art_fim
from leaderboard import scoring
from leaderboard.scoring import WARMUP_IMAGES, ScoreConfig, score_model
from leaderboard.zoo.entries import zoo_entries

START_UP_SECONDS, TIMED_SECONDS, N_EXAMPLES = 100.0, 2.0, 4


class FakeClock:
    """A clock that moves only when told to."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_warm_up_is_recorded_apart_from_the_timed_pass(tmp_path, monkeypatch: pytest.MonkeyPatch):
    zoo = make_zoo(tmp_path / "zoo")
    entry = zoo_entries(zoo)[0]
    config = ScoreConfig(model_dir=str(zoo), n_examples=N_EXAMPLES, batch_size=4, method="exact",
                         device="cpu", progress=False, source="zoo")
    clock, calls = FakeClock(), []
    real = art_fim.fisher_statistics

    def timed(model, x, y, **kwargs):
        result = real(model, x, y, **kwargs)
        calls.append(len(x))
        clock.now += START_UP_SECONDS if len(calls) == 1 else TIMED_SECONDS
        return result

    monkeypatch.setattr(art_fim, "fisher_statistics", timed)
    monkeypatch.setattr(scoring.time, "perf_counter", clock)
    record = score_model(entry, config).record

    assert record.status == "ok", record.error
    assert calls == [WARMUP_IMAGES, N_EXAMPLES]  # a short warm-up, then every image once
    seconds = record.seconds
    assert seconds["warmup"] == START_UP_SECONDS
    assert seconds["fisher"] == TIMED_SECONDS
    assert record.images_per_second == N_EXAMPLES / TIMED_SECONDS
    assert seconds["total"] == START_UP_SECONDS + TIMED_SECONDS + seconds["load"]
    assert np.isfinite(record.fisher["spectral_norm"]["median"])
