"""Small instances of every architecture family the Lipschitz bound supports.

torchvision's VGG / ResNet / DenseNet / ViT classes, RobustBench's WideResNet and PreActResNet
behind its ``ImageNormalizer``, the zoo's four families and the bundled small CNN, each sized
so that a bound and a few exact Jacobians take a second or two on a CPU. Normalisation layers
get random statistics and affine parameters, so that folding and LayerNorm are exercised
away from the identity.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from leaderboard.data import CIFAR10_MEAN, CIFAR10_STD

ROOT = Path(__file__).resolve().parents[1]


def jacobian_norm(model: nn.Module, x: torch.Tensor) -> float:
    """Exact ``‖J(x)‖₂`` of the flattened output at one input, float64 ``jacrev`` and SVD."""
    jac = torch.func.jacrev(lambda t: model(t[None]).reshape(-1))(x.double())
    return float(torch.linalg.matrix_norm(jac.detach().reshape(-1, x.numel()), ord=2))


def randomise_norms(model: nn.Module, seed: int = 0) -> nn.Module:
    """Random running statistics and affine parameters for every BatchNorm and LayerNorm."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                n = m.num_features
                m.running_mean.copy_(0.2 * torch.randn(n, generator=generator))
                m.running_var.copy_(0.5 + torch.rand(n, generator=generator))
                m.weight.copy_(0.5 + torch.rand(n, generator=generator))
                m.bias.copy_(0.1 * torch.randn(n, generator=generator))
            elif isinstance(m, nn.LayerNorm):
                m.weight.copy_(0.5 + torch.rand(m.weight.shape, generator=generator))
                m.bias.copy_(0.1 * torch.randn(m.bias.shape, generator=generator))
    return model


def torchvision_vgg() -> nn.Module:
    """torchvision's VGG class with two conv stages; 16×16 inputs leave a 4×4 map that its
    ``AdaptiveAvgPool2d((7, 7))`` enlarges (overlapping windows).
    """
    from torchvision.models.vgg import VGG, make_layers

    with torch.device("meta"):  # VGG's own 4096-wide classifier is replaced below
        model = VGG(make_layers([8, "M", 16, "M"], batch_norm=True), num_classes=10,
                    init_weights=False)
    model.features = make_layers([8, "M", 16, "M"], batch_norm=True)
    model.classifier = nn.Sequential(nn.Linear(16 * 7 * 7, 32), nn.ReLU(True), nn.Dropout(),
                                     nn.Linear(32, 10))
    return model


def torchvision_resnet() -> nn.Module:
    """torchvision's ResNet with one BasicBlock per stage (a ResNet-10)."""
    from torchvision.models.resnet import BasicBlock, ResNet

    return ResNet(BasicBlock, [1, 1, 1, 1], num_classes=10)


def torchvision_densenet() -> nn.Module:
    """torchvision's DenseNet with two dense blocks of two layers."""
    from torchvision.models import DenseNet

    return DenseNet(growth_rate=8, block_config=(2, 2), num_init_features=16, bn_size=2,
                    num_classes=10)


def torchvision_vit() -> nn.Module:
    """torchvision's VisionTransformer: 16×16 images, 8×8 patches, one block.

    torchvision initialises the classification head to zero (every logit 0, which reads as
    label outputs); a seeded random head gives the model a non-trivial Jacobian to bound.
    """
    from torchvision.models import VisionTransformer

    model = VisionTransformer(image_size=16, patch_size=8, num_layers=1, num_heads=2, hidden_dim=16,
                              mlp_dim=32, num_classes=10)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        model.heads.head.weight.copy_(0.3 * torch.randn(model.heads.head.weight.shape,
                                                        generator=generator))
    return model


def _robustbench_architectures():
    from leaderboard.robustbench_compat import import_robustbench

    import_robustbench()
    from robustbench.model_zoo.architectures import resnet, utils_architectures, wide_resnet

    return resnet, utils_architectures, wide_resnet


def robustbench_wideresnet() -> nn.Module:
    """RobustBench's WideResNet-10-1 behind its leading ImageNormalizer."""
    _, utils, wide_resnet = _robustbench_architectures()
    return utils.normalize_model(wide_resnet.WideResNet(depth=10, widen_factor=1), CIFAR10_MEAN,
                                 CIFAR10_STD)


def robustbench_preactresnet() -> nn.Module:
    """RobustBench's PreActResNet (one PreActBlock per stage) behind its ImageNormalizer."""
    resnet, utils, _ = _robustbench_architectures()
    model = resnet.PreActResNet(resnet.PreActBlock, [1, 1, 1, 1], bn_before_fc=True)
    return utils.normalize_model(model, CIFAR10_MEAN, CIFAR10_STD)


def zoo(name: str, **options: object) -> Callable[[], nn.Module]:
    """A zoo architecture at a small size."""

    def build() -> nn.Module:
        from leaderboard.zoo import architectures

        factory = {"vgg": architectures.vgg, "resnet9": architectures.resnet9,
                   "densenet": architectures.densenet, "vit": architectures.ViT}[name]
        return factory(**options)

    return build


def small_cnn() -> nn.Module:
    """The bundled examples' CNN (``leaderboard.small_cnn``), randomly initialised."""
    from leaderboard.small_cnn import small_cnn as factory

    return factory()


# name -> (builder, input shape)
FAMILIES: dict[str, tuple[Callable[[], nn.Module], tuple[int, int, int]]] = {
    "torchvision_vgg": (torchvision_vgg, (3, 16, 16)),
    "torchvision_resnet": (torchvision_resnet, (3, 32, 32)),
    "torchvision_densenet": (torchvision_densenet, (3, 32, 32)),
    "torchvision_vit": (torchvision_vit, (3, 16, 16)),
    "robustbench_wideresnet": (robustbench_wideresnet, (3, 32, 32)),
    "robustbench_preactresnet": (robustbench_preactresnet, (3, 32, 32)),
    "zoo_vgg": (zoo("vgg", widths=(8, 16, 16)), (3, 32, 32)),
    "zoo_resnet9": (zoo("resnet9", width=4), (3, 32, 32)),
    "zoo_densenet": (zoo("densenet", growth=4, layers_per_block=2), (3, 32, 32)),
    "zoo_vit": (zoo("vit", dim=16, depth=1, heads=2, mlp_dim=32, patch=8), (3, 32, 32)),
    "small_cnn": (small_cnn, (3, 32, 32)),
}


def make_family(name: str, seed: int = 0) -> tuple[nn.Module, tuple[int, int, int]]:
    """A seeded instance in eval mode with random normalisation statistics, and its input shape."""
    builder, shape = FAMILIES[name]
    torch.manual_seed(seed)
    return randomise_norms(builder(), seed).eval(), shape
