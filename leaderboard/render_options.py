"""The ``render`` command's options, apart from the module that renders.

:mod:`leaderboard.render` imports numpy, scipy, matplotlib and (through ``art_fim``) torch;
a command line that only parses its arguments, or prints its help, needs none of them.
"""

from __future__ import annotations

import argparse
from pathlib import Path

#: Default bootstrap resamples of each correlation's interval.
N_RESAMPLES = 2000


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def add_arguments(parser: argparse.ArgumentParser,
                  default_results: str = "leaderboard/results") -> None:
    """The ``render`` subcommand's options."""
    parser.add_argument("--results", type=Path, default=Path(default_results),
                        help=f"directory written by `run` (default: {default_results})")
    parser.add_argument("--out", type=Path, default=None,
                        help="output directory (default: --results)")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    parser.add_argument("--n-resamples", type=_positive_int, default=N_RESAMPLES,
                        help="bootstrap resamples of each correlation's 95%% interval "
                        f"(default: {N_RESAMPLES})")
    parser.add_argument("--autoattack-curves", type=Path, default=None,
                        help="folder of AutoAttack results at further budgets, "
                        "<dataset>/<threat_model>/<model>_eps<label>.json (default: none; --source "
                        "zoo: the zoo's autoattack_curve/)")
    parser.add_argument(
        "--allow-partial",
        action="store_true",
        help="exit 0 even when unreadable or inconsistent result files were skipped",
    )
