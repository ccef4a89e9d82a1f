"""P4Orth: orthogonal linear layers trained through a Cayley perturbation (P4 beyond invertibility).

The property-preserving perturbation (Krämer, Köhler, Noé 2020, §"other properties") of a frozen
orthogonal Q is the Cayley transform of a low-rank skew-symmetric matrix,

    K = U Vᵀ - V Uᵀ  (U, V: (n, r), rank K ≤ 2r),   C = (I - K/2)⁻¹ (I + K/2),   y = Q C x + b.

C is orthogonal for every U, V (K is skew), so Q C is too: log|det| = 0 and the inverse is
(Q C)ᵀ. With B = [U V] (n, 2r), M = [[0, I], [-I, 0]] (so K = B M Bᵀ) and G = 2M + BᵀB (2r × 2r,
invertible because det G ∝ det(I - K/2) ≠ 0), the Woodbury identity gives

    C = I - 2 B G⁻¹ Bᵀ,   Cᵀ = C⁻¹ = I - 2 B G⁻ᵀ Bᵀ,

so one pass costs O(n² + n r) per sample and never forms C. Every few optimizer steps the
perturbation is merged, Q ← Q C = Q - 2 (Q B) G⁻¹ Bᵀ (O(n² r)), and reset to the identity
(U = 0, V ~ N(0, I), as P4Inv resets u and v). Q is tracked in ``state_dtype`` (float64 by
default); rarely, one Newton–Schulz step of the polar decomposition, Q ← ½ Q (3I - QᵀQ), squares
the round-off ‖QᵀQ - I‖ that the merges accumulate. ``P4InvScheduler`` merges and refines these
layers like P4Inv layers.
"""

from __future__ import annotations

import torch
from torch import nn

from .p4inv import MergeReport, P4Layer, _check_last_dim

__all__ = ["P4OrthLinear"]

_INITS = ("identity", "reverse")


class P4OrthLinear(P4Layer):
    """Orthogonal affine layer y = Q C(U, V) x + b, trained through the Cayley perturbation C.

    Trainable: ``u``, ``v`` (both (n, r)) and ``bias``. Buffer: ``weight`` Q, in ``state_dtype``.
    The perturbation is applied in every mode (it is cheap), so training and evaluation compute the
    same map; ``merge()`` folds it into Q. ``forward`` and ``inverse`` return (output, logdet = 0),
    the bijection convention of ``sdl.models.flows``.

    Args:
        dim: n.
        rank: r, the number of columns of U and V (rank K ≤ 2r).
        bias: learn b.
        init: "identity", "reverse" (x ↦ (x_n, …, x_1)) or an orthogonal (n, n) matrix.
        state_dtype: dtype of Q; dtype, device: of the parameters (the compute dtype).
    """

    def __init__(
        self,
        dim: int,
        rank: int = 1,
        bias: bool = True,
        init: str | torch.Tensor = "identity",
        *,
        state_dtype: torch.dtype = torch.float64,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__()
        if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
            raise ValueError(f"dim must be a positive int, got {dim!r}")
        if isinstance(rank, bool) or not isinstance(rank, int) or not 1 <= rank <= max(dim // 2, 1):
            raise ValueError(f"rank must be an int in [1, {max(dim // 2, 1)}] (dim // 2), got {rank!r}")
        self.dim, self.rank, self.state_dtype = dim, rank, state_dtype
        dtype = dtype if dtype is not None else torch.get_default_dtype()
        self.register_buffer("weight", _initial_orthogonal(dim, init).to(dtype=state_dtype, device=device))
        self.register_buffer("_weight_c", torch.empty(0), persistent=False)
        self.u = nn.Parameter(torch.zeros(dim, rank, dtype=dtype, device=device))
        self.v = nn.Parameter(torch.randn(dim, rank, dtype=dtype, device=device))
        self.bias = nn.Parameter(torch.zeros(dim, dtype=dtype, device=device)) if bias else None
        self.num_merges = 0
        self._refresh_compute_copy()

    # ----------------------------------------------------------------------------------- maps
    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """y = Q C x + b and log|det| = 0. Shapes: x (..., n) → y (..., n), logdet (...,)."""
        _check_last_dim(x, self.dim)
        flat = x.reshape(-1, self.dim)
        basis, gram = self._factors(self.u, self.v)
        # rows: xᵀCᵀ = xᵀ - 2 (xᵀB) G⁻ᵀ Bᵀ
        rotated = flat - 2.0 * torch.linalg.solve(gram, (flat @ basis).T).T @ basis.T
        y = rotated @ self._weight_c.T
        if self.bias is not None:
            y = y + self.bias
        return y.reshape(x.shape), x.new_zeros(x.shape[:-1])

    def inverse(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x = Cᵀ Qᵀ (y - b) and log|det| = 0. Shapes as ``forward``."""
        _check_last_dim(y, self.dim)
        flat = y.reshape(-1, self.dim)
        if self.bias is not None:
            flat = flat - self.bias
        w = flat @ self._weight_c
        basis, gram = self._factors(self.u, self.v)
        # rows: wᵀC = wᵀ - 2 (wᵀB) G⁻¹ Bᵀ
        x = w - 2.0 * torch.linalg.solve(gram.T, (w @ basis).T).T @ basis.T
        return x.reshape(y.shape), y.new_zeros(y.shape[:-1])

    def effective_matrix(self) -> torch.Tensor:
        """Q C as a dense (n, n) tensor in ``state_dtype`` (for checks; not used in training)."""
        u, v = self.u.detach().to(self.state_dtype), self.v.detach().to(self.state_dtype)
        basis, gram = self._factors(u, v)
        return self.weight - 2.0 * (self.weight @ basis) @ torch.linalg.solve(gram, basis.T)

    def orthogonality_error(self) -> float:
        """max |QᵀQ - I| of the tracked Q."""
        eye = torch.eye(self.dim, dtype=self.state_dtype, device=self.weight.device)
        return float((self.weight.T @ self.weight - eye).abs().max())

    # ------------------------------------------------------------------------- merge / refine
    @torch.no_grad()
    def merge(self) -> MergeReport:
        """Q ← Q C = Q - 2 (Q B) G⁻¹ Bᵀ in ``state_dtype``, then U ← 0, V ~ N(0, I). O(n² r).
        A perturbation that is not finite is dropped (reason "not finite") and Q kept."""
        u, v = self.u.to(self.state_dtype), self.v.to(self.state_dtype)
        finite = bool(torch.isfinite(u).all() and torch.isfinite(v).all())
        if finite:
            basis, gram = self._factors(u, v)
            self.weight.sub_(2.0 * (self.weight @ basis) @ torch.linalg.solve(gram, basis.T))
            self.num_merges += 1
        self.reset_perturbation()
        self._refresh_compute_copy()
        return MergeReport(finite, "merged" if finite else "not finite", float("nan"))

    @torch.no_grad()
    def reset_perturbation(self) -> None:
        """U ← 0, V ~ N(0, I): C = I, and U gets a gradient through K = U Vᵀ - V Uᵀ."""
        self.u.zero_()
        self.v.normal_()

    @torch.no_grad()
    def refine(self, order: int = 2) -> bool:
        """One Newton–Schulz step of the polar decomposition, Q ← ½ Q (3I - QᵀQ): with E = QᵀQ - I,
        the new error is ¾E² + ¼E³ (O(‖E‖²)); skipped (False) unless ‖E‖₂ < 1, where it converges."""
        eye = torch.eye(self.dim, dtype=self.state_dtype, device=self.weight.device)
        error = self.weight.T @ self.weight - eye
        if not float(torch.linalg.matrix_norm(error, 2)) < 1.0:
            return False
        self.weight.copy_(0.5 * self.weight @ (3.0 * eye - error - eye))
        self._refresh_compute_copy()
        return True

    # ----------------------------------------------------------------------------- internals
    @property
    def redrawn(self) -> nn.Parameter:
        return self.v

    def _factors(self, u: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """B = [U V] (n, 2r) and G = 2M + BᵀB (2r, 2r), M = [[0, I], [-I, 0]]."""
        basis = torch.cat([u, v], -1)
        eye = torch.eye(self.rank, dtype=u.dtype, device=u.device)
        zero = torch.zeros_like(eye)
        symplectic = torch.cat([torch.cat([zero, eye], -1), torch.cat([-eye, zero], -1)], -2)
        return basis, 2.0 * symplectic + basis.T @ basis

    def _refresh_compute_copy(self) -> None:
        with torch.inference_mode(False), torch.no_grad():
            self._weight_c = self.weight.to(dtype=self.u.dtype, device=self.u.device)

    def _apply(self, fn, recurse=True):
        # A cast changes the compute dtype only; Q keeps state_dtype (cast from the untouched original).
        original = self.weight
        with torch.inference_mode(False), torch.no_grad():
            super()._apply(fn, recurse)
            self.weight = original.to(device=self.weight.device, dtype=self.state_dtype)
        self._refresh_compute_copy()
        return self

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        self._refresh_compute_copy()

    def extra_repr(self) -> str:
        return f"dim={self.dim}, rank={self.rank}, bias={self.bias is not None}, state_dtype={self.state_dtype}"


def _initial_orthogonal(dim: int, init: str | torch.Tensor) -> torch.Tensor:
    """The named or given orthogonal matrix, float64."""
    if isinstance(init, str):
        if init not in _INITS:
            raise ValueError(f"unknown init {init!r}; valid: {', '.join(map(repr, _INITS))} or an orthogonal matrix")
        eye = torch.eye(dim, dtype=torch.float64)
        return eye if init == "identity" else eye.flip(0)
    if not isinstance(init, torch.Tensor) or init.shape != (dim, dim):
        raise ValueError(f"init must be one of {_INITS} or an orthogonal ({dim}, {dim}) tensor, got {init!r:.80}")
    matrix = init.detach().to(device="cpu", dtype=torch.float64)
    error = float((matrix.T @ matrix - torch.eye(dim, dtype=torch.float64)).abs().max())
    if error > 1e-6:
        raise ValueError(f"init matrix is not orthogonal: max |QᵀQ - I| = {error:.3g} > 1e-6")
    return matrix
