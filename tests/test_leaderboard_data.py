"""Test images: the bundled CIFAR-10 subset and torchvision's layout under --data-dir."""

from __future__ import annotations

import hashlib
import os
import pickle
from pathlib import Path

import numpy as np
import pytest

from leaderboard.data import bundled_cifar10, bundled_order, image_set, load_test_set


def test_bundled_subset_is_class_balanced_in_unit_range() -> None:
    """The first n bundled images cycle through the ten classes; pixels are float32 in [0, 1]."""
    x, y = bundled_cifar10(20)
    assert x.shape == (20, 3, 32, 32) and x.dtype == np.float32 and y.dtype == np.int64
    assert 0.0 <= x.min() and x.max() <= 1.0
    assert y.tolist() == list(range(10)) * 2
    assert load_test_set("cifar10", 20, None)[0].tobytes() == x.tobytes()


def _write_torchvision_batch(root: Path, folder: str, filename: str, label_key: bytes,
                             n: int) -> tuple[np.ndarray, list[int]]:
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, size=(n, 3 * 32 * 32), dtype=np.uint8)
    labels = rng.integers(0, 10, size=n).tolist()
    (root / folder).mkdir(parents=True)
    with (root / folder / filename).open("wb") as fh:
        pickle.dump({b"data": pixels, label_key: labels}, fh)
    return pixels, labels


@pytest.mark.parametrize(
    ("dataset", "folder", "filename", "key"),
    [("cifar10", "cifar-10-batches-py", "test_batch", b"labels"),
     ("cifar100", "cifar-100-python", "test", b"fine_labels")],
    ids=["cifar10", "cifar100"],
)
def test_torchvision_layout(tmp_path: Path, dataset: str, folder: str, filename: str,
                            key: bytes) -> None:
    """--data-dir reads the first n images of torchvision's pickled test batch, NCHW in [0, 1]."""
    pixels, labels = _write_torchvision_batch(tmp_path, folder, filename, key, 12)
    x, y = load_test_set(dataset, 5, tmp_path)
    np.testing.assert_array_equal(x, pixels[:5].reshape(5, 3, 32, 32).astype(np.float32) / 255)
    assert y.tolist() == labels[:5]


def test_missing_data_is_a_clear_error(tmp_path: Path) -> None:
    """A missing test batch names the expected file; CIFAR-100 without --data-dir says so."""
    with pytest.raises(FileNotFoundError, match="cifar-10-batches-py/test_batch"):
        load_test_set("cifar10", 4, tmp_path)
    with pytest.raises(FileNotFoundError, match="needs --data-dir"):
        load_test_set("cifar100", 4, None)
    with pytest.raises(ValueError, match="1000 images"):
        bundled_cifar10(1001)


def test_a_pickle_payload_as_test_batch_does_not_run(tmp_path: Path) -> None:
    """The CIFAR batch under --data-dir is a pickle: one that would run code is refused, unrun."""
    marker = tmp_path / "payload-ran"

    class Payload:
        def __reduce__(self) -> tuple:
            return (os.system, (f"touch {marker}",))

    (tmp_path / "cifar-10-batches-py").mkdir()
    with (tmp_path / "cifar-10-batches-py" / "test_batch").open("wb") as fh:
        pickle.dump({b"data": Payload(), b"labels": [0]}, fh)
    refused = rf"{os.system.__module__}\.system is not part of a CIFAR test batch"
    with pytest.raises(pickle.UnpicklingError, match=refused):
        load_test_set("cifar10", 1, tmp_path)
    assert not marker.exists()


def test_provenance_names_source_indices_and_pixels(tmp_path: Path) -> None:
    """image_set says where the images came from and which they are, by hashes that change with
    them.
    """
    bundled = image_set("cifar10", 20, None)
    assert bundled.source == "bundled" and bundled.index.tolist() == bundled_order(20).tolist()
    x, y = bundled_cifar10(20)
    np.testing.assert_array_equal(bundled.x, x)
    assert bundled.provenance()["pixels_sha256"] != image_set("cifar10", 19,
                                                              None).provenance()["pixels_sha256"]
    pixels, _ = _write_torchvision_batch(tmp_path, "cifar-10-batches-py", "test_batch", b"labels",
                                         12)
    local = image_set("cifar10", 5, tmp_path)
    record = local.provenance()
    assert (local.source, local.index.tolist(), record["n"]) == ("torchvision", list(range(5)), 5)
    batch = tmp_path / "cifar-10-batches-py" / "test_batch"
    assert record["file_sha256"] == hashlib.sha256(batch.read_bytes()).hexdigest()
