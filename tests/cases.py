"""Small seeded float64 models and a dense ``torch.func`` reference for the input Fisher."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

NUM_CLASSES = 10
IMAGE_SHAPE = (3, 8, 8)


def mlp() -> nn.Module:
    """A two-hidden-layer tanh MLP on flattened 3×8×8 inputs."""
    return nn.Sequential(
        nn.Flatten(), nn.Linear(192, 32), nn.Tanh(), nn.Linear(32, 16), nn.Tanh(),
        nn.Linear(16, NUM_CLASSES)
    )


def cnn() -> nn.Module:
    """A small ReLU CNN with max-pooling."""
    return nn.Sequential(
        nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(6, 8, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 4 * 4, NUM_CLASSES),
    )


def cnn_batchnorm() -> nn.Module:
    """A CNN with batch normalisation whose running statistics are not the identity."""
    model = nn.Sequential(
        nn.Conv2d(3, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(),
        nn.Conv2d(6, 6, 3, stride=2, padding=1), nn.BatchNorm2d(6), nn.ReLU(),
        nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(24, NUM_CLASSES),
    )
    generator = torch.Generator().manual_seed(7)
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.copy_(torch.randn(module.num_features, generator=generator) * 0.1)
            module.running_var.copy_(torch.rand(module.num_features, generator=generator) + 0.5)
            module.weight.data.copy_(torch.rand(module.num_features, generator=generator) + 0.5)
    return model


class TinyAttention(nn.Module):
    """4×4 patches, one pre-LN self-attention block (fused attention kernels), a linear head."""

    def __init__(self) -> None:
        super().__init__()
        self.patches = nn.Conv2d(3, 16, 4, stride=4)
        self.norm = nn.LayerNorm(16)
        self.attention = nn.MultiheadAttention(16, 2, batch_first=True)
        self.head = nn.Linear(16, NUM_CLASSES)

    def forward(self, x: Tensor) -> Tensor:
        tokens = self.patches(x).flatten(2).transpose(1, 2)
        h = self.norm(tokens)
        tokens = tokens + self.attention(h, h, h, need_weights=False)[0]
        return self.head(tokens.mean(1))


MODELS: dict[str, Callable[[], nn.Module]] = {
    "mlp": mlp, "cnn": cnn, "cnn_batchnorm": cnn_batchnorm, "attention": TinyAttention,
}


def make_model(name: str, seed: int = 0, scale: float = 3.0) -> nn.Module:
    """Build a seeded float64 model in eval mode; ``scale`` sharpens the logits."""
    torch.manual_seed(seed)
    model = MODELS[name]().double().eval()
    with torch.no_grad():
        last = [m for m in model.modules() if isinstance(m, nn.Linear)][-1]
        last.weight.mul_(scale)
    return model


def make_inputs(batch: int = 4, seed: int = 1) -> Tensor:
    """Inputs in [0, 1], float64, ``[batch, 3, 8, 8]``."""
    return torch.rand(batch, *IMAGE_SHAPE, generator=torch.Generator().manual_seed(seed),
                      dtype=torch.float64)


def dense_fisher(forward: Callable[[Tensor], Tensor], x: Tensor) -> Tensor:
    """Dense ``F = Jᵀ (diag p − ppᵀ) J`` per sample by ``torch.func.jacrev``, ``[B, d, d]``."""
    out = []
    for sample in x:
        jac = torch.func.jacrev(lambda t: forward(t[None])[0])(sample).reshape(NUM_CLASSES, -1)
        p = torch.softmax(forward(sample[None])[0], dim=-1)
        out.append(jac.T @ (torch.diag(p) - torch.outer(p, p)) @ jac)
    return torch.stack(out).detach()
