"""Small CIFAR-10 networks of the four families the first paper ranks: VGG, ResNet, DenseNet, ViT.

Each takes ``[N, 3, 32, 32]`` pixels in [0, 1] and normalises inside the model, as
RobustBench models do, so attacks and the Fisher metric see the same input space. Default
sizes (0.1–0.3 M parameters) are chosen so that every family trains at 600–1,300 images/s on
two CPU cores: the whole zoo, adversarial training and AutoAttack included, is built on the
machines every contributor has, and its float16 weights (under 1 MB each) ship with the project.

* VGG: plain conv–BN–ReLU stacks with max-pooling (sequential: Lipschitz bound = product).
* ResNet-9 (Page, 2018, "How to train your ResNet"): residual blocks, ``Π(1 + L_i)``.
* DenseNet-BC (Huang et al., 2017, https://arxiv.org/abs/1608.06993): concatenation,
  ``Π √(1 + L_i²)``.
* ViT (Dosovitskiy et al., 2021, https://arxiv.org/abs/2010.11929): 4×4 patches, pre-LN
  transformer blocks; attention has no global Lipschitz constant.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from leaderboard.data import CIFAR10_MEAN, CIFAR10_STD


class Normalize(nn.Module):
    """``(x − mean) / std`` per channel, so the model takes [0, 1] pixels."""

    def __init__(self, mean: tuple[float, ...] = CIFAR10_MEAN,
                 std: tuple[float, ...] = CIFAR10_STD) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean).reshape(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std).reshape(1, -1, 1, 1))

    def forward(self, x: Tensor) -> Tensor:  # noqa: D102
        return (x - self.mean) / self.std


def _conv_bn(c_in: int, c_out: int) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out),
            nn.ReLU(inplace=True)]


def vgg(num_classes: int = 10, widths: tuple[int, ...] = (16, 32, 64, 128)) -> nn.Sequential:
    """VGG-style network (about 0.3 M parameters).

    Two conv–BN–ReLU layers per stage, max-pool between stages.
    """
    layers: list[nn.Module] = [Normalize()]
    c_in = 3
    for width in widths:
        layers += [*_conv_bn(c_in, width), *_conv_bn(width, width), nn.MaxPool2d(2)]
        c_in = width
    return nn.Sequential(*layers, nn.AdaptiveMaxPool2d(1), nn.Flatten(),
                         nn.Linear(c_in, num_classes))


class Residual(nn.Module):
    """``x + f(x)``."""

    def __init__(self, body: nn.Module) -> None:
        super().__init__()
        self.body = body

    def forward(self, x: Tensor) -> Tensor:  # noqa: D102
        return x + self.body(x)


def resnet9(num_classes: int = 10, width: int = 12) -> nn.Sequential:
    """ResNet-9 at the given base width (width 12: about 0.23 M parameters; width 32: 1.6 M)."""
    w = width
    return nn.Sequential(
        Normalize(),
        *_conv_bn(3, w),
        *_conv_bn(w, 2 * w), nn.MaxPool2d(2),
        Residual(nn.Sequential(*_conv_bn(2 * w, 2 * w), *_conv_bn(2 * w, 2 * w))),
        *_conv_bn(2 * w, 4 * w), nn.MaxPool2d(2),
        *_conv_bn(4 * w, 8 * w), nn.MaxPool2d(2),
        Residual(nn.Sequential(*_conv_bn(8 * w, 8 * w), *_conv_bn(8 * w, 8 * w))),
        nn.AdaptiveMaxPool2d(1), nn.Flatten(), nn.Linear(8 * w, num_classes),
    )


class DenseLayer(nn.Module):
    """BN–ReLU–1×1 conv–BN–ReLU–3×3 conv, its ``growth`` new channels concatenated to the input."""

    def __init__(self, c_in: int, growth: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.BatchNorm2d(c_in), nn.ReLU(inplace=False),
            nn.Conv2d(c_in, 4 * growth, 1, bias=False),
            nn.BatchNorm2d(4 * growth), nn.ReLU(inplace=True),
            nn.Conv2d(4 * growth, growth, 3, padding=1, bias=False),
        )

    def forward(self, x: Tensor) -> Tensor:  # noqa: D102
        return torch.cat([x, self.body(x)], dim=1)


def densenet(num_classes: int = 10, growth: int = 12, layers_per_block: int = 4) -> nn.Sequential:
    """DenseNet-BC with three dense blocks and compressing transitions (about 0.1 M parameters).

    The stem halves the resolution before the first block: dense blocks of a few channels at
    32×32 run at a tenth of the speed on a CPU (convolutions that narrow are memory-bound).
    """
    c = 2 * growth
    modules: list[nn.Module] = [Normalize(), *_conv_bn(3, c), nn.MaxPool2d(2)]
    for block in range(3):
        for _ in range(layers_per_block):
            modules.append(DenseLayer(c, growth))
            c += growth
        if block < 2:
            modules += [nn.BatchNorm2d(c), nn.ReLU(inplace=True),
                        nn.Conv2d(c, c // 2, 1, bias=False), nn.AvgPool2d(2)]
            c //= 2
    modules += [nn.BatchNorm2d(c), nn.ReLU(inplace=True), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                nn.Linear(c, num_classes)]
    return nn.Sequential(*modules)


class TransformerBlock(nn.Module):
    """Pre-LN block: ``x + MHA(LN(x))``, then ``x + MLP(LN(x))``."""

    def __init__(self, dim: int, heads: int, mlp_dim: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attention = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, mlp_dim), nn.GELU(), nn.Linear(mlp_dim, dim))

    def forward(self, x: Tensor) -> Tensor:  # noqa: D102
        h = self.norm1(x)
        x = x + self.attention(h, h, h, need_weights=False)[0]
        return x + self.mlp(self.norm2(x))


class ViT(nn.Module):
    """Vision transformer on 4×4 patches with a class token.

    Width 64 and depth 4: about 0.14 M parameters.
    """

    def __init__(self, num_classes: int = 10, dim: int = 64, depth: int = 4, heads: int = 4,
                 mlp_dim: int = 128, patch: int = 4, image: int = 32) -> None:
        super().__init__()
        self.normalize = Normalize()
        self.patches = nn.Conv2d(3, dim, patch, stride=patch)
        self.cls = nn.Parameter(torch.zeros(1, 1, dim))
        self.position = nn.Parameter(0.02 * torch.randn(1, (image // patch) ** 2 + 1, dim))
        self.blocks = nn.Sequential(*[TransformerBlock(dim, heads, mlp_dim) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_classes)

    def forward(self, x: Tensor) -> Tensor:  # noqa: D102
        tokens = self.patches(self.normalize(x)).flatten(2).transpose(1, 2)
        tokens = torch.cat([self.cls.expand(len(tokens), -1, -1), tokens], dim=1) + self.position
        return self.head(self.norm(self.blocks(tokens))[:, 0])


ARCHITECTURES: dict[str, Callable[[], nn.Module]] = {
    "vgg": vgg,
    "resnet9": resnet9,
    "densenet": densenet,
    "vit": ViT,
}


def build(architecture: str) -> nn.Module:
    """A freshly initialised network of one of :data:`ARCHITECTURES`.

    Raises:
        ValueError: unknown architecture name.
    """
    if architecture not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {architecture!r}; choose one of "
                         f"{sorted(ARCHITECTURES)}")
    return ARCHITECTURES[architecture]()
