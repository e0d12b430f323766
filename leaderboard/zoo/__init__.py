"""A CIFAR-10 model zoo trained and attacked in this project.

RobustBench's weights cannot be downloaded everywhere, so the claim that the input-Fisher
metric tracks AutoAttack accuracy is also checked on models trained here (four families,
standard, noise, adversarial and TRADES training) and attacked with standard AutoAttack.
``python -m leaderboard.zoo.build`` trains and attacks them, resumably, on a CPU.

    from leaderboard.zoo import ZOO, load_model
    model = load_model("resnet9_pgd8")   # float32, eval mode, [0, 1] inputs
"""

from leaderboard.zoo.plan import BUILD_ORDER, ZOO, ZooModel
from leaderboard.zoo.weights import load_model

__all__ = ["BUILD_ORDER", "ZOO", "ZooModel", "load_model"]
