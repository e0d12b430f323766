"""Where the models come from: RobustBench's zoo or the project's own, behind one interface.

A :class:`Source` says which models there are (:meth:`Source.entries`), whether a model's weights
are present and how to load them, its defaults (weights folder, results folder, images per model,
whether baselines are computed) and what to tell a user who has no weights or no results. The
command line, the scoring and the run loop ask the source; none of them asks which source it is.

This module imports neither torch nor RobustBench: the command line reads the sources' names,
defaults and help texts before it parses its arguments, and loads the heavy modules only for the
command it runs.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from torch import nn

    from leaderboard.registry import ZooEntry

PACKAGE_DIR = Path(__file__).resolve().parent
#: The package's own results folder, whatever the working directory (the zoo's ship in it).
RESULTS_DIR = PACKAGE_DIR / "results"
#: The project's zoo folder: ``models/``, ``model_info/`` and ``autoattack_curve/``.
ZOO_DIR = PACKAGE_DIR / "zoo"
#: Where RobustBench's checkpoints go under ``--model-dir``.
WEIGHTS_LAYOUT = "<dataset>/<threat_model>/<name>.pt (ensembles: <name>.pt_m0.pt, ...)"


class Source(ABC):
    """A zoo of models to score: which there are, their weights, and the defaults of a run.

    Attributes:
        name: the ``--source`` value.
        title: what messages call it (``"RobustBench zoo"``).
        summary: one line for ``--source``'s help.
        default_model_dir: where the weights are unless ``--model-dir`` says otherwise.
        default_results: where results go unless ``--results`` says otherwise.
        default_n_examples: test images per model unless ``--n-examples`` says otherwise.
        computes_baselines: whether baselines are computed unless asked otherwise.
        one_pass_per_model: whether one scoring of a model serves every threat model it is
            listed under (the zoo's models are one network attacked at ℓ∞ and ℓ2).
        autoattack_curves: folder of AutoAttack results at further budgets, or ``None``.
    """

    name: ClassVar[str]
    title: ClassVar[str]
    summary: ClassVar[str]
    default_model_dir: ClassVar[str]
    default_results: ClassVar[Path]
    default_n_examples: ClassVar[int]
    computes_baselines: ClassVar[bool] = False
    one_pass_per_model: ClassVar[bool] = False
    autoattack_curves: ClassVar[Path | None] = None

    @abstractmethod
    def entries(self, model_dir: str | Path, dataset: str = "all", threat_model: str = "all",
                models: Sequence[str] | None = None) -> list[ZooEntry]:
        """The models to score: all of the selection, or the named ones.

        Args:
            model_dir: the weights folder (the zoo reads its model-info files there).
            dataset: ``"cifar10"``, ... or ``"all"``.
            threat_model: ``"Linf"``, ... or ``"all"``.
            models: names to keep, matched without regard to case (``None``: all).

        Raises:
            UnknownModelError: a name is not in this source (close names offered).
            FileNotFoundError: the source's model list is missing.
        """

    @abstractmethod
    def weights_present(self, entry: ZooEntry, model_dir: str | Path) -> bool:
        """Whether the entry's weights are under ``model_dir``."""

    @abstractmethod
    def load(self, entry: ZooEntry, model_dir: str | Path,
             trust_checkpoints: bool = False) -> tuple[nn.Module, list[dict[str, Any]]]:
        """The entry's model and its checkpoints' ``{"file", "sha256", "bytes"}``."""

    @abstractmethod
    def where_weights_go(self, model_dir: str | Path) -> str:
        """Where the weights are expected, for messages (``models/<name>.pt``)."""

    @abstractmethod
    def how_to_get_weights(self, model_dir: str | Path) -> str:
        """What a user without weights can do, as a sentence without its capital."""

    def how_to_score(self) -> str:
        """The command that scores this source's models, for a user without results."""
        return f"`python -m leaderboard run --source {self.name}` scores them"

    def closing_line(self, model_dir: str | Path, models: Sequence[str] | None,
                     scored: set[str]) -> str | None:
        """A line after a run's summary (``None``: nothing to add).

        Args:
            model_dir: the weights folder.
            models: the ``--models`` given, if any.
            scored: names of the models done or already there.
        """
        return None


class RobustBenchSource(Source):
    """RobustBench's zoo, its reported accuracies shipped in ``leaderboard/model_info``."""

    name = "robustbench"
    title = "RobustBench zoo"
    summary = "RobustBench's zoo, its checkpoints in RobustBench's layout"
    default_model_dir = "models"
    default_results = RESULTS_DIR
    default_n_examples = 1000

    def entries(self, model_dir: str | Path, dataset: str = "all", threat_model: str = "all",
                models: Sequence[str] | None = None) -> list[ZooEntry]:
        """RobustBench's entries of the dataset and threat model (:mod:`leaderboard.registry`)."""
        from leaderboard.registry import select_entries

        return select_entries(dataset, threat_model, list(models) if models else None)

    def weights_present(self, entry: ZooEntry, model_dir: str | Path) -> bool:
        """Whether every checkpoint file of the entry is in RobustBench's layout."""
        from leaderboard.registry import robustbench_weights_present

        return robustbench_weights_present(entry, model_dir)

    def load(self, entry: ZooEntry, model_dir: str | Path,
             trust_checkpoints: bool = False) -> tuple[nn.Module, list[dict[str, Any]]]:
        """RobustBench's model with its checkpoints read safely (:mod:`robustbench_compat`)."""
        from leaderboard.robustbench_compat import import_robustbench, load_robustbench_model

        import_robustbench()
        loaded = load_robustbench_model(entry.name, entry.dataset, entry.threat_model,
                                        Path(model_dir), trust_checkpoints=trust_checkpoints)
        return loaded.model, [{"file": c.file, "sha256": c.sha256, "bytes": c.size}
                              for c in loaded.checkpoints]

    def where_weights_go(self, model_dir: str | Path) -> str:
        """``<model-dir>/<dataset>/<threat_model>/<name>.pt``."""
        return f"{model_dir}/{WEIGHTS_LAYOUT}"

    def how_to_get_weights(self, model_dir: str | Path) -> str:
        """Put RobustBench's checkpoints in its layout; ``list`` shows which are there."""
        return (f"put RobustBench's checkpoints under {model_dir}/ as {WEIGHTS_LAYOUT} "
                "(leaderboard/README.md, \"Weights\"); `python -m leaderboard list --model-dir "
                f"{model_dir}` shows which models have them.")

    def how_to_score(self) -> str:
        """``run --model-dir DIR`` scores the models whose weights are under DIR."""
        return ("`python -m leaderboard run --model-dir DIR` scores the models whose weights are "
                "under DIR (`python -m leaderboard list --model-dir DIR` shows which those are)")


class ZooSource(Source):
    """The project's CIFAR-10 zoo (:mod:`leaderboard.zoo`), its weights and AutoAttack results.

    Its models are those with a model-info file (an AutoAttack result); each is listed under both
    threat models it was attacked at, and one scoring serves both.
    """

    name = "zoo"
    title = "project zoo"
    summary = ("the project's own CIFAR-10 zoo (leaderboard/zoo: weights and measured AutoAttack "
               "accuracy committed)")
    default_model_dir = str(ZOO_DIR)
    default_results = RESULTS_DIR / "zoo"
    # The images its AutoAttack ran on.
    default_n_examples = 500
    computes_baselines = True
    one_pass_per_model = True
    autoattack_curves = ZOO_DIR / "autoattack_curve"

    def entries(self, model_dir: str | Path, dataset: str = "all", threat_model: str = "all",
                models: Sequence[str] | None = None) -> list[ZooEntry]:
        """The zoo's entries with a model-info file; ``dataset``/``threat_model`` are ignored.

        Raises:
            FileNotFoundError: no model has an AutoAttack result yet (or no model-info folder).
        """
        from leaderboard.zoo.entries import zoo_entries

        entries = zoo_entries(model_dir, list(models) if models else None)
        if not entries:
            raise FileNotFoundError(
                f"no zoo model under {model_dir}/model_info has an AutoAttack result yet: "
                "`python -m leaderboard.zoo.build all` trains and attacks them"
            )
        return entries

    def weights_present(self, entry: ZooEntry, model_dir: str | Path) -> bool:
        """Whether the entry's float16 state dict is under ``model_dir/models``."""
        from leaderboard.zoo.entries import zoo_weights_present

        return zoo_weights_present(entry, model_dir)

    def load(self, entry: ZooEntry, model_dir: str | Path,
             trust_checkpoints: bool = False) -> tuple[nn.Module, list[dict[str, Any]]]:
        """The zoo model (its state dict is read weights-only whatever ``trust_checkpoints``)."""
        from leaderboard.zoo.entries import load_zoo_entry

        return load_zoo_entry(entry, model_dir)

    def where_weights_go(self, model_dir: str | Path) -> str:
        """``<zoo>/models/<name>.pt``."""
        return f"{model_dir}/models/<name>.pt"

    def how_to_get_weights(self, model_dir: str | Path) -> str:
        """Train them with the zoo's build command."""
        return (f"the zoo's weights are {self.where_weights_go(model_dir)}; `python -m "
                "leaderboard.zoo.build train` trains them.")

    def how_to_score(self) -> str:
        """``run --source zoo`` scores the committed zoo."""
        return ("`python -m leaderboard run --source zoo` scores the zoo (its weights and "
                "AutoAttack results are committed under leaderboard/zoo)")

    def closing_line(self, model_dir: str | Path, models: Sequence[str] | None,
                     scored: set[str]) -> str:
        """How many of the planned models are scored, and why not the others."""
        from leaderboard.zoo import ZOO

        attacked = {e.name for e in self.entries(model_dir)}
        why = []
        if len(attacked) < len(ZOO):
            why.append(f"{len(ZOO) - len(attacked)} have no AutoAttack result yet")
        if models and len(scored) < len(attacked):
            why.append("--models chose the others out")
        return (f"{len(scored)} of the zoo's {len(ZOO)} planned models scored"
                + (f" ({'; '.join(why)})" if why else "")
                + "; rank correlations need at least 3 models")


#: Every source by its ``--source`` name.
SOURCES: dict[str, Source] = {s.name: s for s in (RobustBenchSource(), ZooSource())}
#: The source of a command that names none.
DEFAULT_SOURCE = RobustBenchSource.name


def source_named(name: str) -> Source:
    """The source called ``name``.

    Raises:
        ValueError: there is none.
    """
    try:
        return SOURCES[name]
    except KeyError:
        raise ValueError(f"source must be one of {', '.join(SOURCES)}, got {name!r}") from None
