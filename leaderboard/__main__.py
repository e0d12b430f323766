r"""Command line: ``python -m leaderboard list|run|render``.

Examples::

    python -m leaderboard list --dataset cifar10 --threat-model Linf --model-dir models
    python -m leaderboard run --dataset cifar10 --threat-model Linf --models Standard,Wong2020Fast
        \ --model-dir models --n-examples 1000 --results leaderboard/results
    python -m leaderboard run ... --backend ray --num-gpus-per-task 1
    python -m leaderboard render --results leaderboard/results
    python -m leaderboard run --source zoo && python -m leaderboard render --source zoo
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from leaderboard.baselines import Baselines
from leaderboard.registry import DATASETS, THREAT_MODELS
from leaderboard.render import add_arguments as render_arguments
from leaderboard.scoring import SOURCES

DEFAULT_MODEL_DIR = "models"
#: The package's own results folder, whatever the working directory (the zoo's ship in it).
DEFAULT_RESULTS = Path(__file__).resolve().parent / "results"
#: Where each source's results go unless --results says otherwise.
DEFAULT_RESULTS_BY_SOURCE = {"robustbench": DEFAULT_RESULTS, "zoo": DEFAULT_RESULTS / "zoo"}
#: Test images per model unless --n-examples says otherwise: the zoo's AutoAttack images.
DEFAULT_N_EXAMPLES = {"robustbench": 1000, "zoo": 500}
WEIGHTS_LAYOUT = "<dataset>/<threat_model>/<name>.pt (ensembles: <name>.pt_m0.pt, ...)"


class _HelpWithDefaults(argparse.ArgumentDefaultsHelpFormatter):
    """``--help`` shows each option's default, unless it is unset or the help already says it."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default is None or action.default is False or "default" in (action.help or ""):
            return action.help
        return super()._get_help_string(action)


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def cmd_list(args: argparse.Namespace) -> int:
    """Print the zoo with reported accuracies and whether weights are present."""
    from leaderboard.registry import list_entries, robustbench_weights_present

    entries = list_entries(args.dataset, args.threat_model)
    present = {e.key: robustbench_weights_present(e, args.model_dir) for e in entries}
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
        f"{len(entries)} zoo entries, {with_aa} with AutoAttack accuracy, "
        f"{count} with weights under {args.model_dir} (* external evaluation)"
    )
    if not count:
        print(f"To score models, put RobustBench's checkpoints under {args.model_dir}/ as "
              f"{WEIGHTS_LAYOUT} (leaderboard/README.md, \"Weights\").")
    return 0


def _baselines(args: argparse.Namespace) -> Baselines | None:
    """The baselines to compute: the zoo's by default, RobustBench's models only when asked."""
    given = {key: getattr(args, key) for key in ("blackbox_n", "reference_n", "clever_n")}
    given = {key: value for key, value in given.items() if value is not None}
    if args.source != "zoo" and not given:
        return None
    return Baselines(**given)


def _zoo_selection(args: argparse.Namespace, models: list[str] | None) -> tuple[list, list]:
    """The project's zoo entries with model-info files, and those whose weights are present."""
    from leaderboard.zoo.entries import zoo_entries, zoo_weights_present

    entries = zoo_entries(args.model_dir, models)
    if not entries:
        raise FileNotFoundError(
            f"no zoo model under {args.model_dir}/model_info has an AutoAttack result yet: "
            "`python -m leaderboard.zoo.build all` trains and attacks them"
        )
    return entries, [e for e in entries if zoo_weights_present(e, args.model_dir)]


def cmd_run(args: argparse.Namespace) -> int:
    """Score models and print a summary; exit status 1 if any model failed."""
    from leaderboard.registry import robustbench_weights_present, select_entries
    from leaderboard.run import run_models
    from leaderboard.scoring import ScoreConfig

    _resolve_source_defaults(args)
    models = [m.strip() for m in args.models.split(",") if m.strip()] if args.models else None
    if args.source == "zoo":
        entries, present = _zoo_selection(args, models)
    else:
        entries = select_entries(args.dataset, args.threat_model, models)
        present = [e for e in entries if robustbench_weights_present(e, args.model_dir)]
    if not present:
        how = (
            f"The zoo's weights are {args.model_dir}/models/<name>.pt; `python -m "
            "leaderboard.zoo.build train` trains them." if args.source == "zoo" else
            f"Put RobustBench's checkpoints there as {args.model_dir}/{WEIGHTS_LAYOUT} "
            "(leaderboard/README.md, \"Weights\"); `python -m leaderboard list --model-dir "
            f"{args.model_dir}` shows which models have them."
        )
        print(
            f"error: none of the {len(entries)} selected models has its weights under "
            f"{args.model_dir}/, so there is nothing to score.\n{how}",
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
            f"{args.model_dir}/{'models/<name>.pt' if args.source == 'zoo' else WEIGHTS_LAYOUT}); "
            "they are recorded as failed. --skip-missing leaves them out."
        )
    config = ScoreConfig(
        model_dir=args.model_dir,
        data_dir=args.data_dir,
        n_examples=args.n_examples,
        batch_size=args.batch_size,
        method=args.method,
        device=args.device,
        seed=args.seed,
        progress=not args.no_progress,
        trust_checkpoints=args.trust_checkpoints,
        source=args.source,
        baselines=_baselines(args),
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
    if args.source == "zoo":
        from leaderboard.zoo import ZOO
        from leaderboard.zoo.entries import zoo_entries

        scored = {key.rsplit("/", 1)[-1] for key in (*summary.done, *summary.skipped)}
        attacked = {e.name for e in zoo_entries(args.model_dir, None)}
        why = []
        if len(attacked) < len(ZOO):
            why.append(f"{len(ZOO) - len(attacked)} have no AutoAttack result yet")
        if models and len(scored) < len(attacked):
            why.append("--models chose the others out")
        print(f"{len(scored)} of the zoo's {len(ZOO)} planned models scored"
              + (f" ({'; '.join(why)})" if why else "")
              + "; rank correlations need at least 3 models")
    if Path(args.results).is_dir():
        source = " --source zoo" if args.source == "zoo" else ""
        print(f"results in {args.results}; `python -m leaderboard render{source} --results "
              f"{args.results}` tabulates them")
    return 1 if summary.failed else 0


def cmd_render(args: argparse.Namespace) -> int:
    """CSV, Markdown, plots and correlations of the results (``leaderboard.render``)."""
    from leaderboard.render import run_from_args

    if args.results is None:
        args.results = Path(DEFAULT_RESULTS_BY_SOURCE[args.source])
    if args.autoattack_curves is None and args.source == "zoo":
        from leaderboard.zoo.weights import ZOO_DIR

        args.autoattack_curves = Path(ZOO_DIR) / "autoattack_curve"
    return run_from_args(args)


def _resolve_source_defaults(args: argparse.Namespace) -> None:
    """Fill the options whose defaults depend on ``--source``."""
    from leaderboard.zoo.weights import ZOO_DIR

    if args.model_dir is None:
        args.model_dir = str(ZOO_DIR) if args.source == "zoo" else DEFAULT_MODEL_DIR
    if args.results is None:
        args.results = DEFAULT_RESULTS_BY_SOURCE[args.source]
    if args.n_examples is None:
        args.n_examples = DEFAULT_N_EXAMPLES[args.source]


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


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``python -m leaderboard``."""
    parser = argparse.ArgumentParser(
        prog="python -m leaderboard",
        description="Score RobustBench's models by their input Fisher information: list the zoo,\n"
        "run the scoring, render the leaderboard. `python -m leaderboard <command> --help`\n"
        "shows a command's options and their defaults.",
        epilog="examples:" + __doc__.split("Examples::", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    sub = parser.add_subparsers(dest="command", required=True)

    def source(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--source",
            choices=SOURCES,
            default="robustbench",
            help="robustbench: RobustBench's zoo (weights under --model-dir); zoo: the project's "
            "own CIFAR-10 zoo (leaderboard/zoo: weights and measured AutoAttack accuracy "
            "committed; --model-dir is the zoo folder, --dataset/--threat-model are ignored)",
        )

    def selection(p: argparse.ArgumentParser, dataset: str, threat: str) -> None:
        p.add_argument("--dataset", choices=[*DATASETS, "all"], default=dataset,
                       help="dataset of the zoo")
        p.add_argument("--threat-model", choices=[*THREAT_MODELS, "all"], default=threat,
                       help="threat model of the zoo")
        p.add_argument("--model-dir", default=DEFAULT_MODEL_DIR,
                       help=f"RobustBench's layout: <model-dir>/{WEIGHTS_LAYOUT}")

    p_list = sub.add_parser(
        "list",
        help="the RobustBench zoo with reported accuracies and local weights",
        formatter_class=_HelpWithDefaults,
    )
    selection(p_list, "all", "all")
    p_list.set_defaults(func=cmd_list)

    p_run = sub.add_parser("run", help="score models (resumable; one JSON and one .npz per model)",
                           formatter_class=_HelpWithDefaults)
    selection(p_run, "cifar10", "Linf")
    p_run.set_defaults(model_dir=None)
    source(p_run)
    p_run.add_argument(
        "--models", help="comma-separated zoo names (default: every model of the selection)"
    )
    p_run.add_argument("--data-dir", help="torchvision-layout data root (default: the bundled "
                       "CIFAR-10 subset)")
    p_run.add_argument("--n-examples", type=_positive_int, default=None,
                       help="test images per model (default: 1000; zoo: 500, the images its "
                       "AutoAttack ran on)")
    p_run.add_argument("--batch-size", type=_positive_int, default=128,
                       help="largest batch (shrunk to fit memory)")
    p_run.add_argument("--method", choices=["auto", "exact", "lanczos"], default="auto",
                       help="Fisher route: exact (all K Jacobian rows), lanczos (matrix-free, "
                       "radii from the 20 nearest competitors), or auto (lanczos for K > 100 or "
                       "when exact does not fit)")
    p_run.add_argument("--device", default="auto", help="auto, cpu or cuda[:i]")
    p_run.add_argument("--precision", choices=["float32", "tf32"], default="float32",
                       help="arithmetic of the products: full float32, or TF32 on GPUs that have "
                       "it (faster)")
    p_run.add_argument("--seed", type=int, default=0, help="seed of every random draw")
    p_run.add_argument("--results", default=None,
                       help=f"where result files go (default: {DEFAULT_RESULTS}; zoo: "
                       f"{DEFAULT_RESULTS_BY_SOURCE['zoo']})")
    defaults = Baselines()
    p_run.add_argument(
        "--blackbox-n",
        type=_non_negative_int,
        default=None,
        help=f"images for the query-only λ_max ({defaults.blackbox_queries} queries each; "
        f"default: {defaults.blackbox_n} for the zoo, none for RobustBench; 0: none)",
    )
    p_run.add_argument("--reference-n", type=_non_negative_int, default=None,
                       help=f"images for the first paper's reference white-box estimator (default: "
                            f"{defaults.reference_n} for the zoo, none for RobustBench; 0: none)")
    p_run.add_argument(
        "--clever-n",
        type=_non_negative_int,
        default=None,
        help=f"images for ART's clever_u per threat model (seconds per image on a CPU; "
        f"default: {defaults.clever_n} for the zoo, none for RobustBench; 0: none)",
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
    p_run.set_defaults(func=cmd_run)

    p_render = sub.add_parser("render", help="CSV, Markdown table, plots and correlations",
                              formatter_class=_HelpWithDefaults)
    render_arguments(p_render, default_results=str(DEFAULT_RESULTS))
    p_render.set_defaults(results=None)
    source(p_render)
    p_render.set_defaults(func=cmd_render)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    from leaderboard.robustbench_compat import MissingWeightsError, UnknownModelError

    try:
        return int(args.func(args))
    except (UnknownModelError, MissingWeightsError, FileNotFoundError, ValueError,
            ImportError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
