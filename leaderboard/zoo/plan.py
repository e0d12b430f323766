"""The zoo: which architecture is trained how.

Four families (VGG, ResNet-9, DenseNet-BC, ViT) × standard training, PGD adversarial training
at ℓ∞ 8/255 and Gaussian augmentation, plus ResNet-9 at PGD 2/255 and 4/255 and TRADES 8/255,
so that robustness spreads from none to the most a short schedule reaches.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from leaderboard.zoo.training import Regime


@dataclass(frozen=True)
class ZooEntry:
    """One model of the zoo.

    Attributes:
        name: file stem of its weights and model-info files.
        architecture: key of :data:`leaderboard.zoo.architectures.ARCHITECTURES`.
        regime: how it is trained.
        epochs: passes over the 50,000 training images.
        lr: peak learning rate.
        optimizer: ``"sgd"`` or ``"adamw"``.
        seed: training seed.
    """

    name: str
    architecture: str
    regime: Regime = field(default_factory=Regime)
    epochs: int = 15
    lr: float = 0.1
    optimizer: str = "sgd"
    seed: int = 0


def _family(architecture: str, **options: object) -> list[ZooEntry]:
    return [
        ZooEntry(f"{architecture}_standard", architecture, Regime("standard"), **options),
        ZooEntry(f"{architecture}_pgd8", architecture, Regime("pgd", eps=8 / 255), **options),
        ZooEntry(f"{architecture}_noise0.1", architecture, Regime("noise", sigma=0.1), **options),
    ]


ZOO: dict[str, ZooEntry] = {
    entry.name: entry
    for entry in [
        *_family("vgg", lr=0.05),
        *_family("resnet9"),
        ZooEntry("resnet9_pgd2", "resnet9", Regime("pgd", eps=2 / 255)),
        ZooEntry("resnet9_pgd4", "resnet9", Regime("pgd", eps=4 / 255)),
        ZooEntry("resnet9_trades8", "resnet9", Regime("trades", eps=8 / 255, beta=6.0)),
        *_family("densenet"),
        # Transformers learn slowly from 50,000 images: more epochs, AdamW.
        *_family("vit", epochs=30, lr=1e-3, optimizer="adamw"),
    ]
}
