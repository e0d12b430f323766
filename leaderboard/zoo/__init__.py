"""A CIFAR-10 model zoo trained and attacked in this project.

RobustBench's weights cannot be downloaded everywhere, so the claim that the input-Fisher
metric tracks AutoAttack accuracy is also checked on models trained here (four families,
standard, adversarial, TRADES and noise training) and attacked with standard AutoAttack.
``python -m leaderboard.zoo.build`` trains and attacks them, resumably.
"""
