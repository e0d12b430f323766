"""Searching for counterexamples to the Lipschitz bound and to the certificates built on it.

A bound ``L`` is sound when no input breaks it:

* ``‖J(x)‖₂ ≤ L`` at every ``x`` (in the box, for a local bound), with ``J(x)`` the exact
  Jacobian of the flattened output, taken densely in float64 (``torch.func.jacrev``);
* ``‖f(a) − f(b)‖₂ ≤ L ‖a − b‖₂`` for every pair.

:func:`search` bounds one random network (:mod:`benchmarks.lipschitz_networks`) and looks for a
counterexample instead of checking a few points: from structured starts (zero, where pooling and
``ReLU`` tie; sparse points; box corners; random points at several scales) it climbs
``‖J(x)‖₂`` by accepting random moves that raise it, climbs the pair ratio by gradient ascent on
both ends, and measures the pair ratio of close and distant pairs by forward passes alone (which
also sees what autograd cannot differentiate: ``.item()``, integer casts). A network the bound
refuses by name is counted as refused; refusing a sound network is allowed, certifying an
unsound one is not.

:func:`check_scenario` does the same for the certificates: a classifier with a predict-time
defence, or a bound reused for another input shape, preprocessing or weights
(:func:`random_scenario`), is either refused or its certified radii are checked against the
distance at which the prediction actually changes, along the margin's gradient and random
directions.

The property test ``tests/test_lipschitz_soundness.py`` runs both through ``hypothesis`` with a
fixed budget; ``benchmarks/lipschitz_soundness.py`` runs :func:`search_many` longer.
"""

from __future__ import annotations

import logging
import math
import random
import time
import warnings
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from art.defences.postprocessor import (
    ClassLabels,
    GaussianNoise,
    HighConfidence,
    ReverseSigmoid,
    Rounded,
)
from art.defences.preprocessor import FeatureSqueezing
from art.estimators.classification import PyTorchClassifier
from torch import Tensor, nn

from art_fim.defences import UnsupportedDefenceError
from art_fim.lipschitz import UnsupportedLayerError, certified_radius, lipschitz_bound
from benchmarks.lipschitz_networks import RandomNetwork, chunk_of, random_network

logger = logging.getLogger(__name__)

# Relative slack for rounding: the bound and the exact norms are both float64.
TOLERANCE = 1e-6
#: How a certificate may refuse: a layer without a rule, a defence, a bound for something else.
REFUSALS = (UnsupportedLayerError, UnsupportedDefenceError, ValueError)


# ----------------------------------------------------------------------------- networks
@dataclass(frozen=True)
class SearchResult:
    """What the search found on one network.

    Attributes:
        bound: the Lipschitz bound ``L`` (``nan`` when the network was refused).
        jacobian_ratio: largest ``‖J(x)‖₂ / L`` found.
        pair_ratio: largest ``‖f(a) − f(b)‖₂ / (L ‖a − b‖₂)`` found.
        inputs: points at which an exact Jacobian or a pair ratio was evaluated.
        witness: the input with the largest ``‖J(x)‖₂``, ``[*input_shape]``.
        refused: the refusal message, when the bound raised :class:`UnsupportedLayerError`.
        no_gradient: why autograd could not differentiate the network (only forward pairs were
            then measured), or ``None``.
    """

    bound: float
    jacobian_ratio: float
    pair_ratio: float
    inputs: int
    witness: Tensor | None
    refused: str | None = None
    no_gradient: str | None = None

    @property
    def ratio(self) -> float:
        """The larger of the two ratios (above ``1 + TOLERANCE``: a counterexample)."""
        return max(self.jacobian_ratio, self.pair_ratio)


def _chunks(points: Tensor, chunk: int) -> list[Tensor]:
    return list(points.split(chunk))


def _jacobian_norms(model: nn.Module, points: Tensor, chunk: int) -> Tensor:
    """Exact ``‖J(x)‖₂`` at each of ``points`` ``[B, *shape]`` (dense float64 ``jacrev``, then SVD).

    Inputs of an eval-mode network do not interact (the generator checked batches of up to
    ``chunk``), so the Jacobian of the batch-summed output holds every input's own Jacobian:
    ``∂(Σ_b f(x_b))/∂x_b = J(x_b)``; one ``jacrev`` per chunk takes them all.
    """
    norms = []
    for part in _chunks(points, chunk):
        count = len(part)

        def summed(t: Tensor, count: int = count) -> Tensor:
            return model(t).reshape(count, -1).sum(0)

        jacobians = (
            torch.func.jacrev(summed)(part).reshape(-1, count, part[0].numel()).transpose(0, 1)
        )
        norms.append(torch.linalg.matrix_norm(jacobians, ord=2))
    return torch.cat(norms)


def _forward(model: nn.Module, points: Tensor, chunk: int) -> Tensor:
    with torch.no_grad():
        return torch.cat([model(p).reshape(len(p), -1) for p in _chunks(points, chunk)])


def _starts(
    shape: tuple[int, ...], box: tuple[float, float] | None, count: int, generator: torch.Generator
) -> Tensor:
    """Structured and random starting points.

    Zero, sparse points, corners, and random points at several scales.
    """
    low, high = box if box is not None else (-1.0, 1.0)
    dim = math.prod(shape)
    scales = [1.0] if box is not None else [0.1, 1.0, 10.0]
    points = [torch.zeros(dim, dtype=torch.float64).clamp(low, high)]
    while len(points) < count:
        kind = len(points) % 4
        if kind == 0:  # a few entries up, the rest at the low end
            p = torch.full((dim,), low, dtype=torch.float64)
            idx = torch.randint(dim, (max(1, dim // 8),), generator=generator)
            p[idx] = high
        elif kind == 1:  # a corner
            p = torch.where(
                torch.rand(dim, generator=generator, dtype=torch.float64) < 0.5, low, high
            )
        else:
            scale = scales[len(points) % len(scales)]
            p = low + (high - low) * torch.rand(dim, generator=generator, dtype=torch.float64)
            if box is None:
                p = scale * torch.randn(dim, generator=generator, dtype=torch.float64)
        points.append(p.to(torch.float64))
    return torch.stack(points).reshape(count, *shape)


def _clip(x: Tensor, box: tuple[float, float] | None) -> Tensor:
    return x if box is None else x.clamp(*box)


def _forward_pairs(
    model: nn.Module,
    x: Tensor,
    box: tuple[float, float] | None,
    chunk: int,
    generator: torch.Generator,
) -> tuple[float, int]:
    """Largest ``‖f(a) − f(b)‖ / ‖a − b‖`` by forward passes alone, and the points evaluated.

    Pairs ``b = a + g u`` at gaps ``g`` from 10⁻³ to 1 times the point's scale.
    """
    fa = _forward(model, x, chunk)
    best, evaluated = 0.0, len(x)
    scale = x.flatten(1).norm(dim=1).clamp_min(1.0).reshape(-1, *[1] * (x.dim() - 1))
    for gap in (1e-3, 1e-2, 0.1, 1.0):
        direction = torch.randn(x.shape, generator=generator, dtype=torch.float64)
        direction = direction / direction.flatten(1).norm(dim=1).reshape(scale.shape)
        b = _clip(x + gap * scale * direction, box)
        distance = (b - x).flatten(1).norm(dim=1)
        ratio = (_forward(model, b, chunk) - fa).norm(dim=1) / distance.clamp_min(1e-300)
        ratio = torch.where(distance > 1e-12, ratio, torch.zeros_like(ratio))
        best, evaluated = max(best, float(ratio.max())), evaluated + len(b)
    return best, evaluated


def search(
    network: RandomNetwork,
    starts: int = 8,
    steps: int = 6,
    pair_steps: int = 15,
    seed: int = 0,
) -> SearchResult:
    """Bound one network and search for an input or a pair of inputs that breaks the bound.

    Args:
        network: the network and its box (:func:`~benchmarks.lipschitz_networks.random_network`).
        starts: starting points.
        steps: rounds of random moves that keep the ones raising ``‖J(x)‖₂``.
        pair_steps: gradient-ascent steps on the pair ratio.
        seed: seed of the starting points and moves.

    Returns:
        A :class:`SearchResult`; a refused network has ``nan`` bound and ratios ``0``.
    """
    model, shape, box = network.model, network.input_shape, network.box
    try:
        bound = float(lipschitz_bound(model, shape, input_box=box))
    except UnsupportedLayerError as err:
        return SearchResult(math.nan, 0.0, 0.0, 0, None, refused=str(err))
    chunk = chunk_of(model)
    generator = torch.Generator().manual_seed(seed)
    x = _starts(shape, box, starts, generator)
    pair, inputs = _forward_pairs(model, x, box, chunk, generator)
    best, witness, no_gradient = torch.zeros(len(x), dtype=torch.float64), None, None
    try:
        best = _jacobian_norms(model, x, chunk)
        inputs += len(x)
        step = 0.3 if box is None else 0.3 * (box[1] - box[0])
        for _ in range(steps):
            scale = x.flatten(1).norm(dim=1).clamp_min(1.0).reshape(-1, *[1] * len(shape))
            noise = torch.randn(x.shape, generator=generator, dtype=torch.float64)
            move = _clip(x + step * scale * noise, box)
            norms = _jacobian_norms(model, move, chunk)
            inputs += len(move)
            better = norms > best
            x = torch.where(better.reshape(-1, *[1] * len(shape)), move, x)
            best = torch.maximum(best, norms)
            step *= 0.6
        witness = x[int(best.argmax())]
        pair = max(pair, _pair_search(model, x, box, pair_steps, chunk, generator))
        inputs += len(x) * (pair_steps + 1)
    except RuntimeError as err:  # autograd cannot differentiate .item(), integer casts, ...
        no_gradient = str(err).splitlines()[0]
    if bound == 0:
        jacobian_ratio = math.inf if float(best.max()) > 0 else 0.0
        pair_ratio = math.inf if pair > 0 else 0.0
    else:
        jacobian_ratio, pair_ratio = float(best.max()) / bound, pair / bound
    return SearchResult(bound, jacobian_ratio, pair_ratio, inputs, witness,
                        no_gradient=no_gradient)


def _pair_search(
    model: nn.Module,
    x: Tensor,
    box: tuple[float, float] | None,
    steps: int,
    chunk: int,
    generator: torch.Generator,
) -> float:
    """Largest ``‖f(a) − f(b)‖ / ‖a − b‖`` found by Adam ascent from pairs around ``x``."""
    spread = 0.5 if box is None else 0.25 * (box[1] - box[0])
    a = x.clone().requires_grad_(True)
    b = _clip(x + spread * torch.randn(x.shape, generator=generator, dtype=torch.float64), box)
    b = b.clone().requires_grad_(True)
    optimiser = torch.optim.Adam([a, b], lr=0.05 * spread)
    best = 0.0

    def outputs(t: Tensor) -> Tensor:
        return torch.cat([model(p).reshape(len(p), -1) for p in _chunks(t, chunk)])

    for _ in range(steps + 1):
        gap = (a - b).flatten(1).norm(dim=1)
        ratio = (outputs(a) - outputs(b)).norm(dim=1) / gap.clamp_min(1e-12)
        ratio = torch.where(gap > 1e-9, ratio, torch.zeros_like(ratio))
        best = max(best, float(ratio.max()))
        optimiser.zero_grad()
        (-ratio.sum()).backward()
        optimiser.step()
        with torch.no_grad():
            a.copy_(_clip(a, box))
            b.copy_(_clip(b, box))
    return best


# ----------------------------------------------------------------------------- certificates
#: The certificate scenarios :func:`random_scenario` draws.
SCENARIOS = (
    "postprocessing defence", "preprocessing defence", "bound reuse: input shape",
    "bound reuse: preprocessing", "bound reuse: weights", "bound used as computed",
)


@dataclass
class Scenario:
    """A classifier, inputs and a bound, to certify and check.

    Attributes:
        kind: one of :data:`SCENARIOS`.
        classifier: an ART ``PyTorchClassifier`` or a ``torch.nn.Module`` (float32, eval mode).
        x: inputs ``[N, *input_shape]``.
        bound: the :class:`~art_fim.lipschitz.LipschitzBound` passed to the certificate.
        description: what was drawn, for a report.
    """

    kind: str
    classifier: Any
    x: np.ndarray
    bound: Any
    description: str = ""


class _MeanPooled(nn.Module):
    """``Linear(mean_L(relu(conv(x))))``: three logits on inputs of any length."""

    def __init__(self, channels: int, kernel: int) -> None:
        super().__init__()
        self.conv = nn.Conv1d(1, channels, kernel, padding=kernel // 2)
        self.head = nn.Linear(channels, 3)

    def forward(self, x: Tensor) -> Tensor:
        """The logits."""
        return self.head(torch.relu(self.conv(x)).mean(-1))


def random_scenario(rng: random.Random, kind: str | None = None) -> Scenario:
    """Draw a certificate scenario (:data:`SCENARIOS`, or ``kind``) on a small float32 network."""
    kind = kind or rng.choice(SCENARIOS)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(rng.getrandbits(32))
        scale = rng.choice([0.5, 2.0, 5.0])
        width = rng.choice([4, 6, 8])
        options: dict[str, Any] = {}
        if kind == "bound reuse: input shape":
            model: nn.Module = _MeanPooled(rng.choice([2, 3]), rng.choice([1, 3])).eval()
            used, computed = (1, rng.choice([16, 32, 64])), (1, rng.choice([1, 2, 3]))
        else:
            model = nn.Sequential(nn.Linear(width, 8), nn.Tanh(), nn.Linear(8, 3)).eval()
            used = computed = (width,)
        with torch.no_grad():
            for p in model.parameters():
                p.mul_(scale)
        std = rng.choice([0.1, 0.5, 2.0])
        if kind == "postprocessing defence":
            options["postprocessing_defences"] = [rng.choice([
                HighConfidence(rng.choice([0.3, 0.5])), ReverseSigmoid(), Rounded(1),
                GaussianNoise(0.1), ClassLabels(),
            ])]
        elif kind == "preprocessing defence":
            options["preprocessing_defences"] = [FeatureSqueezing((-3.0, 3.0), bit_depth=3)]
        elif kind in ("bound reuse: preprocessing", "bound used as computed"):
            options["preprocessing"] = (0.0, std)
        classifier = PyTorchClassifier(model, nn.CrossEntropyLoss(), used, 3, device_type="cpu",
                                       **options)
        if kind == "bound reuse: preprocessing":
            bound = lipschitz_bound(model, computed)
        elif kind == "bound reuse: input shape":
            bound = lipschitz_bound(model, computed)
        else:
            bound = lipschitz_bound(classifier if not options.get("preprocessing_defences")
                                    else model, computed)
        if kind == "bound reuse: weights":
            with torch.no_grad():
                for p in model.parameters():
                    p.mul_(3.0)
        x = np.random.default_rng(rng.getrandbits(32)).normal(size=(4, *used)).astype(np.float32)
    described = f"{kind}: {model!r} with {options or 'no options'}, bound for {computed}"
    return Scenario(kind, classifier, x, bound, described)


def _flip_distance(classifier: Any, x: np.ndarray, direction: np.ndarray, reach: float) -> float:
    """First distance along ``direction`` where predict's argmax changes, or ``inf``.

    400 steps up to ``reach``.
    """
    unit = direction / max(float(np.linalg.norm(direction)), 1e-300)
    steps = np.linspace(0.0, reach, 401)[1:]
    points = (x[None] + steps.reshape(-1, *[1] * x.ndim) * unit[None]).astype(np.float32)
    labels = np.asarray(classifier.predict(points)).argmax(1)
    start = np.asarray(classifier.predict(x[None])).argmax(1)[0]
    changed = np.nonzero(labels != start)[0]
    return float(steps[changed[0]]) if len(changed) else math.inf


@dataclass(frozen=True)
class CertificateResult:
    """What checking one scenario found.

    Attributes:
        refused: the refusal message, or ``None`` when radii were certified.
        ratio: the largest certified radius over the distance at which the prediction was seen
            to change (above ``1 + TOLERANCE``: a counterexample); 0 when refused.
        inputs: points at which the classifier was queried.
    """

    refused: str | None
    ratio: float
    inputs: int


def check_scenario(scenario: Scenario, directions: int = 3, seed: int = 0) -> CertificateResult:
    """Certify the scenario's inputs, then look for a prediction change inside each radius.

    Along the margin's gradient (of the undefended model, through ART's ``class_gradient``) and
    ``directions`` random directions, up to twice the radius; the prediction is ART's
    ``predict``, defences included.
    """
    classifier, x = scenario.classifier, scenario.x
    try:
        radii = certified_radius(classifier, x, scenario.bound)
    except REFUSALS as err:
        return CertificateResult(str(err), 0.0, 0)
    generator = np.random.default_rng(seed)
    ratio, inputs = 0.0, 0
    for xi, radius in zip(x, radii):
        if not (math.isfinite(radius) and radius > 0):
            continue
        scores = np.asarray(classifier.predict(xi[None]))[0]
        top, second = np.argsort(scores)[-1], np.argsort(scores)[-2]
        gradient = (classifier.class_gradient(xi[None], label=int(second))
                    - classifier.class_gradient(xi[None], label=int(top)))[0, 0]
        candidates = [gradient] + [generator.normal(size=xi.shape) for _ in range(directions)]
        for direction in candidates:
            if not np.any(direction):
                continue
            distance = _flip_distance(classifier, xi, direction, 2 * float(radius))
            inputs += 400
            ratio = max(ratio, float(radius) / distance if distance > 0 else math.inf)
    return CertificateResult(None, ratio, inputs)


# ----------------------------------------------------------------------------- many
@dataclass(frozen=True)
class Report:
    """A search over many networks and certificate scenarios.

    Attributes:
        networks: networks bounded and searched.
        refused: networks the bound refused by name (not searched).
        inputs: points evaluated over all networks and scenarios.
        worst_ratio: largest ``exact / bound`` ratio found (Jacobian, pair, or certified radius
            over the distance of a prediction change).
        worst_network: ``repr`` of the network (or scenario) where it was found.
        tight: networks where the search reached the bound (ratio within ``1e-6`` of 1).
        seconds: wall-clock time of the search.
        counterexamples: ``repr`` and ratio of every case whose ratio exceeded ``1 + TOLERANCE``.
        classes: ``{class: (drawn, refused)}`` over the networks' classes
            (:data:`~benchmarks.lipschitz_networks.CLASSES`).
        scenarios: ``{kind: (drawn, refused)}`` over the certificate scenarios.
        crashes: ``repr`` of every network or scenario where the bound or a certificate raised
            something other than a refusal (the search goes on).
        no_gradient: networks searched by forward pairs only (autograd could not differentiate).
    """

    networks: int
    refused: int
    inputs: int
    worst_ratio: float
    worst_network: str
    tight: int
    seconds: float
    counterexamples: tuple[tuple[str, float], ...]
    classes: dict[str, tuple[int, int]] = field(default_factory=dict)
    scenarios: dict[str, tuple[int, int]] = field(default_factory=dict)
    crashes: tuple[str, ...] = ()
    no_gradient: int = 0


def search_many(
    seed: int,
    count: int,
    max_layers: int = 3,
    max_seconds: float | None = None,
    scenario_share: float = 0.15,
    **options: Any,
) -> Report:
    """Draw up to ``count`` networks and scenarios from ``random.Random(seed)`` and check each.

    Runs to its budget on any seed: an exception that is not a refusal is recorded as a crash
    (with the network) and the search goes on.

    Args:
        seed: seed of the draws (and of each search).
        count: networks and scenarios to draw.
        max_layers: see :func:`~benchmarks.lipschitz_networks.random_network`.
        max_seconds: stop drawing after this long (``None``: no limit).
        scenario_share: fraction of draws that are certificate scenarios.
        options: passed to :func:`search`.
    """
    rng = random.Random(seed)
    start = time.perf_counter()
    searched = refused = inputs = tight = no_gradient = 0
    worst, worst_network = 0.0, ""
    found: list[tuple[str, float]] = []
    crashes: list[str] = []
    drawn: Counter[str] = Counter()
    refusals: Counter[str] = Counter()
    scenario_drawn: Counter[str] = Counter()
    scenario_refused: Counter[str] = Counter()
    for i in range(count):
        if max_seconds is not None and time.perf_counter() - start > max_seconds:
            break
        description = f"draw {i}"
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # PyTorch's align_corners notes, ART's notes
                if rng.random() < scenario_share:
                    scenario = random_scenario(rng)
                    description = scenario.description
                    scenario_drawn[scenario.kind] += 1
                    outcome = check_scenario(scenario, seed=seed + i)
                    scenario_refused[scenario.kind] += outcome.refused is not None
                    ratio, inputs = outcome.ratio, inputs + outcome.inputs
                else:
                    network = random_network(rng, max_layers)
                    description = repr(network.model)
                    result = search(network, seed=seed + i, **options)
                    drawn.update(network.classes)
                    if result.refused is not None:
                        refused += 1
                        refusals.update(network.classes)
                        logger.debug("refused: %s", result.refused)
                        continue
                    searched += 1
                    inputs += result.inputs
                    no_gradient += result.no_gradient is not None
                    tight += abs(result.ratio - 1) <= 1e-6
                    ratio = result.ratio
        except Exception as err:  # the search must finish: a crash is recorded, not raised
            crashes.append(f"{type(err).__name__}: {err} on {description}")
            logger.warning("crash (%s: %s) on %s", type(err).__name__, err, description)
            continue
        if ratio > worst:
            worst, worst_network = ratio, description
        if ratio > 1 + TOLERANCE:
            found.append((description, ratio))
            logger.warning("counterexample (ratio %.6g) on %s", ratio, description)
    seconds = time.perf_counter() - start
    classes = {c: (drawn[c], refusals[c]) for c in sorted(drawn)}
    scenarios = {k: (scenario_drawn[k], scenario_refused[k]) for k in sorted(scenario_drawn)}
    return Report(searched, refused, inputs, worst, worst_network, tight, seconds, tuple(found),
                  classes, scenarios, tuple(crashes), no_gradient)
