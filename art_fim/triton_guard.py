"""Keep Triton out of a process in which TensorFlow is already loaded.

Triton's extension ``libtriton.so`` and TensorFlow's ``libtensorflow_framework.so.2`` each carry
their own copy of LLVM, and both export its symbols (``llvm::DebugCounter::instance()`` among
them). Loaded second, Triton's static initialisers bind to TensorFlow's copy, a different LLVM
release with a different object layout, and the interpreter dies with a segmentation fault
inside ``dlopen`` (tensorflow-cpu 2.21.0, Triton 3.8.0). In the other order both load, and
JAX (jaxlib 0.10.2) and Triton load in either order.

PyTorch loads Triton lazily, the first time anything imports ``torch._dynamo``, and not only
for ``torch.compile``: ``torch.func``'s reverse mode and several of PyTorch's own Python
decompositions (reached through forward-mode products of ART's standardisation) import it.
So scoring a PyTorch model in a process that imported TensorFlow first would crash on the
first Jacobian product.
"""

from __future__ import annotations

import importlib.util
import sys
import warnings


def _triton_installed() -> bool:
    """Whether Triton can be imported at all (located, not loaded)."""
    return importlib.util.find_spec("triton") is not None


def keep_triton_out_beside_tensorflow() -> bool:
    """Make ``import triton`` fail cleanly where TensorFlow is loaded and Triton is not yet.

    A ``None`` entry in ``sys.modules`` turns the import into a ``ModuleNotFoundError``, which
    PyTorch reads as "Triton is not installed": eager autograd and ``torch.func`` do not need
    it, and only ``torch.compile``'s GPU code generation is lost in this process, where loading
    Triton would crash the interpreter anyway. Importing ``torch._dynamo`` before TensorFlow
    keeps Triton usable.

    Returns:
        Whether Triton was kept out by this call.
    """
    if "tensorflow" not in sys.modules or "triton" in sys.modules:
        return False
    if not _triton_installed():  # e.g. a CPU-only PyTorch: nothing that could be loaded
        return False
    sys.modules["triton"] = None  # type: ignore[assignment]
    warnings.warn(
        "TensorFlow was imported before PyTorch loaded Triton, and loading Triton now would crash "
        "this process (two copies of LLVM). art_fim has made `import triton` fail instead, so "
        "torch.compile cannot generate GPU code in this process; import torch._dynamo before "
        "tensorflow to keep it.",
        RuntimeWarning,
        stacklevel=2,
    )
    return True
