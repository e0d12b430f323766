"""The ``render`` command's options, in a module that loads nothing heavy.

``python -m leaderboard render --help`` and argument errors are answered from these definitions
before :mod:`leaderboard.render` (numpy, SciPy, matplotlib, art_fim) is imported.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser,
                  default_results: str = "leaderboard/results") -> None:
    """The ``render`` subcommand's options."""
    parser.add_argument("--results", type=Path, default=Path(default_results),
                        help=f"directory written by `run` (default: {default_results})")
    parser.add_argument("--out", type=Path, default=None,
                        help="output directory (default: --results)")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    parser.add_argument("--autoattack-curves", type=Path, default=None,
                        help="folder of AutoAttack results at further budgets, "
                        "<dataset>/<threat_model>/<model>_eps<label>.json (default: none; --source "
                        "zoo: the zoo's autoattack_curve/)")
    parser.add_argument(
        "--allow-partial",
        action="store_true",
        help="exit 0 even when unreadable or inconsistent result files were skipped",
    )
