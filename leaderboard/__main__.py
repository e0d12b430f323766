r"""Command line: ``python -m leaderboard list|run|render``.

Examples::

    python -m leaderboard list --dataset cifar10 --threat-model Linf --model-dir models
    python -m leaderboard list --source zoo
    python -m leaderboard run --dataset cifar10 --threat-model Linf \
        --models Standard,Wong2020Fast --model-dir models --n-examples 1000
    python -m leaderboard run --models Wong2020Fast --backend ray --num-gpus-per-task 1
    python -m leaderboard render --results leaderboard/results
    python -m leaderboard run --source zoo && python -m leaderboard render --source zoo

Only the standard library and the light :mod:`leaderboard.sources` are imported before the
arguments are parsed, so that ``--help`` and argument errors answer at once; torch, RobustBench,
art_fim and the plotting modules are loaded by the command that needs them.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

from leaderboard.baselines import ALL_IMAGES, BASELINES, Baselines
from leaderboard.errors import UnknownModelError
from leaderboard.registry import DATASETS, THREAT_MODELS
from leaderboard.render_options import add_arguments as render_arguments
from leaderboard.sources import DEFAULT_SOURCE, SOURCES, Source, source_named

logger = logging.getLogger(__name__)
#: The module docstring's examples, each a line that can be pasted into a shell.
EXAMPLES = __doc__.split("Examples::", 1)[1].split("\n\n")[1] + "\n"


class _HelpWithDefaults(argparse.ArgumentDefaultsHelpFormatter):
    """``--help`` shows each option's default, unless it is unset or the help already says it."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default is None or action.default is False or "default" in (action.help or ""):
            return action.help
        return super()._get_help_string(action)


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def cmd_list(args: argparse.Namespace) -> int:
    """Print the source's models with their reported accuracies and whether weights are present."""
    source = _source(args)
    entries = source.entries(args.model_dir, args.dataset, args.threat_model)
    present = {e.key: source.weights_present(e, args.model_dir) for e in entries}
    width = max((len(e.name) for e in entries), default=10)
    print(f"{'dataset':<9} {'threat':<11} {'model':<{width}} {'architecture':<26} {'clean':>6} "
          f"{'AA':>6} weights")
    for e in entries:
        r = e.reported
        aa = _fmt(r.autoattack_acc) + ("*" if r.aa_source == "external" else " ")
        print(
            f"{e.dataset:<9} {e.threat_model:<11} {e.name:<{width}} "
            f"{(r.architecture or '-')[:26]:<26} {_fmt(r.clean_acc):>6} {aa:>7} "
            f"{'yes' if present[e.key] else 'no'}"
        )
    with_aa = sum(e.reported.autoattack_acc is not None for e in entries)
    count = sum(present.values())
    print(
        f"{len(entries)} {source.title} entries, {with_aa} with AutoAttack accuracy, "
        f"{count} with weights under {args.model_dir} (* external evaluation)"
    )
    if not count:
        print(f"To score models, {source.how_to_get_weights(args.model_dir)}")
    return 0


def _capitalised(sentence: str) -> str:
    return sentence[:1].upper() + sentence[1:]


def _source(args: argparse.Namespace) -> Source:
    """The ``--source`` of ``args``, with the options whose defaults depend on it filled in."""
    source = source_named(args.source)
    if getattr(args, "model_dir", "") is None:
        args.model_dir = source.default_model_dir
    if getattr(args, "results", "") is None:
        args.results = source.default_results
    if getattr(args, "n_examples", "") is None:
        args.n_examples = source.default_n_examples
    return source


def _baselines(args: argparse.Namespace, source: Source) -> Baselines | None:
    """The baselines to compute: the source's default, or those given an image count."""
    given = {b.images: getattr(args, b.images) for b in BASELINES
             if getattr(args, b.images) is not None}
    if not source.computes_baselines and not given:
        return None
    return Baselines(**given)


def _check_device(device: str) -> None:
    """Refuse a device torch does not know, or a GPU where torch sees none, before any scoring.

    Raises:
        ValueError: naming the device and what to use instead.
    """
    import torch

    if device == "auto":
        return
    try:
        parsed = torch.device(device)
    except RuntimeError:
        raise ValueError(f"--device {device!r} is not a device: use auto, cpu or cuda[:i]"
                         ) from None
    if parsed.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"--device {device} was asked for but torch sees no GPU (CUDA "
                             f"build: {torch.version.cuda or 'none'}); use --device cpu or auto")
        if parsed.index is not None and parsed.index >= torch.cuda.device_count():
            raise ValueError(f"--device {device}: torch sees {torch.cuda.device_count()} GPU(s)")


def cmd_run(args: argparse.Namespace) -> int:
    """Score models and print a summary; exit status 1 if any model failed."""
    source = _source(args)
    _check_device(args.device)
    from leaderboard.run import run_models
    from leaderboard.scoring import ScoreConfig

    models = [m.strip() for m in args.models.split(",") if m.strip()] if args.models else None
    entries = source.entries(args.model_dir, args.dataset, args.threat_model, models)
    present = [e for e in entries if source.weights_present(e, args.model_dir)]
    if not present:
        print(
            f"error: none of the {len(entries)} selected models has its weights under "
            f"{args.model_dir}/, so there is nothing to score.\n"
            f"{_capitalised(source.how_to_get_weights(args.model_dir))}",
            file=sys.stderr,
        )
        return 2
    missing = len(entries) - len(present)
    if missing and args.skip_missing:
        print(f"leaving out {missing} of {len(entries)} models without weights under "
              f"{args.model_dir}/")
        entries = present
    elif missing:
        print(
            f"{missing} of {len(entries)} models have no weights under {args.model_dir}/ (expected "
            f"{source.where_weights_go(args.model_dir)}); they are recorded as failed. "
            "--skip-missing leaves them out."
        )
    config = ScoreConfig(
        model_dir=str(args.model_dir),
        data_dir=args.data_dir,
        n_examples=args.n_examples,
        batch_size=args.batch_size,
        method=args.method,
        device=args.device,
        seed=args.seed,
        progress=not args.no_progress,
        trust_checkpoints=args.trust_checkpoints,
        source=source.name,
        baselines=_baselines(args, source),
        precision=args.precision,
    )
    summary = run_models(
        entries,
        config,
        args.results,
        backend=args.backend,
        overwrite=args.overwrite,
        ray_address=args.ray_address,
        num_gpus_per_task=args.num_gpus_per_task,
        num_cpus_per_task=args.num_cpus_per_task,
        progress=not args.no_progress,
    )
    print(summary.table())
    scored = {key.rsplit("/", 1)[-1] for key in (*summary.done, *summary.skipped)}
    closing = source.closing_line(args.model_dir, models, scored)
    if closing:
        print(closing)
    if Path(args.results).is_dir():
        flag = "" if source.name == DEFAULT_SOURCE else f" --source {source.name}"
        print(f"results in {args.results}; `python -m leaderboard render{flag} --results "
              f"{args.results}` tabulates them")
    return 1 if summary.failed else 0


def cmd_render(args: argparse.Namespace) -> int:
    """CSV, Markdown, plots and correlations of the results (``leaderboard.render``).

    Raises:
        FileNotFoundError: the results folder does not exist (naming it and how to fill it).
    """
    source = _source(args)
    if not Path(args.results).is_dir():
        raise FileNotFoundError(
            f"the results folder {args.results} does not exist, so nothing has been scored "
            f"there. {_capitalised(source.how_to_score())}."
        )
    if args.autoattack_curves is None:
        args.autoattack_curves = source.autoattack_curves
    from leaderboard.render import run_from_args

    return run_from_args(args)


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be a non-negative integer, got {text}")
    return value


_SOURCE_HELP = {
    "list": "which zoo to list",
    "run": "which zoo to score; its weights are under --model-dir (zoo: the zoo folder, "
    "--dataset/--threat-model are ignored) and its results go to --results",
    "render": "whose results to render: sets the default --results and --autoattack-curves",
}


def _add_source(parser: argparse.ArgumentParser, command: str) -> None:
    listed = "; ".join(f"{s.name}: {s.summary}" for s in SOURCES.values())
    parser.add_argument("--source", choices=list(SOURCES), default=DEFAULT_SOURCE,
                        help=f"{_SOURCE_HELP[command]} ({listed})")


def _add_selection(parser: argparse.ArgumentParser, dataset: str, threat: str) -> None:
    parser.add_argument("--dataset", choices=[*DATASETS, "all"], default=dataset,
                        help="dataset of the zoo")
    parser.add_argument("--threat-model", choices=[*THREAT_MODELS, "all"], default=threat,
                        help="threat model of the zoo")
    defaults = ", ".join(f"{s.name}: {s.default_model_dir}" for s in SOURCES.values())
    parser.add_argument("--model-dir", default=None,
                        help=f"where the weights are (default: {defaults})")


def _add_run_options(p_run: argparse.ArgumentParser) -> None:
    p_run.add_argument(
        "--models", help="comma-separated model names, in any case (default: every model of the "
        "selection)"
    )
    p_run.add_argument("--data-dir", help="torchvision-layout data root (default: the bundled "
                       "CIFAR-10 subset)")
    defaults = ", ".join(f"{s.name}: {s.default_n_examples}" for s in SOURCES.values())
    p_run.add_argument("--n-examples", type=_positive_int, default=None,
                       help=f"test images per model (default: {defaults}; the zoo's are the "
                       "images its AutoAttack ran on)")
    p_run.add_argument("--batch-size", type=_positive_int, default=128,
                       help="largest batch (shrunk to fit memory)")
    p_run.add_argument("--method", choices=["auto", "exact", "lanczos"], default="auto",
                       help="Fisher route: exact (all K Jacobian rows), lanczos (matrix-free, "
                       "radii from the 20 nearest competitors), or auto (lanczos for K > 100 or "
                       "when exact does not fit)")
    p_run.add_argument("--device", default="auto",
                       help="auto, cpu or cuda[:i] (checked before any model is scored)")
    p_run.add_argument("--precision", choices=["float32", "tf32"], default="float32",
                       help="arithmetic of the products: full float32, or TF32 on GPUs that have "
                       "it (faster)")
    p_run.add_argument("--seed", type=int, default=0, help="seed of every random draw")
    defaults = ", ".join(f"{s.name}: {s.default_results}" for s in SOURCES.values())
    p_run.add_argument("--results", default=None,
                       help=f"where result files go (default: {defaults})")
    counts = Baselines()
    by_default = ", ".join(s.name for s in SOURCES.values() if s.computes_baselines)
    for baseline in BASELINES:
        count = baseline.count(counts)
        default = "every scored image" if count == ALL_IMAGES else count
        p_run.add_argument(
            baseline.option, dest=baseline.images, type=_non_negative_int, default=None,
            help=f"images for the baseline {baseline.description} (default: "
            f"{default} for {by_default}, none otherwise; 0: none)",
        )
    p_run.add_argument("--overwrite", action="store_true",
                       help="rescore models already done (also those scored with other settings)")
    p_run.add_argument("--skip-missing", action="store_true",
                       help="leave out models without weights")
    p_run.add_argument(
        "--trust-checkpoints",
        action="store_true",
        help="load checkpoints with weights_only=False, which runs any code they contain; "
        "only for files you trust (default: weights only)",
    )
    p_run.add_argument("--backend", choices=["local", "ray"], default="local",
                       help="local: one model after the other; ray: one task per model")
    p_run.add_argument("--ray-address", help="Ray cluster address (default: start a local one)")
    p_run.add_argument("--num-gpus-per-task", type=float, default=0.0,
                       help="GPUs per Ray task (1 on a GPU cluster)")
    p_run.add_argument("--num-cpus-per-task", type=float, default=1.0, help="CPUs per Ray task")
    p_run.add_argument("--no-progress", action="store_true", help="no progress bars")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``python -m leaderboard``."""
    parser = argparse.ArgumentParser(
        prog="python -m leaderboard",
        description="Score RobustBench's models by their input Fisher information: list the zoo,\n"
        "run the scoring, render the leaderboard. `python -m leaderboard <command> --help`\n"
        "shows a command's options and their defaults.",
        epilog="examples:\n\n" + EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    sub = parser.add_subparsers(dest="command", required=True)

    p_list = sub.add_parser("list", formatter_class=_HelpWithDefaults,
                            help="a zoo's models with reported accuracies and local weights")
    _add_source(p_list, "list")
    _add_selection(p_list, "all", "all")
    p_list.set_defaults(func=cmd_list)

    p_run = sub.add_parser("run", help="score models (resumable; one JSON and one .npz per model)",
                           formatter_class=_HelpWithDefaults)
    _add_source(p_run, "run")
    _add_selection(p_run, "cifar10", "Linf")
    _add_run_options(p_run)
    p_run.set_defaults(func=cmd_run)

    p_render = sub.add_parser("render", help="CSV, Markdown table, plots and correlations",
                              formatter_class=_HelpWithDefaults)
    defaults = ", ".join(f"{s.name}: {s.default_results}" for s in SOURCES.values())
    render_arguments(p_render, default_results=defaults)
    p_render.set_defaults(results=None)
    _add_source(p_render, "render")
    p_render.set_defaults(func=cmd_render)
    return parser


@contextlib.contextmanager
def _logging_beside_progress_bars() -> Iterator[None]:
    """Log records and warnings written above the progress bars, never into their line."""
    from tqdm.contrib.logging import logging_redirect_tqdm

    logging.captureWarnings(True)
    try:
        with logging_redirect_tqdm():
            yield
    finally:
        logging.captureWarnings(False)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        with _logging_beside_progress_bars():
            return int(args.func(args))
    # MissingWeightsError is a FileNotFoundError.
    except (UnknownModelError, FileNotFoundError, ValueError, ImportError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
