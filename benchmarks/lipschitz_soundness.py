"""A longer search for counterexamples to the certified Lipschitz bound and its certificates.

    python -m benchmarks.lipschitz_soundness [--networks 2000] [--minutes 8] [--seed 0]

(as a module from the project root, so that ``art_fim`` and ``benchmarks`` import).

Draws small random networks from every layer type that has a rule (random kernel sizes,
strides, padding, dilation, ``ceil_mode``, ``count_include_pad``, ``divisor_override``,
``align_corners``, groups, unbatched shapes, activation arguments in and out of range;
sequences and parallel branches), and the classes of model the bound must prove or refuse
(hooks, in-place changes and view mutations, Python values taken from the input, casts and
rounding, keyword-argument calls); bounds each with ``art_fim.lipschitz.lipschitz_bound`` and
searches for an input whose exact float64 ``‖J(x)‖₂`` exceeds the bound, or a pair with
``‖f(a) − f(b)‖ > L ‖a − b‖`` (:mod:`benchmarks.lipschitz_search`). A share of the draws are
certificate scenarios (predict-time defences; a bound reused for another input shape,
preprocessing or weights; a bound used as computed): each is refused, or its certified radii are
checked against the distance at which the prediction changes. The CI test
``tests/test_lipschitz_soundness.py`` runs the same search with a small budget.

Prints how many networks and inputs were searched, how many the bound refused by name, the
classes covered (drawn / refused), the scenarios (drawn / refused), on how many networks the
search reached the bound, and the largest exact/bound ratio found; exits 1 if any ratio exceeds
1 + 1e-6 or anything crashed.
"""

from __future__ import annotations

import argparse
import logging

from benchmarks.lipschitz_search import TOLERANCE, search_many


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--networks", type=int, default=2000,
                        help="networks and scenarios to draw at most")
    parser.add_argument("--minutes", type=float, default=8.0, help="stop drawing after this long")
    parser.add_argument("--seed", type=int, default=0, help="seed of the draws")
    parser.add_argument("--starts", type=int, default=12, help="starting points per network")
    parser.add_argument("--steps", type=int, default=8, help="rounds of random moves per start")
    parser.add_argument("--pair-steps", type=int, default=30,
                        help="gradient steps on the pair ratio")
    args = parser.parse_args(argv)

    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    report = search_many(args.seed, args.networks, max_seconds=60 * args.minutes,
                         starts=args.starts, steps=args.steps, pair_steps=args.pair_steps)
    print(f"networks searched      {report.networks}")
    print(f"refused by name        {report.refused}")
    print(f"forward pairs only     {report.no_gradient}")
    print(f"inputs evaluated       {report.inputs}")
    print(f"bound reached (±1e-6)  {report.tight}")
    print(f"largest exact / bound  {report.worst_ratio:.9f}")
    print(f"counterexamples        {len(report.counterexamples)}")
    print(f"crashes                {len(report.crashes)}")
    print(f"seconds                {report.seconds:.0f}")
    print("classes (drawn / refused)")
    for name, (drawn, refused) in report.classes.items():
        print(f"  {name:<24}{drawn:>5} / {refused}")
    print("certificate scenarios (drawn / refused)")
    for name, (drawn, refused) in report.scenarios.items():
        print(f"  {name:<28}{drawn:>5} / {refused}")
    print(f"case of the largest ratio:\n{report.worst_network}")
    for network, ratio in report.counterexamples:
        print(f"COUNTEREXAMPLE ratio {ratio:.9f}:\n{network}")
    for crash in report.crashes:
        print(f"CRASH {crash}")
    sound = report.worst_ratio <= 1 + TOLERANCE and not report.crashes
    return 0 if sound else 1


if __name__ == "__main__":
    raise SystemExit(main())
