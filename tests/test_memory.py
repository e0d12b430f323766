"""The exact route keeps its measured peak memory within ``memory_budget``.

The budget used to cover only ``2 K d s`` bytes per input; the float64 copy of the rows and
the batched backward's gradient buffers (``K`` copies of the network's gradients) were not
counted. Here a convolutional network with ``K = 100`` at 3×32×32 is scored under a 64 MiB
budget: the old plan put all 16 inputs in one batch (about 16 × 16.5 MB), the new one must
stay under the budget, measured as the process's peak resident memory on CPU (glibc told to
return every block over 64 KiB to the system at once, so that freed tensors leave the
resident set) or ``torch.cuda.max_memory_allocated`` on a GPU.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

BUDGET = 64 * 2**20
ROOT = Path(__file__).resolve().parents[1]


def conv_net() -> nn.Module:
    """Two convolutions and a 100-class head: the batched backward dominates the memory."""
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(16, 32, 3, padding=1, stride=2),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(4),
        nn.Flatten(),
        nn.Linear(512, 100),
    ).eval()


_MEASURE = """
import json
import numpy as np, torch
from test_memory import BUDGET, conv_net
from art_fim import FisherInformationMetric
from art_fim.adapters import adapter_for
from art_fim.memory import Footprint


def status(key):
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith(key))


def peak(fn):
    base = status("VmRSS:")
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # resets VmHWM, the peak resident set, to the current one
    fn()
    return status("VmHWM:") - base


model = conv_net()
x = np.random.default_rng(0).random((16, 3, 32, 32)).astype(np.float32)
options = dict(method="exact", batch_size=16, verbose=False)
planned = FisherInformationMetric(model, memory_budget=BUDGET, **options)
unplanned = FisherInformationMetric(model, memory_budget=2**40, **options)
for metric in (planned, unplanned):
    metric(x)  # warm-up: one-time allocations of the kernels
adapter = adapter_for(model)
adapter.decide_output_type(x)
footprint = Footprint(100, 3 * 32 * 32, 4, adapter.activation_bytes(x[:1]))
print(json.dumps({
    "planned_peak": peak(lambda: planned(x)),
    "unplanned_peak": peak(lambda: unplanned(x)),
    "per_input_plan": footprint.exact(100),
    "old_per_input_plan": 2 * 100 * 3 * 32 * 32 * 4,
}))
"""


def _clear_refs_writable() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


@pytest.mark.skipif(not _clear_refs_writable(), reason="needs Linux's /proc/self/clear_refs")
def test_exact_route_peak_memory_stays_within_the_budget_on_cpu():
    """Measured peak (RSS) ≤ budget; the old plan's single 16-input batch exceeds it."""
    env = dict(
        os.environ,
        MALLOC_MMAP_THRESHOLD_="65536",
        OMP_NUM_THREADS="1",
        # test_memory itself is imported from tests/, the package from the project root.
        PYTHONPATH=os.pathsep.join([str(ROOT / "tests"), str(ROOT),
                                    os.environ.get("PYTHONPATH", "")]),
    )
    out = subprocess.run(
        [sys.executable, "-c", _MEASURE],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    result = json.loads(out.strip().splitlines()[-1])
    assert BUDGET // result["old_per_input_plan"] >= 16  # the old plan: one batch of all 16 inputs
    assert result["unplanned_peak"] > BUDGET  # ... which does not fit
    assert result["planned_peak"] <= BUDGET
    # The plan (2 inputs per batch here) is an upper bound, and not a wildly loose one.
    batch = BUDGET // result["per_input_plan"]
    assert result["planned_peak"] <= batch * result["per_input_plan"] <= 4 * result["planned_peak"]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_exact_route_peak_memory_stays_within_the_budget_on_cuda():
    """torch.cuda.max_memory_allocated while scoring stays ≤ budget (model and inputs excluded)."""
    from art.estimators.classification import PyTorchClassifier

    from art_fim import FisherInformationMetric

    model = conv_net().cuda()
    classifier = PyTorchClassifier(
        model,
        nn.CrossEntropyLoss(),
        input_shape=(3, 32, 32),
        nb_classes=100,
        clip_values=(0.0, 1.0),
        device_type="gpu",
    )
    x = np.random.default_rng(0).random((64, 3, 32, 32)).astype(np.float32)
    metric = FisherInformationMetric(
        classifier, method="exact", batch_size=64, memory_budget=BUDGET, verbose=False
    )
    metric(x)  # warm-up: cuDNN handles and workspaces
    torch.cuda.synchronize()
    base = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    values = metric(x)
    torch.cuda.synchronize()
    assert torch.cuda.max_memory_allocated() - base <= BUDGET
    assert np.isfinite(values).all()


def test_a_budget_below_the_whole_jacobian_chunks_the_classes():
    """ImageNet size (K = 1000, d = 150,528, 6 MiB of activations): all classes at once need 12 GiB.

    A 2 GiB budget gets the largest class chunk that fits; chunked rows equal the whole ones.
    """
    from art_fim.memory import Footprint, plan_exact

    footprint = Footprint(classes=1000, dim=3 * 224 * 224, itemsize=4, activations=6 * 2**20)
    assert footprint.exact(1000) > 12 * 2**30
    batch, chunk = plan_exact(footprint, 2 * 2**30, 128)
    assert batch == 1 and footprint.exact(chunk) <= 2 * 2**30 < footprint.exact(chunk + 1)
    assert plan_exact(footprint, footprint.exact(1) - 1, 128) is None  # not even one class fits

    from art_fim import AutogradJacobian
    from cases import make_inputs, make_model

    model, x = make_model("cnn"), make_inputs(3)
    whole = AutogradJacobian(model, x).gram()
    for size in (1, 3, 7):
        assert torch.equal(
            AutogradJacobian(model, x, class_chunk=size).rows(), AutogradJacobian(model, x).rows()
        )
        torch.testing.assert_close(
            AutogradJacobian(model, x, class_chunk=size).gram(), whole, rtol=1e-12, atol=0
        )


def test_explicit_exact_route_refuses_an_input_that_does_not_fit():
    """method='exact' with a budget below one input's need says how much it needs and what to do."""
    from art_fim import FisherInformationMetric, fisher_spectral_norm
    from cases import make_inputs, make_model

    model, x = make_model("cnn"), make_inputs(3).numpy()
    message = r"needs about .* GiB for one input \(K = 10, d = 192\).*method='lanczos'"
    with pytest.raises(ValueError, match=message):
        fisher_spectral_norm(model, x, method="exact", memory_budget=4096, verbose=False)
    estimate = FisherInformationMetric(
        model, memory_budget=4096, tol=1e-10, verbose=False
    ).estimate(x)
    assert estimate.method == "lanczos"
    np.testing.assert_allclose(
        estimate.values, fisher_spectral_norm(model, x, verbose=False), rtol=1e-6
    )
