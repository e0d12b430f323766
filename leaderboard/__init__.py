"""The art_fim leaderboard: every RobustBench zoo model scored by its input Fisher information.

``python -m leaderboard list`` shows the zoo (206 entries in robustbench 1.1.1) with the
reported clean and AutoAttack accuracies shipped in ``leaderboard/model_info``;
``python -m leaderboard run`` scores models from checkpoints in RobustBench's layout,
resumably, in one process or through Ray; ``python -m leaderboard render`` tabulates and
correlates the results.
"""

from __future__ import annotations
