"""Train the bundled small CIFAR-10 CNNs (seeded; CPU is enough).

    python examples/train_small_cnn.py --noise-std 0.0 --out examples/models/small_cnn_standard.pt
    python examples/train_small_cnn.py --noise-std 0.1 --out examples/models/small_cnn_noise0.1.pt

Reads the CIFAR-10 training images from ``../shared/data/cifar10/train.zip`` (torchvision's
ImageFolder layout inside a zip) relative to the project root. ``--noise-std`` adds Gaussian
noise to the [0, 1] inputs during training (Gaussian data augmentation), which makes the
model smoother and its input Fisher smaller. Weights are saved as a float16 state dict.
A progress bar per epoch (with the running loss) goes to stderr; on a 2-core CPU an epoch
takes about two minutes.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from leaderboard.data import CIFAR10_MEAN, CIFAR10_STD
from leaderboard.small_cnn import small_cnn
from leaderboard.zoo.cifar_zip import load_zip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("../shared/data/cifar10/train.zip"))
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--noise-std", type=float, default=0.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    print(f"reading the training images from {args.data} ...", file=sys.stderr, flush=True)
    x_uint8, y = load_zip(args.data)
    x = torch.from_numpy(x_uint8).float().div_(255)
    y = torch.from_numpy(y)
    mean = torch.tensor(CIFAR10_MEAN).reshape(1, 3, 1, 1)
    std = torch.tensor(CIFAR10_STD).reshape(1, 3, 1, 1)
    model = small_cnn()
    steps = args.epochs * (len(x) // args.batch_size)
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9, weight_decay=5e-4,
                                nesterov=True)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=args.lr, total_steps=steps)
    loss_fn = nn.CrossEntropyLoss()
    start = time.perf_counter()
    model.train()
    for epoch in range(args.epochs):
        order = torch.from_numpy(rng.permutation(len(x)))
        total = 0.0
        batches = tqdm(range(len(x) // args.batch_size), desc=f"epoch {epoch + 1}/{args.epochs}",
                       unit="batch",
                       leave=False)
        for i in batches:
            idx = order[i * args.batch_size : (i + 1) * args.batch_size]
            xb = x[idx]
            flip = torch.rand(len(xb)) < 0.5  # random horizontal flips
            xb = torch.where(flip[:, None, None, None], xb.flip(-1), xb)
            if args.noise_std > 0:
                xb = (xb + args.noise_std * torch.randn_like(xb)).clamp(0, 1)
            loss = loss_fn(model((xb - mean) / std), y[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            total += loss.item()
            if i % 20 == 0:
                batches.set_postfix(loss=f"{total / (i + 1):.3f}")
        print(f"epoch {epoch + 1}/{args.epochs}: loss {total / (i + 1):.3f} "
              f"({time.perf_counter() - start:.0f} s)")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    torch.save({k: v.half() if v.is_floating_point() else v for k, v in model.state_dict().items()},
               args.out)
    info = {"noise_std": args.noise_std, "epochs": args.epochs, "seed": args.seed,
            "train_seconds": round(time.perf_counter() - start, 1), "device": "cpu",
            "command": "python examples/train_small_cnn.py "
            + " ".join(sys.argv[1:] if argv is None else argv)}
    args.out.with_suffix(".json").write_text(json.dumps(info, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
