"""The per-batch input Jacobian: the one object every estimator in ``art_fim`` works on.

For a batch of inputs ``x[B, *input_shape]`` with logits ``z(x)[B, K]``, the input
Jacobian of sample ``b`` is ``J_b = ∂z_b/∂x_b`` (``K × d``, ``d = prod(input_shape)``).
Estimators never see ``J`` itself; they ask for

* ``jvp(v)``  = ``J v``   (``[B, d] -> [B, K]``), one forward-mode product,
* ``vjp(u)``  = ``Jᵀ u``  (``[B, K] -> [B, d]``), one reverse-mode product,
* ``rows()``  = ``J``     (``[B, K, d]``), from ``K`` batched VJPs,
* ``class_rows(c)`` = the rows of chosen classes per sample (``[B, m, d]``), from ``m`` VJPs,
* ``gram()``  = ``J Jᵀ``  (``[B, K, K]``), from the rows,

and the Fisher product ``v ↦ Jᵀ M J v`` with ``M = diag(p) − p pᵀ`` is built on top.
Samples are independent (models are evaluated in eval mode), so one batched product
gives every sample's product at once: the operator is block-diagonal over the batch.

Three constructions share this interface: :class:`AutogradJacobian` (PyTorch models,
through torch.func / autograd), :class:`DenseJacobian` (a Jacobian handed over whole,
e.g. from ART's ``class_gradient``) and, for query-only classifiers,
:class:`art_fim.finite_differences.FiniteDifferenceJacobian` (``jvp`` by finite
differences, ``rows`` and ``gram`` from the ``d`` coordinate directions, no ``vjp``).
"""

from __future__ import annotations

import contextlib
import logging
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator

import torch
from torch import Tensor
from torch.nn.attention import SDPBackend, sdpa_kernel

logger = logging.getLogger(__name__)

ForwardFn = Callable[[Tensor], Tensor]


@contextlib.contextmanager
def _second_order_attention() -> Iterator[None]:
    """Route scaled-dot-product attention through its composite ("math") kernel.

    The fused attention kernels (flash, memory-efficient) have first derivatives only: no
    forward-mode rule and no double backward, so Jacobian-vector products through a
    transformer need the composite kernel, which is made of differentiable primitives.
    """
    with sdpa_kernel([SDPBackend.MATH]):
        yield


def gram_from_rows(rows: Tensor) -> Tensor:
    """Return ``J Jᵀ`` in float64 from the rows ``J``, ``[B, K, d] -> [B, K, K]``.

    Rows in a narrower dtype are taken to float64 a block of columns at a time
    (``J Jᵀ = Σ_blocks J_b J_bᵀ``), so the float64 copy never exceeds a quarter of the rows'
    own bytes: the exact route's peak memory is the rows, not a float64 copy of them.
    """
    if rows.dtype == torch.float64:
        return rows @ rows.transpose(1, 2)
    batch, classes, dim = rows.shape
    width = max(1, dim * rows.element_size() // 32)
    gram = torch.zeros(batch, classes, classes, dtype=torch.float64, device=rows.device)
    for start in range(0, dim, width):
        block = rows[:, :, start : start + width].double()
        gram.baddbmm_(block, block.transpose(1, 2))
    return gram


class InputJacobian(ABC):
    """Products with the per-sample logit Jacobians of one batch.

    Attributes:
        logits: ``[B, K]`` scores whose softmax is the model's output distribution
            (log-probabilities when the model returns probabilities: ``softmax(log q) = q``
            and ``J_{log q}ᵀ M J_{log q} = Σ_k (1/q_k) ∇q_k ∇q_kᵀ``, the same Fisher).
        input_shape: shape of one input, without the batch axis.
    """

    logits: Tensor
    input_shape: tuple[int, ...]

    @property
    def batch_size(self) -> int:
        """Number of samples ``B`` in the batch."""
        return int(self.logits.shape[0])

    @property
    def num_classes(self) -> int:
        """Number of outputs ``K``."""
        return int(self.logits.shape[1])

    @property
    def input_dim(self) -> int:
        """Flattened input dimension ``d``."""
        return int(torch.Size(self.input_shape).numel())

    @property
    def dtype(self) -> torch.dtype:
        """Floating dtype the products are computed in."""
        return self.logits.dtype

    @property
    def device(self) -> torch.device:
        """Device the products are computed on."""
        return self.logits.device

    @property
    def probs(self) -> Tensor:
        """``p = softmax(z)`` in float64, ``[B, K]``."""
        return torch.softmax(self.logits.double(), dim=-1)

    @abstractmethod
    def jvp(self, v: Tensor) -> Tensor:
        """Return ``J v``: ``[B, d] -> [B, K]``."""

    def vjp(self, u: Tensor) -> Tensor:
        """Return ``Jᵀ u``: ``[B, K] -> [B, d]``.

        Raises:
            NotImplementedError: for constructions that only have forward products
                (finite differences); use the ``gram``-based or JVP-only estimators.
        """
        raise NotImplementedError(
            f"{type(self).__name__} has no vector-Jacobian product; use method='exact' "
            "(Gram sketch) or 'hutchinson', which need only J v."
        )

    def rows(self) -> Tensor:
        """Return the Jacobian itself, ``[B, K, d]``: row ``k`` is ``∇_x z_k``.

        The default stacks ``K`` VJPs with one-hot cotangents.
        """
        eye = torch.eye(self.num_classes, dtype=self.dtype, device=self.device)
        return torch.stack(
            [self.vjp(eye[k].expand(self.batch_size, -1)) for k in range(self.num_classes)],
            dim=1,
        )

    def class_rows(self, classes: Tensor) -> Tensor:
        """Return the rows of chosen classes, ``[B, m, d]``.

        Entry ``[b, i]`` is ``∇_x z_{classes[b, i]}``.

        ``m`` VJPs instead of ``K``: the robust radius needs only the label's row and those
        of the nearest competitors. With every class in order (``classes[b] = 0 … K−1``) the
        result equals :meth:`rows` bit for bit (the same products, batched the same way).

        Args:
            classes: ``[B, m]`` class indices per sample.
        """
        eye = torch.eye(self.num_classes, dtype=self.dtype, device=self.device)
        return torch.stack([self.vjp(eye[classes[:, i]]) for i in range(classes.shape[1])], dim=1)

    def gram(self) -> Tensor:
        """Return the Gram matrices ``J Jᵀ`` in float64, ``[B, K, K]``, from :meth:`rows`."""
        return gram_from_rows(self.rows())

    def fisher_matvec(self, v: Tensor) -> Tensor:
        """Return ``F v = Jᵀ M J v`` with ``M = diag(p) − p pᵀ``: ``[B, d] -> [B, d]``.

        One JVP and one VJP. ``M`` is applied in float64; the products run in
        :attr:`dtype`, and the result is returned in ``v``'s dtype.
        """
        u = self.jvp(v.to(self.dtype)).double()
        p = self.probs
        mu = p * u - p * (p * u).sum(-1, keepdim=True)
        return self.vjp(mu.to(self.dtype)).to(v.dtype)


class DenseJacobian(InputJacobian):
    """An input Jacobian held in memory, ``[B, K, d]``.

    Used for ART classifiers that only expose ``class_gradient`` (TensorFlow, Keras, JAX,
    ...) and as the dense reference in tests.

    Args:
        jacobian: ``[B, K, *input_shape]`` logit Jacobian.
        logits: ``[B, K]`` logits (or log-probabilities, with the Jacobian of log-probabilities).
    """

    def __init__(self, jacobian: Tensor, logits: Tensor) -> None:
        if jacobian.shape[:2] != logits.shape:
            raise ValueError(
                f"Jacobian of shape {tuple(jacobian.shape)} does not match logits of shape "
                f"{tuple(logits.shape)}: expected [B, K, *input_shape] and [B, K]."
            )
        self.input_shape = tuple(jacobian.shape[2:])
        self.matrix = jacobian.reshape(jacobian.shape[0], jacobian.shape[1], -1)
        self.logits = logits.to(self.matrix.dtype)

    def jvp(self, v: Tensor) -> Tensor:  # noqa: D102 - documented in the base class
        return torch.einsum("bkd,bd->bk", self.matrix, v.to(self.dtype))

    def vjp(self, u: Tensor) -> Tensor:  # noqa: D102 - documented in the base class
        return torch.einsum("bkd,bk->bd", self.matrix, u.to(self.dtype))

    def rows(self) -> Tensor:  # noqa: D102 - documented in the base class
        return self.matrix

    def class_rows(self, classes: Tensor) -> Tensor:  # noqa: D102 - documented in the base class
        index = classes.to(self.matrix.device)[:, :, None].expand(-1, -1, self.matrix.shape[2])
        return self.matrix.gather(1, index)


class AutogradJacobian(InputJacobian):
    """Input Jacobian of a differentiable PyTorch function, by automatic differentiation.

    The forward pass runs once and its graph is kept, so every VJP is a single backward
    pass; ``gram`` gets all ``K`` rows from one batched backward (``is_grads_batched``),
    falling back to ``K`` sequential backward passes for operations vmap cannot batch.
    JVPs use forward-mode AD (``torch.func.jvp``), falling back to the double-backward
    trick (``J v = ∂/∂u ⟨Jᵀu, v⟩``) for operations without forward-mode support.

    Args:
        forward: maps ``[B, *input_shape]`` to logits ``[B, K]``; must treat samples
            independently (eval mode).
        x: the batch, already on the right device and dtype.
        class_chunk: cotangents per batched backward pass in :meth:`rows` (default all
            ``K``). A batched backward holds one copy of the network's gradient buffers per
            cotangent, so fewer at a time bound the peak memory at large ``K``.
    """

    def __init__(self, forward: ForwardFn, x: Tensor, class_chunk: int | None = None) -> None:
        self.class_chunk = class_chunk
        self._forward = forward
        self._x = x.detach().requires_grad_(True)
        with torch.enable_grad():
            self._z = forward(self._x)
        if self._z.ndim != 2 or self._z.shape[0] != x.shape[0]:
            raise ValueError(
                f"The model returned shape {tuple(self._z.shape)} for a batch of {x.shape[0]}; "
                "expected [batch, nb_classes] scores."
            )
        self.logits = self._z.detach()
        self.input_shape = tuple(x.shape[1:])
        self._batched_backward_ok = True
        self._forward_mode_ok = True
        self._transposed: tuple[Tensor, Tensor] | None = None

    def _as_input(self, v: Tensor) -> Tensor:
        return v.to(self._x.dtype).reshape(self._x.shape)

    def vjp(self, u: Tensor) -> Tensor:  # noqa: D102 - documented in the base class
        (grad,) = torch.autograd.grad(
            self._z, self._x, u.to(self._z.dtype), retain_graph=True, allow_unused=True
        )
        if grad is None:  # the output does not depend on the input at all
            return torch.zeros(
                self.batch_size, self.input_dim, dtype=self.dtype, device=self.device
            )
        return grad.reshape(self.batch_size, -1)

    def jvp(self, v: Tensor) -> Tensor:  # noqa: D102 - documented in the base class
        tangent = self._as_input(v)
        if self._forward_mode_ok:
            try:
                with torch.enable_grad(), _second_order_attention():
                    _, out = torch.func.jvp(self._forward, (self._x.detach(),), (tangent,))
                return out.detach()
            except (RuntimeError, NotImplementedError) as err:
                logger.info("forward-mode AD unavailable (%s); using double backward", err)
                self._forward_mode_ok = False
        return self._double_backward_jvp(tangent)

    def _double_backward_jvp(self, tangent: Tensor) -> Tensor:
        """``J v = ∂/∂u ⟨Jᵀu, v⟩`` for operations without forward-mode derivatives."""
        if self._transposed is None:
            # A second forward pass, with the composite attention kernel: the graph of the
            # first may hold fused kernels that cannot be differentiated twice.
            with torch.enable_grad(), _second_order_attention():
                x = self._x.detach().requires_grad_(True)
                z = self._forward(x)
                u = torch.zeros_like(z, requires_grad=True)
                (jt_u,) = torch.autograd.grad(z, x, u, create_graph=True)
            self._transposed = (u, jt_u)
        u, jt_u = self._transposed
        (jv,) = torch.autograd.grad(jt_u, u, tangent, retain_graph=True)
        return jv.detach()

    def rows(self) -> Tensor:
        """Return the Jacobian itself, ``[B, K, d]`` (``K`` VJPs, :attr:`class_chunk` at a time)."""
        k = self.num_classes
        cotangents = torch.eye(k, dtype=self._z.dtype, device=self.device)
        return self._rows_for(cotangents[:, None, :].expand(k, self.batch_size, k))

    def class_rows(self, classes: Tensor) -> Tensor:
        """Return the rows of chosen classes, ``[B, m, d]``.

        This takes ``m`` VJPs, :attr:`class_chunk` at a time.
        """
        eye = torch.eye(self.num_classes, dtype=self._z.dtype, device=self.device)
        return self._rows_for(eye[classes.to(self.device).T])

    def _rows_for(self, cotangents: Tensor) -> Tensor:
        """``[m, B, K]`` one-hot cotangents -> ``[B, m, d]`` rows, in batched backward passes."""
        m = cotangents.shape[0]
        chunk = m if self.class_chunk is None else max(1, min(m, int(self.class_chunk)))
        if self._batched_backward_ok:
            try:
                if chunk == m:
                    return self._batched_vjp(cotangents).transpose(0, 1)
                out = torch.empty(
                    self.batch_size, m, self.input_dim, dtype=self._x.dtype, device=self.device
                )
                for start in range(0, m, chunk):
                    block = self._batched_vjp(cotangents[start : start + chunk])
                    out[:, start : start + chunk] = block.transpose(0, 1)
                return out
            except (RuntimeError, NotImplementedError) as err:
                logger.info("batched backward unavailable (%s); using %d backward passes", err, m)
                self._batched_backward_ok = False
        return torch.stack([self.vjp(cotangents[i]) for i in range(m)], dim=1)

    def _batched_vjp(self, cotangents: Tensor) -> Tensor:
        """``[c, B, K]`` cotangents -> ``[c, B, d]`` products, in one batched backward pass."""
        (grads,) = torch.autograd.grad(
            self._z, self._x, cotangents, retain_graph=True, is_grads_batched=True
        )
        return grads.reshape(len(cotangents), self.batch_size, -1)
