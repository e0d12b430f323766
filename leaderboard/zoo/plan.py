"""The zoo: which architecture is trained how, sized for two CPU cores.

Four families (VGG, ResNet-9, DenseNet-BC, ViT) × four regimes (standard, Gaussian-noise
augmentation, PGD adversarial training at ℓ∞ 2/255 and 8/255), plus TRADES at ℓ∞ 8/255 and
PGD adversarial training at ℓ2 0.5 on ResNet-9: 18 models whose AutoAttack accuracy spreads
from none to the most a short schedule reaches.

The schedules are sized from throughput measured on a 2-core CPU (float32, batch 256):
VGG ~1,250, ResNet-9 ~1,050, DenseNet ~650 and ViT ~600 training images/s, so a standard
epoch over the 50,000 training images costs 40–85 s and a PGD-2 epoch about three times that.
Every model trains in at most ~25 minutes there; the whole zoo in about five CPU-hours, its
AutoAttack on 500 images in about three more. A GPU runs the same schedules in minutes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from leaderboard.zoo.training import Regime


@dataclass(frozen=True)
class ZooModel:
    """One model of the zoo.

    Attributes:
        name: file stem of its weights and model-info files.
        architecture: key of :data:`leaderboard.zoo.architectures.ARCHITECTURES`.
        regime: how it is trained.
        epochs: passes over the 50,000 training images.
        lr: peak learning rate of the one-cycle schedule.
        optimizer: ``"sgd"`` or ``"adamw"``.
        seed: training seed.
    """

    name: str
    architecture: str
    regime: Regime = field(default_factory=Regime)
    epochs: int = 10
    lr: float = 0.1
    optimizer: str = "sgd"
    seed: int = 0


def _family(architecture: str, clean_epochs: int, adversarial_epochs: int,
            **options: object) -> list[ZooModel]:
    return [
        ZooModel(f"{architecture}_standard", architecture, Regime("standard"), clean_epochs,
                 **options),
        ZooModel(f"{architecture}_noise0.1", architecture, Regime("noise", sigma=0.1), clean_epochs,
                 **options),
        ZooModel(f"{architecture}_pgd2", architecture, Regime("pgd", eps=2 / 255),
                 adversarial_epochs, **options),
        ZooModel(f"{architecture}_pgd8", architecture, Regime("pgd", eps=8 / 255),
                 adversarial_epochs, **options),
    ]


ZOO: dict[str, ZooModel] = {
    model.name: model
    for model in [
        *_family("vgg", 12, 8, lr=0.05),
        *_family("resnet9", 12, 8),
        ZooModel("resnet9_trades8", "resnet9", Regime("trades", eps=8 / 255, beta=6.0), 6),
        ZooModel("resnet9_pgd_l2_0.5", "resnet9", Regime("pgd", eps=0.5, norm="L2"), 8),
        *_family("densenet", 10, 6),
        # Transformers learn slowly from 50,000 images: AdamW, and every epoch the budget allows.
        *_family("vit", 10, 6, lr=2e-3, optimizer="adamw"),
    ]
}

# Cheap, diverse models first, so that a build stopped early still spans the families.
BUILD_ORDER: tuple[str, ...] = (
    "vgg_standard", "resnet9_standard", "densenet_standard", "vit_standard",
    "vgg_pgd8", "resnet9_pgd8", "vgg_noise0.1", "resnet9_noise0.1",
    "densenet_pgd8", "vit_pgd8", "vgg_pgd2", "resnet9_pgd2",
    "densenet_noise0.1", "vit_noise0.1", "densenet_pgd2", "vit_pgd2",
    "resnet9_trades8", "resnet9_pgd_l2_0.5",
)

# Further AutoAttack budgets, to check the predicted accuracy-vs-ε curve away from the main one,
# on one model per family across the range of robustness (ℓ∞-, ℓ2- and noise-trained).
CURVE_BUDGETS: dict[str, tuple[float, ...]] = {"Linf": (4 / 255, 16 / 255), "L2": (0.25, 1.0)}
CURVE_MODELS: tuple[str, ...] = (
    "vgg_pgd8", "resnet9_pgd2", "resnet9_pgd_l2_0.5", "densenet_noise0.1", "vit_noise0.1",
)
