"""How long will the whole zoo take? Time one model per architecture family, extrapolate to all.

    python -m benchmarks.zoo_cost [--device cpu|cuda] [--config small|full] [--families KEY ...]
                                  [--n N] [--n-imagenet N] [--budget SECONDS] [--out FILE.json]

(as a module from the project root, so that ``leaderboard`` and ``art_fim`` import).

For each RobustBench architecture family (:data:`FAMILIES`, in order of importance, so that a
run cut off by a time limit still has the main ones) it builds one zoo entry of that family
from RobustBench's own constructor (timm's for the XCiT/DeiT entries) with a seeded random
initialisation, saves its state dict in RobustBench's checkpoint layout under a temporary
model folder, and scores it through the leaderboard's own path
(:func:`leaderboard.scoring.score_model` with ``method="auto"``, ``precision="float32"``, the
refined radii, no baselines): the checkpoint load, the warm-up and the timed Fisher pass are
timed apart (``record["seconds"]``), with the route the metric took (``record["route"]``).
Weights do not change the cost of a pass, so a random network times a trained one.

It then maps every entry of :mod:`leaderboard.registry` (206 across CIFAR-10, CIFAR-100 and
ImageNet) to the family of its RobustBench ``architecture`` on the same dataset (the number of
classes sets the cost: ``K`` backward passes per image on the exact route) and extrapolates
its time at RobustBench's ``n_examples`` (10,000 CIFAR, 5,000 ImageNet test images):
``members × (n_examples / images_per_second + load)``, with ``members`` the entry's checkpoints
over the measured entry's (an ensemble of ``m`` copies of the family's network costs ``m``
times one). Entries whose family was not measured are listed as unmeasured and counted.
RobustBench's model info states no AutoAttack run time; the output says so rather than
inventing one (where a record does carry ``attack_seconds``, as the project's own zoo does,
it is shown beside the estimate).

Configs: ``small`` (the default on CPU) times PreActResNet-18 on 4 CIFAR-10 images: on a
shared 2-core CPU one PreActResNet-18 image takes seconds, a WideResNet-28-10 or ODE image
minutes and an ImageNet image far longer, so those are left to ``--families`` or a GPU;
``full`` (the default on CUDA) times every family on 32–256 CIFAR and 8–16 ImageNet images,
sized to finish in about three minutes on one H200 (after ``--budget`` seconds, 150 by
default, it starts no new family). ImageNet images are random JPEGs written
in RobustBench's ``val/<wnid>/`` layout (read through the leaderboard's loader with each
model's own preprocessing); CIFAR-10 uses the bundled test images, CIFAR-100 random pixels.
After each family the measurement is printed and the ``--out`` JSON rewritten.
"""

from __future__ import annotations

import argparse
import json
import re
import tempfile
import time
import traceback
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from leaderboard import data as lb_data
from leaderboard.registry import MODEL_INFO_DIR, ZooEntry, list_entries, select_entries

#: Test images RobustBench evaluates each model on (its ``n_examples``).
ROBUSTBENCH_N_EXAMPLES: dict[str, int] = {"cifar10": 10_000, "cifar100": 10_000, "imagenet": 5_000}

#: Seconds after which a ``full`` run starts no new family: with the start-up, the last family
#: and the summary, the run ends in about three minutes (the families come in order of importance).
FULL_BUDGET_SECONDS = 150.0

#: Model-info fields that would state an attack's cost, were RobustBench to record one.
COST_FIELD = re.compile(r"time|second|runtime|cost|hour|duration", re.IGNORECASE)


@dataclass(frozen=True)
class Family:
    """One architecture family: the zoo entry timed for it and the architectures it stands for.

    Attributes:
        key: ``"<dataset>/<short name>"``.
        dataset: ``"cifar10"``, ``"cifar100"`` or ``"imagenet"`` (the number of classes sets the
            cost).
        threat_model: the timed entry's threat model.
        model: the timed zoo entry.
        architectures: RobustBench ``architecture`` strings timed by this entry. MeanSparse
            variants are timed by their base network (MeanSparse adds an elementwise operation).
        full_n: images timed in the ``full`` config.
        small: part of the ``small`` config.
    """

    key: str
    dataset: str
    threat_model: str
    model: str
    architectures: tuple[str, ...]
    full_n: int
    small: bool = False


#: Families in order of importance (entries they cover, then cost), each dataset's main ones first.
FAMILIES: tuple[Family, ...] = (
    Family("cifar10/PreActResNet-18", "cifar10", "Linf", "Wong2020Fast", ("PreActResNet-18",), 256,
           small=True),
    Family("cifar10/WRN-28-10", "cifar10", "Linf", "Carmon2019Unlabeled", ("WideResNet-28-10",),
           256),
    Family("cifar10/ODE", "cifar10", "Linf", "Kang2021Stable",
           ("WideResNet-70-16, Neural ODE block",), 64),
    Family("cifar10/WRN-34-10", "cifar10", "Linf", "Zhang2019Theoretically", ("WideResNet-34-10",),
           256),
    Family("cifar10/WRN-70-16", "cifar10", "Linf", "Gowal2020Uncovering_70_16",
           ("WideResNet-70-16", "MeanSparse WideResNet-70-16"), 128),
    Family("imagenet/ResNet-50", "imagenet", "Linf", "Standard_R50", ("ResNet-50",), 16),
    Family("cifar100/WRN-34-10", "cifar100", "Linf", "Sehwag2021Proxy", ("WideResNet-34-10",), 64),
    Family("cifar100/WRN-70-16", "cifar100", "Linf", "Gowal2020Uncovering",
           ("WideResNet-70-16", "MeanSparse WideResNet-70-16"), 32),
    Family("imagenet/Swin-L", "imagenet", "Linf", "Xu2024MIMIR_Swin-L",
           ("Swin-L", "MeanSparse Swin-L"), 8),
    Family("imagenet/ConvNeXt-L", "imagenet", "Linf", "Liu2023Comprehensive_ConvNeXt-L",
           ("ConvNeXt-L", "MeanSparse ConvNeXt-L"), 8),
    Family("imagenet/ViT-B", "imagenet", "Linf", "Mo2022When_ViT-B", ("ViT-B",), 8),
    Family("cifar10/XCiT-L12", "cifar10", "Linf", "Debenedetti2022Light_XCiT-L12", ("XCiT-L12",),
           128),
    Family("cifar10/ResNet-152+WRN-70-16", "cifar10", "Linf", "Bai2024MixedNUTS",
           ("ResNet-152 + WideResNet-70-16",), 64),
    Family("cifar10/WRN-94-16", "cifar10", "Linf", "Bartoldson2024Adversarial_WRN-94-16",
           ("WideResNet-94-16", "MeanSparse WideResNet-94-16"), 64),
    Family("cifar10/WRN-106-16", "cifar10", "Linf", "Rebuffi2021Fixing_106_16_cutmix_ddpm",
           ("WideResNet-106-16",), 64),
    Family("cifar10/ResNet-18", "cifar10", "Linf", "Sehwag2021Proxy_R18", ("ResNet-18",), 256),
    Family("cifar10/WRN-34-20", "cifar10", "Linf", "Rice2020Overfitting", ("WideResNet-34-20",),
           128),
    Family("cifar10/ResNet-50", "cifar10", "Linf", "Engstrom2019Robustness", ("ResNet-50",), 256),
    Family("cifar10/ResNeXt-29", "cifar10", "corruptions", "Hendrycks2020AugMix_ResNeXt",
           ("ResNeXt29_32x4d",),
           256),
    Family("cifar100/PreActResNet-18", "cifar100", "Linf", "Rice2020Overfitting",
           ("PreActResNet-18",), 64),
    Family("cifar100/WRN-28-10", "cifar100", "Linf", "Hendrycks2019Using", ("WideResNet-28-10",),
           32),
    Family("cifar10/ResNet-152+WRN-70-16+mixing", "cifar10", "Linf", "Bai2023Improving_edm",
           ("ResNet-152 + WideResNet-70-16 + mixing network",), 32),
    Family("cifar10/WRN-18-2", "cifar10", "corruptions", "Diffenderfer2021Winning_LRR",
           ("WideResNet-18-2",), 256),
    Family("imagenet/Swin-B", "imagenet", "Linf", "Liu2023Comprehensive_Swin-B", ("Swin-B",), 8),
    Family("imagenet/WRN-50-2", "imagenet", "Linf", "Salman2020Do_50_2", ("WideResNet-50-2",), 8),
    Family("cifar10/XCiT-S12", "cifar10", "Linf", "Debenedetti2022Light_XCiT-S12", ("XCiT-S12",),
           128),
    Family("cifar10/XCiT-M12", "cifar10", "Linf", "Debenedetti2022Light_XCiT-M12", ("XCiT-M12",),
           128),
    Family("cifar100/WRN-34-20", "cifar100", "Linf", "Jia2022LAS-AT_34_20", ("WideResNet-34-20",),
           32),
    Family("cifar100/XCiT-L12", "cifar100", "Linf", "Debenedetti2022Light_XCiT-L12", ("XCiT-L12",),
           32),
    Family("cifar100/ResNet-152+WRN-70-16", "cifar100", "Linf", "Bai2024MixedNUTS",
           ("ResNet-152 + WideResNet-70-16",), 16),
)


@dataclass(frozen=True)
class Measurement:
    """What one family's timed entry cost (the fields the extrapolation needs, and the rest).

    Attributes:
        family: :attr:`Family.key`.
        model: the timed zoo entry.
        n: images in the timed Fisher pass.
        num_checkpoints: checkpoint files of the timed entry.
        build_seconds: building the random network and saving its checkpoint (not a zoo cost).
        load_seconds: ``record["seconds"]["load"]``: images and checkpoint read, model on the
            device.
        warmup_seconds: ``record["seconds"]["warmup"]``.
        fisher_seconds: ``record["seconds"]["fisher"]``: the timed pass.
        images_per_second: ``record["images_per_second"]``.
        route: ``record["route"]`` with ``record["method"]`` and ``record["competitors"]``.
        device: ``record["device"]``.
    """

    family: str
    model: str
    n: int
    num_checkpoints: int
    build_seconds: float
    load_seconds: float
    warmup_seconds: float
    fisher_seconds: float
    images_per_second: float
    route: dict[str, Any]
    device: str


@dataclass(frozen=True)
class EntryEstimate:
    """One zoo entry's extrapolated cost.

    Attributes:
        key: ``dataset/threat_model/name``.
        architecture: RobustBench's architecture string.
        family: the measured family it maps to, or ``None`` (unmeasured).
        seconds: estimated seconds at ``n_examples``, or ``None`` (unmeasured).
        n_examples: RobustBench's test images for the dataset.
        autoattack_seconds: the AutoAttack run time the entry's record states, or ``None``.
    """

    key: str
    architecture: str | None
    family: str | None
    seconds: float | None
    n_examples: int
    autoattack_seconds: float | None


def family_of(entry: ZooEntry, families: Iterable[Family]) -> Family | None:
    """The family that times ``entry``: same dataset, its architecture listed; ``None`` if none."""
    for family in families:
        if family.dataset == entry.dataset and entry.reported.architecture in family.architectures:
            return family
    return None


def entry_seconds(measurement: Measurement, n_examples: int, num_checkpoints: int = 1) -> float:
    """Seconds to score an entry on ``n_examples`` images from its family's measurement.

    ``members × (n_examples / images_per_second + load)``, ``members`` being the entry's
    checkpoints over the measured entry's: an ensemble of ``m`` copies of the family's network
    loads and runs ``m`` networks. The warm-up (a fixed two images) is left out.
    """
    members = num_checkpoints / measurement.num_checkpoints
    return members * (n_examples / measurement.images_per_second + measurement.load_seconds)


def autoattack_seconds(entry: ZooEntry, n_examples: int) -> float | None:
    """The entry's stated AutoAttack time scaled to ``n_examples`` images.

    ``None`` where the entry states none (RobustBench states none).
    """
    seconds, attacked = entry.reported.attack_seconds, entry.reported.attack_n_examples
    if seconds is None:
        return None
    return seconds * n_examples / attacked if attacked else seconds


def extrapolate(
    entries: Sequence[ZooEntry], families: Sequence[Family], measurements: dict[str, Measurement]
) -> list[EntryEstimate]:
    """Every entry's estimated time at RobustBench's ``n_examples``.

    An entry not measured has ``seconds=None``.

    Args:
        entries: the zoo entries (:func:`leaderboard.registry.list_entries`).
        families: the family table (:data:`FAMILIES`).
        measurements: the measured families, by key.
    """
    estimates = []
    for entry in entries:
        n_examples = ROBUSTBENCH_N_EXAMPLES[entry.dataset]
        family = family_of(entry, families)
        measurement = measurements.get(family.key) if family is not None else None
        estimates.append(EntryEstimate(
            key=entry.key,
            architecture=entry.reported.architecture,
            family=measurement.family if measurement is not None else None,
            seconds=entry_seconds(measurement, n_examples, entry.num_checkpoints) if measurement
            else None,
            n_examples=n_examples,
            autoattack_seconds=autoattack_seconds(entry, n_examples),
        ))
    return estimates


def totals(estimates: Sequence[EntryEstimate]) -> dict[str, dict[str, float | int]]:
    """Counts and estimated seconds per dataset and for ``"all"``.

    Entries, measured entries, unmeasured entries, estimated seconds.
    """
    out: dict[str, dict[str, float | int]] = {
        group: {"entries": 0, "measured": 0, "unmeasured": 0, "seconds": 0.0}
        for group in (*ROBUSTBENCH_N_EXAMPLES, "all")
    }
    for estimate in estimates:
        for group in (estimate.key.split("/", 1)[0], "all"):
            row = out[group]
            row["entries"] += 1
            if estimate.seconds is None:
                row["unmeasured"] += 1
            else:
                row["measured"] += 1
                row["seconds"] += estimate.seconds
    return out


def cost_fields(model_info_dir: Path = MODEL_INFO_DIR) -> list[str]:
    """Fields of RobustBench's model-info files that could state an attack's cost.

    For example a run time or hours.
    """
    found: set[str] = set()
    for path in model_info_dir.glob("*/*/*.json"):
        found.update(k for k in json.loads(path.read_text()) if COST_FIELD.search(k))
    return sorted(found)


# ----------------------------------------------------------------------------------------------
# Building random checkpoints in RobustBench's layout


def _inverse_key(target: str, dataset: str, name: str) -> str:
    """The checkpoint key that the loader's key clean-up turns into ``target``.

    The loader (:func:`leaderboard.robustbench_compat._load_single`, as RobustBench's) drops
    the first 7 characters of any key containing ``module.``, then the first 6 of any key
    containing ``model.``, then adds ``model.`` for ImageNet entries other than a few.
    """
    from leaderboard.robustbench_compat import _IMAGENET_NO_PREFIX

    key = target
    if dataset == "imagenet" and name not in _IMAGENET_NO_PREFIX:
        if not key.startswith("model."):
            raise ValueError(f"{name}: key {key!r} cannot come from a checkpoint the loader "
                             "prefixes with 'model.'")
        key = key[len("model."):]
    if "model." in key:
        key = "model." + key
    if "module." in key:
        key = "module." + key
    return key


def _checkpoint_state(state: dict[str, torch.Tensor], dataset: str,
                      name: str) -> dict[str, torch.Tensor]:
    """``state`` with keys the loader maps back onto the model's own.

    The mapping is checked with RobustBench's functions.
    """
    from robustbench.utils import add_substr_to_state_dict, rm_substr_from_state_dict

    from leaderboard.robustbench_compat import _IMAGENET_NO_PREFIX

    if dataset == "imagenet" and name not in _IMAGENET_NO_PREFIX:
        # Published checkpoints hold the bare network: the normaliser RobustBench wraps it in
        # (``normalize.mean``, ``normalize.std``) keeps its constructed values, as in RobustBench.
        state = {k: v for k, v in state.items() if k.startswith("model.")}
    saved = {_inverse_key(k, dataset, name): v for k, v in state.items()}
    back = rm_substr_from_state_dict(rm_substr_from_state_dict(saved, "module."), "model.")
    if dataset == "imagenet" and name not in _IMAGENET_NO_PREFIX:
        back = add_substr_to_state_dict(back, "model.")
    if list(back) != list(state):
        raise RuntimeError(f"{name}: the saved keys do not load back onto the model's own")
    return saved


def _construct(family: Family, device: torch.device) -> torch.nn.Module:
    """The family's entry with a seeded random initialisation.

    It is built on ``device`` where it can be.
    """
    from leaderboard.robustbench_compat import NUM_CLASSES, robustbench_entry, timm_name

    timm_id = timm_name(family.model, family.dataset, family.threat_model)

    def build() -> torch.nn.Module:
        torch.manual_seed(0)
        if timm_id is not None:
            import timm

            return timm.create_model(timm_id, pretrained=False,
                                     num_classes=NUM_CLASSES[family.dataset])
        # RobustBench's constructor downloads.
        if family.dataset == "imagenet" and family.model == "Standard_R50":
            from torchvision.models import resnet50

            return resnet50(weights=None)
        return robustbench_entry(family.model, family.dataset, family.threat_model)["model"]()

    if device.type == "cuda":  # initialising hundreds of millions of weights is much faster there
        try:
            with torch.device(device):
                return build()
        except Exception as exc:  # a constructor that mixes devices: build it on the CPU
            print(f"  {family.key}: built on the CPU ({type(exc).__name__} on {device})",
                  flush=True)
    return build()


def save_random_checkpoint(family: Family, model_dir: Path, device: torch.device) -> int:
    """Write a random checkpoint of the family's entry where the leaderboard's loader reads it.

    Returns:
        The number of checkpoint files written (ensemble members, policy network).
    """
    from leaderboard.robustbench_compat import checkpoint_paths, timm_name

    model = _construct(family, device)
    paths = checkpoint_paths(family.model, family.dataset, family.threat_model, model_dir)
    paths[0].parent.mkdir(parents=True, exist_ok=True)
    name = family.model
    if timm_name(name, family.dataset, family.threat_model) is not None:
        # timm's checkpoints hold the bare network: no "model." prefix, no normaliser.
        states = [{k[len("model."):]: v for k, v in model.state_dict().items()
                   if k.startswith("model.")}]
    elif family.dataset == "imagenet" and name == "Standard_R50":
        states = [model.state_dict()]
    elif name.startswith("Bai2023Improving"):
        comp = model.comp_model
        states = [comp.models[0].state_dict(), comp.models[1].state_dict(),
                  {"model": comp.policy_net.state_dict(), "bn": comp.bn.state_dict()}]
    elif name.startswith("Bai2024MixedNUTS"):
        states = [model.std_model.state_dict(), model.rob_model.state_dict()]
    elif len(paths) > 1:
        states = [member.state_dict() for member in model.models]
    else:
        states = [_checkpoint_state(model.state_dict(), family.dataset, name)]
        if "Kireev2021Effectiveness" in name or name == "Andriushchenko2020Understanding":
            states = [{"last": states[0]}]
    if len(states) != len(paths):
        raise RuntimeError(f"{name}: built {len(states)} checkpoints for {len(paths)} files")
    for state, path in zip(states, paths):
        torch.save(state, path)
    del model, states
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return len(paths)


def write_imagenet_layout(data_dir: Path, n: int, seed: int = 0) -> None:
    """RobustBench's ImageNet layout with random JPEGs at the first ``n`` paths.

    The layout is ``val/<wnid>/ILSVRC2012_val_*.JPEG``.
    Every one of the 1,000 class folders is made (the class index comes from the folder list);
    only the first ``n`` images of RobustBench's evaluation list are written, 400 × 350 pixels
    (a typical validation image: large enough for every model's resize and crop).
    """
    from PIL import Image
    from robustbench import data as rb_data

    helper = Path(rb_data.__file__).resolve().parent / "helper_files"
    val = data_dir / "val"
    for wnid in json.loads((helper / "imagenet_class_to_id_map.json").read_text()):
        (val / wnid).mkdir(parents=True, exist_ok=True)
    listed = (helper / "imagenet_test_image_ids.txt").read_text().split()
    rng = np.random.default_rng(seed)
    for relative in listed[:n]:
        path = val / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (350, 400, 3), dtype=np.uint8)).save(path, quality=90)


def cifar_images(dataset: str, n: int, data_dir: str | None, seed: int = 0) -> lb_data.ImageSet:
    """Test images for a CIFAR family.

    Real ones where available, else uniform random pixels and labels.
    Pixels do not change a pass's cost; CIFAR-100 has no bundled test set, so without
    ``data_dir`` it gets random images in ``[0, 1]``.
    """
    if dataset == "cifar10" or data_dir is not None:
        return lb_data.image_set(dataset, n, data_dir)
    rng = np.random.default_rng(seed)
    x = rng.random((n, 3, 32, 32), dtype=np.float32)
    y = rng.integers(0, 100, n).astype(np.int64)
    return lb_data.ImageSet(x, y, np.arange(n, dtype=np.int64), "random", "random pixels", None)


def measure(
    family: Family, n: int, device: torch.device, work_dir: Path, imagenet_dir: Path | None,
    cifar_dir: str | None,
) -> Measurement:
    """Build, save and score the family's entry through :func:`leaderboard.scoring.score_model`.

    Raises:
        RuntimeError: scoring failed (the record's error).
    """
    from leaderboard.scoring import ScoreConfig, score_model

    model_dir = work_dir / "models"
    started = time.perf_counter()
    num_checkpoints = save_random_checkpoint(family, model_dir, device)
    build_seconds = time.perf_counter() - started
    entry = select_entries(family.dataset, family.threat_model, [family.model])[0]
    if family.dataset == "imagenet":
        if imagenet_dir is None:
            raise RuntimeError("no ImageNet layout was written")
        config_dir, images = str(imagenet_dir), None
    else:
        config_dir, images = cifar_dir, cifar_images(family.dataset, n, cifar_dir)
    config = ScoreConfig(
        model_dir=str(model_dir), data_dir=config_dir, n_examples=n, method="auto",
        device=str(device),
        progress=False, precision="float32",
    )
    try:
        record = score_model(entry, config, images).record
    finally:
        for path in model_dir.rglob("*.pt"):  # free the disk for the next family
            path.unlink()
        if device.type == "cuda":
            torch.cuda.empty_cache()
    if record["status"] != "ok":
        raise RuntimeError(record["error"])
    seconds = record["seconds"]
    return Measurement(
        family=family.key, model=family.model, n=n, num_checkpoints=num_checkpoints,
        build_seconds=build_seconds, load_seconds=seconds["load"], warmup_seconds=seconds["warmup"],
        fisher_seconds=seconds["fisher"], images_per_second=record["images_per_second"],
        route={**record["route"], "method": record["method"], "competitors": record["competitors"]},
        device=record["device"],
    )


# ----------------------------------------------------------------------------------------------
# Output


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def _route(route: dict[str, Any]) -> str:
    spectral, trace = route["spectral_norm"], route["trace"]
    text = (
        spectral["method"] if spectral["method"] == trace["method"]
        else f"{spectral['method']}/{trace['method']}"
    )
    competitors = route.get("competitors")
    return (
        f"{text} b{spectral['batch_size']}" + (f" c{competitors}" if competitors is not None
                                               else "")
    )


def print_measurement(m: Measurement) -> None:
    """One family's line: build, load, warm-up and Fisher seconds, images per second, route."""
    print(
        f"{m.family:<36} {m.model:<38} n={m.n:<4} build {m.build_seconds:7.1f} s  load "
        f"{m.load_seconds:6.1f} s  warm-up {m.warmup_seconds:6.1f} s  fisher "
        f"{m.fisher_seconds:7.1f} s  {m.images_per_second:9.2f} img/s  route {_route(m.route)}",
        flush=True,
    )


def print_extrapolation(
    estimates: Sequence[EntryEstimate], measurements: dict[str, Measurement], fields: Sequence[str]
) -> None:
    """Every entry's estimate, the per-family sums, the unmeasured architectures and the totals."""
    print("\nPer entry, at RobustBench's n_examples (10,000 CIFAR, 5,000 ImageNet):", flush=True)
    for e in estimates:
        fisher = _duration(e.seconds) if e.seconds is not None else "unmeasured"
        attack = (
            _duration(e.autoattack_seconds) if e.autoattack_seconds is not None else "not stated"
        )
        print(f"  {e.key:<62} {e.architecture!s:<48} {e.family or '—'!s:<36} {fisher:>10}   "
              f"AutoAttack: {attack}")
    print("\nPer family (entries mapped to it, their estimated time):")
    by_family: dict[str, list[EntryEstimate]] = {}
    for e in estimates:
        if e.family is not None:
            by_family.setdefault(e.family, []).append(e)
    for key, m in measurements.items():
        members = by_family.get(key, [])
        each = entry_seconds(m, ROBUSTBENCH_N_EXAMPLES[key.split("/", 1)[0]], m.num_checkpoints)
        print(f"  {key:<36} {len(members):>3} entries  {_duration(each):>9} per single model  "
              f"{_duration(sum(e.seconds or 0.0 for e in members)):>9} in all")
    unmeasured = Counter((e.key.split("/", 1)[0], e.architecture) for e in estimates
                         if e.seconds is None)
    if unmeasured:
        print(
            f"\nUnmeasured: {sum(unmeasured.values())} entries (their family was not timed in "
            "this run):"
        )
        for (dataset, arch), count in sorted(unmeasured.items(),
                                             key=lambda kv: (kv[0][0], str(kv[0][1]))):
            print(f"  {dataset:<9} {arch!s:<50} {count}")
    print("\nTotal (measured entries only):")
    for group, row in totals(estimates).items():
        print(f"  {group:<9} {row['entries']:>3} entries: {row['measured']:>3} measured, "
              f"{row['unmeasured']:>3} unmeasured; {_duration(float(row['seconds']))}")
    if not any(e.autoattack_seconds is not None for e in estimates):
        stated = ", ".join(fields) if fields else "none"
        print(
            "\nAutoAttack's cost: RobustBench states none. Its model-info files have no "
            f"run-time field (fields matching time/cost/hours: {stated}), so no AutoAttack time "
            "is shown beside these estimates.",
            flush=True,
        )


def write_json(path: Path | None, payload: dict[str, Any]) -> None:
    """Rewrite the measurements JSON.

    Called after every family, so a cut-off run keeps what it measured.
    """
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(payload, indent=1))
    tmp.replace(path)


def choose_families(config: str, keys: Sequence[str] | None) -> list[Family]:
    """The families to time: the ones named, else the config's (``small``: PreActResNet-18 only)."""
    if keys:
        by_key = {f.key: f for f in FAMILIES}
        unknown = [k for k in keys if k not in by_key]
        if unknown:
            raise SystemExit(f"unknown families {', '.join(unknown)}; choose from: "
                             f"{', '.join(by_key)}")
        return [by_key[k] for k in keys]
    if config == "small":
        return [f for f in FAMILIES if f.small]
    return list(FAMILIES)


def family_n(family: Family, config: str, n: int | None, n_imagenet: int | None) -> int:
    """Images to time for ``family``: ``--n`` / ``--n-imagenet`` if given, else the config's."""
    if family.dataset == "imagenet":
        return n_imagenet if n_imagenet is not None else (2 if config == "small" else family.full_n)
    return n if n is not None else (4 if config == "small" else family.full_n)


def main(argv: Sequence[str] | None = None) -> int:
    """Time the chosen families one by one, then print every entry's estimate and the totals.

    Args:
        argv: command-line arguments (``None``: ``sys.argv``).

    Returns:
        0; a family's failure is printed and recorded in the JSON, not raised.
    """
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", choices=("cpu", "cuda"),
                        default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--config", choices=("small", "full"), default=None,
                        help="small (default on CPU) or full (default on CUDA)")
    parser.add_argument("--families", nargs="*", default=None,
                        help=f"family keys, e.g. {FAMILIES[0].key}")
    parser.add_argument("--n", type=int, default=None,
                        help="CIFAR images per model (default: the config's)")
    parser.add_argument("--n-imagenet", type=int, default=None, help="ImageNet images per model")
    parser.add_argument("--data-dir", default=None,
                        help="torchvision-layout CIFAR root (default: bundled / random)")
    parser.add_argument("--out", type=Path, default=None,
                        help="JSON of the measurements, rewritten per family")
    parser.add_argument("--budget", type=float, default=None,
                        help="start no new family after this many seconds (default: "
                        f"{FULL_BUDGET_SECONDS:.0f} "
                             "for full, none for small or --families; 0: none)")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    config = args.config or ("full" if args.device == "cuda" else "small")
    device = torch.device(args.device)
    families = choose_families(config, args.families)

    from leaderboard.robustbench_compat import import_robustbench

    import_robustbench()
    entries = list_entries()
    fields = cost_fields()
    print(f"zoo_cost: config {config}, device {args.device}, torch {torch.__version__}, "
          f"{len(families)} families, {len(entries)} zoo entries", flush=True)
    if config == "small" and not args.families:
        print(
            "small config: PreActResNet-18 on 4 CIFAR-10 images only; WideResNet-28-10, the ODE "
            "model and ImageNet are skipped (minutes per image on a CPU: --families times them)",
            flush=True,
        )
    measurements: dict[str, Measurement] = {}
    failures: dict[str, str] = {}

    def payload() -> dict[str, Any]:
        estimates = extrapolate(entries, FAMILIES, measurements)
        return {
            "config": config, "device": args.device, "torch": torch.__version__,
            "measurements": {k: asdict(m) for k, m in measurements.items()}, "failures": failures,
            "totals": totals(estimates), "estimates": [asdict(e) for e in estimates],
            "autoattack_cost_fields": fields, "not_timed": skipped,
        }

    budget = args.budget if args.budget is not None else (
        FULL_BUDGET_SECONDS if config == "full" and not args.families else 0.0)
    skipped: list[str] = []
    with tempfile.TemporaryDirectory(prefix="zoo_cost_") as tmp:
        work_dir = Path(tmp)
        imagenet_dir = None
        imagenet_n = max((family_n(f, config, args.n, args.n_imagenet) for f in families
                          if f.dataset == "imagenet"),
                         default=0)
        if imagenet_n:
            imagenet_dir = work_dir / "imagenet"
            write_imagenet_layout(imagenet_dir, imagenet_n)
        for family in families:
            if budget and time.perf_counter() - started > budget:
                skipped.append(family.key)
                continue
            n = family_n(family, config, args.n, args.n_imagenet)
            try:
                measurements[family.key] = measure(family, n, device, work_dir, imagenet_dir,
                                                   args.data_dir)
                print_measurement(measurements[family.key])
            except Exception as exc:  # one family's failure must not end the run
                reason = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
                failures[family.key] = reason + "\n" + traceback.format_exc(limit=-3)
                print(f"{family.key:<36} {family.model:<38} FAILED: {reason}", flush=True)
            write_json(args.out, payload())
    if skipped:
        print(
            f"budget of {budget:.0f} s reached: not timed {', '.join(skipped)} (--families times "
            "them)",
            flush=True,
        )
    print_extrapolation(extrapolate(entries, FAMILIES, measurements), measurements, fields)
    write_json(args.out, payload())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
