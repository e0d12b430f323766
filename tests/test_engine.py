"""Every public entry point runs through the batch engine: it honours ``memory_budget`` and gives
back the module's flags.

Peak memory is measured as in ``test_memory.py``: the process's peak resident set on CPU, in a
fresh interpreter, with glibc told to return every block over 64 KiB at once. Each entry point is
run on a convolutional network with ``K = 100`` classes and 16 inputs, under a 64 MiB budget and
under an unlimited one; the unlimited run shows that the measurement can fail (it exceeds the
budget), the budgeted run must not.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_memory import _clear_refs_writable
from torch import nn

import art_fim
from art_fim.lipschitz import (
    certified_accuracy,
    certified_fisher_bound,
    certified_radius,
    jacobian_spectral_norm,
    local_norms,
    tightness,
)
from art_fim.precision import Settings

ROOT = Path(__file__).resolve().parents[1]
BUDGET = 64 * 2**20

# name -> the call, as source run in the measuring interpreter with `model`, `x`, `y` and
# `budget` in scope. Every public entry point that runs the model on inputs; QUIET is the budget
# and no progress bar.
QUIET = "memory_budget=budget, verbose=False"
ENTRY_POINTS = {
    "fisher_spectral_norm exact": f"fisher_spectral_norm(model, x, method='exact', {QUIET})",
    "fisher_spectral_norm lanczos": f"fisher_spectral_norm(model, x, method='lanczos', {QUIET})",
    "fisher_trace hutchinson": f"fisher_trace(model, x, method='hutchinson', {QUIET})",
    "fisher_statistics": f"fisher_statistics(model, x, y, {QUIET})",
    "fisher_statistics lanczos": f"fisher_statistics(model, x, y, method='lanczos', {QUIET})",
    "robust_radius": f"robust_radius(model, x, y, {QUIET})",
    "fisher_linf_bounds": f"fisher_linf_bounds(model, x, {QUIET})",
    "expected_noise_kl": f"expected_noise_kl(model, x, 0.05, num_samples=64, {QUIET})",
    "average_case mc": (
        f"average_case_robustness(model, x, 0.05, method='mc', num_samples=512, {QUIET})"
    ),
    "average_case taylor": f"average_case_robustness(model, x, 0.05, method='taylor', {QUIET})",
    "average_case mmse": f"average_case_robustness(model, x, 0.05, method='mmse', {QUIET})",
    "local_norms": "local_norms(model, x, memory_budget=budget)",
    "certified_radius": "certified_radius(model, x, bound=1.0, memory_budget=budget)",
    "blackbox": f"fisher_spectral_norm(model, x, method='blackbox', {QUIET}, "
    "blackbox_params={'max_queries': 201})",
}

_MEASURE = """
import json, sys
import numpy as np, torch
from test_memory import conv_net
from art_fim import *
from art_fim.lipschitz import certified_radius, local_norms

calls = json.loads(sys.argv[1])
budget_value = int(sys.argv[2])


def status(key):
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith(key))


def peak(source, budget):
    exec(source, globals(), {**globals(), "budget": budget})  # warm-up: one-time allocations
    base = status("VmRSS:")
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # resets VmHWM, the peak resident set, to the current one
    exec(source, globals(), {**globals(), "budget": budget})
    return status("VmHWM:") - base


exec(sys.argv[3])  # the model and the inputs
y = model(torch.from_numpy(x)).argmax(1).numpy()
print(json.dumps({name: peak(source, budget_value) for name, source in calls.items()}))
"""
# The model and inputs of the entry points' measurement: K = 100, 16 CIFAR-size inputs.
CONV_SETUP = """
model = conv_net()
x = np.random.default_rng(0).random((16, 3, 32, 32)).astype(np.float32)
"""


def _measure(calls: dict[str, str], budget: int, setup: str = CONV_SETUP) -> dict[str, int]:
    """Peak resident bytes of each call in ``calls`` (source, ``model``, ``x``, ``y`` and
    ``budget`` in scope; ``setup`` defines ``model`` and ``x``), in a fresh interpreter.
    """
    env = dict(
        os.environ,
        MALLOC_MMAP_THRESHOLD_="65536",
        OMP_NUM_THREADS="1",
        PYTHONPATH=os.pathsep.join([str(ROOT / "tests"), os.environ.get("PYTHONPATH", "")]),
    )
    out = subprocess.run(
        [sys.executable, "-c", _MEASURE, json.dumps(calls), str(budget), setup],
        cwd=ROOT, env=env, capture_output=True, text=True, check=True,
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


@pytest.mark.slow
@pytest.mark.skipif(not _clear_refs_writable(), reason="needs Linux's /proc/self/clear_refs")
def test_every_entry_point_keeps_its_peak_memory_within_the_budget():
    calls = ENTRY_POINTS
    planned = _measure(calls, BUDGET)
    unplanned = _measure(calls, 2**40)
    report = {name: (planned[name] / 2**20, unplanned[name] / 2**20) for name in calls}
    over = {name: peaks for name, peaks in report.items() if planned[name] > BUDGET}
    assert not over, (
        f"peaks over the {BUDGET / 2**20:.0f} MiB budget (MiB, planned / unlimited): {over}"
    )
    # The measurement can fail: without a budget, most entry points exceed this one.
    exceeding = [name for name in calls if unplanned[name] > BUDGET]
    assert len(exceeding) >= len(calls) // 2, report


# ---------------------------------------------------------------------------------------------
# Flags: training modes (mixed), requires_grad, and the numerical-precision settings come back.


class _Freezing(nn.Sequential):
    """A model whose own ``train()`` freezes its parameters in eval mode (as some fine-tuning code
    does): ``eval()`` turns every ``requires_grad`` off, which ``training`` flags do not restore.
    """

    def train(self, mode: bool = True) -> _Freezing:
        super().train(mode)
        for parameter in self.parameters():
            parameter.requires_grad_(mode)
        return self


def _net(freezing: bool = False) -> nn.Module:
    torch.manual_seed(0)
    kind = _Freezing if freezing else nn.Sequential
    return kind(
        nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Dropout(0.2), nn.Flatten(),
        nn.Linear(4 * 6 * 6, 5),
    )


def _classifier(model: nn.Module) -> Any:
    from art.estimators.classification import PyTorchClassifier

    return PyTorchClassifier(
        model, nn.CrossEntropyLoss(), input_shape=(3, 8, 8), nb_classes=5, clip_values=(0.0, 1.0)
    )


X = np.random.default_rng(1).random((3, 3, 8, 8)).astype(np.float32)
Y = np.array([0, 1, 2])

CALLS: dict[str, Callable[[Any], Any]] = {
    "FisherInformationMetric": lambda c: art_fim.FisherInformationMetric(c, verbose=False).estimate(
        X
    ),
    "fisher_spectral_norm lanczos": lambda c: art_fim.fisher_spectral_norm(
        c, X, method="lanczos", verbose=False
    ),
    "fisher_trace hutchinson": lambda c: art_fim.fisher_trace(
        c, X, method="hutchinson", verbose=False
    ),
    "fisher_spectral_norm blackbox": lambda c: art_fim.fisher_spectral_norm(
        c, X, method="blackbox", verbose=False, blackbox_params={"max_queries": 21}
    ),
    "fisher_statistics": lambda c: art_fim.fisher_statistics(c, X, Y, verbose=False),
    "predicted_robust_accuracy": lambda c: art_fim.predicted_robust_accuracy(
        c, X, Y, 0.01, verbose=False
    ),
    "fisher_linf_bounds": lambda c: art_fim.fisher_linf_bounds(c, X, verbose=False),
    "expected_noise_kl": lambda c: art_fim.expected_noise_kl(
        c, X, 0.05, num_samples=4, verbose=False
    ),
    "average_case mc": lambda c: art_fim.average_case_robustness(
        c, X, 0.05, method="mc", num_samples=8, verbose=False
    ),
    "average_case taylor": lambda c: art_fim.average_case_robustness(
        c, X, 0.05, method="taylor", verbose=False
    ),
    "average_case mmse": lambda c: art_fim.average_case_robustness(
        c, X, 0.05, method="mmse", num_samples=2, verbose=False
    ),
    "BlackBoxFisher": lambda c: art_fim.BlackBoxFisher(c, max_queries=21, verbose=False).estimate(
        X
    ),
    "certified_fisher_bound": lambda c: certified_fisher_bound(c, X, bound=10.0),
    "certified_radius": lambda c: certified_radius(c, X, bound=10.0),
    "certified_accuracy": lambda c: certified_accuracy(c, X, Y, 0.01, bound=10.0),
    "local_norms": lambda c: local_norms(c, X),
    "jacobian_spectral_norm": lambda c: jacobian_spectral_norm(c, X),
    "tightness": lambda c: tightness(c, X, bound=10.0),
}


def _precision_state() -> tuple[Any, ...]:
    """What a caller can observe of the precision settings: the legacy getters (or that they
    raise, after a mix of legacy and per-backend settings) and every per-backend value.
    """

    def read(getter: Callable[[], Any]) -> Any:
        try:
            return getter()
        except RuntimeError:
            return "raises"

    legacy = (
        read(torch.get_float32_matmul_precision),
        read(lambda: torch.backends.cudnn.allow_tf32),
        read(lambda: torch.backends.cuda.matmul.allow_tf32),
    )
    return legacy, Settings.read().fp32_precision


def _flags(model: nn.Module) -> tuple[Any, ...]:
    return (
        tuple(m.training for m in model.modules()),
        tuple(p.requires_grad for p in model.parameters()),
        _precision_state(),
    )


def _set_backend(owner: str, value: str) -> None:
    target: Any = torch.backends
    for part in owner.split("."):
        target = getattr(target, part)
    target.fp32_precision = value


# A caller's own precision choices, legacy and per-backend, in any order and mix (a mix can leave
# torch.get_float32_matmul_precision() raising; whatever it is, it must come back as it was).
CALLER_SETTINGS: list[Callable[[], None]] = [
    *(lambda p=p: torch.set_float32_matmul_precision(p) for p in ("highest", "high", "medium")),
    *(lambda on=on: setattr(torch.backends.cudnn, "allow_tf32", on) for on in (True, False)),
    *(lambda on=on: setattr(torch.backends.cuda.matmul, "allow_tf32", on) for on in (True, False)),
]
if hasattr(torch.backends.cuda.matmul, "fp32_precision"):
    CALLER_SETTINGS += [
        lambda owner=owner, value=value: _set_backend(owner, value)
        for owner in ("cuda.matmul", "cudnn.conv", "cudnn.rnn", "mkldnn.matmul")
        for value in ("ieee", "tf32")
    ]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    name=st.sampled_from(sorted(CALLS)),
    modes=st.lists(st.booleans(), min_size=7, max_size=7),
    frozen=st.lists(st.booleans(), min_size=6, max_size=6),
    wrapped=st.booleans(),
    freezing=st.booleans(),
    caller=st.lists(st.sampled_from(range(len(CALLER_SETTINGS))), max_size=4),
)
def test_every_entry_point_gives_back_the_module_flags(
    name, modes, frozen, wrapped, freezing, caller
):
    """Random mixed train/eval modes, frozen parameters, ``train()`` overrides that toggle
    ``requires_grad``, and caller precision settings (``"medium"`` and legacy / per-backend mixes
    included) survive each call.

    A bare module must be in eval mode at the top (the engine refuses it otherwise), its
    submodules may be in any mode; an ART classifier's module may be in any mode at all.
    """
    model = _net(freezing)
    for module, training in zip(model.modules(), modes):
        module.training = training
    if not wrapped:
        model.training = False
    for parameter, off in zip(model.parameters(), frozen):
        parameter.requires_grad_(not off)
    saved = Settings.read()
    try:
        for index in caller:
            CALLER_SETTINGS[index]()
        before = _flags(model)
        CALLS[name](_classifier(model) if wrapped else model)
        assert _flags(model) == before
    finally:
        saved.apply()


def test_flags_come_back_when_the_estimator_raises():
    """A label out of range is found inside the run (once K is known): the flags still come back."""
    model = _net()
    model.train()
    model[1].eval()
    classifier = _classifier(model)
    before = _flags(model)
    with pytest.raises(ValueError, match="class indices in .0, 7.; they must be ≥ 0 and < 5"):
        art_fim.fisher_statistics(classifier, X, np.array([0, 1, 7]), verbose=False)
    assert _flags(model) == before


def test_bare_module_in_training_mode_is_refused_by_every_entry_point():
    model = _net().train()
    for name, call in CALLS.items():
        with pytest.raises(ValueError, match="training mode"):
            call(model)
        assert model.training, name


# ---------------------------------------------------------------------------------------------
# Random estimators: input i's draws depend on (seed, i) only, so values do not depend on how the
# inputs (or the noisy copies) are cut into batches.


def _mlp() -> nn.Module:
    """A small float64 MLP: the forward pass rounds alike at every batch size to ~1e-16."""
    torch.manual_seed(3)
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 16), nn.Tanh(), nn.Linear(16, 4))
    return model.double().eval()


X_SMALL = np.random.default_rng(4).random((5, 3, 2, 2))

RANDOM_ESTIMATORS: dict[str, Callable[[nn.Module, int, int], np.ndarray]] = {
    "average_case mc": lambda m, b, nb: art_fim.average_case_robustness(
        m, X_SMALL, 0.3, method="mc", num_samples=64, batch_size=b, noise_batch_size=nb,
        verbose=False,
    ),
    "average_case mmse": lambda m, b, nb: art_fim.average_case_robustness(
        m, X_SMALL, 0.3, method="mmse", num_samples=4, batch_size=b, noise_batch_size=nb,
        verbose=False,
    ),
    "expected_noise_kl": lambda m, b, nb: art_fim.expected_noise_kl(
        m, X_SMALL, 0.3, num_samples=16, batch_size=b, noise_batch_size=nb, verbose=False
    ).mean,
    "blackbox": lambda m, b, nb: art_fim.BlackBoxFisher(
        m, max_queries=11, dtype="float64", batch_size=b, verbose=False
    ).estimate(X_SMALL).values,
    "blackbox via the metric": lambda m, b, nb: art_fim.fisher_spectral_norm(
        m, X_SMALL, method="blackbox", batch_size=b, verbose=False,
        blackbox_params={"max_queries": 11, "dtype": "float64"},
    ),
    "hutchinson": lambda m, b, nb: art_fim.fisher_trace(
        m, X_SMALL, method="hutchinson", num_probes=10, batch_size=b, verbose=False
    ),
}


@settings(max_examples=24, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    name=st.sampled_from(sorted(RANDOM_ESTIMATORS)),
    batch_size=st.integers(1, 5),
    noise_batch_size=st.integers(1, 40),
)
def test_random_estimators_do_not_depend_on_the_batch_size(name, batch_size, noise_batch_size):
    """Monte Carlo, MMSE, the noise KL, the query-only sketch and Hutchinson give each input the
    same values at any ``batch_size`` (and noisy copies per pass) as one input at a time.
    """
    model = _mlp()
    reference = RANDOM_ESTIMATORS[name](model, 1, 1)
    values = RANDOM_ESTIMATORS[name](model, batch_size, noise_batch_size)
    np.testing.assert_allclose(values, reference, rtol=1e-9, atol=1e-12)


def test_the_random_estimators_are_random():
    """The check above can fail: another seed gives other values (the draws are really used)."""
    model = _mlp()
    kl = [
        art_fim.expected_noise_kl(model, X_SMALL, 0.3, num_samples=16, seed=s, verbose=False).mean
        for s in (0, 1)
    ]
    assert not np.allclose(kl[0], kl[1], rtol=1e-6)
