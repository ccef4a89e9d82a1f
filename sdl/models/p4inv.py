"""P4Inv: invertible linear layers trained through rank-one perturbations (Krämer, Köhler, Noé 2020).

The layer keeps a frozen invertible matrix A together with its inverse A⁻¹, log|det A| and
sign(det A), and trains only a rank-one perturbation u vᵀ (plus a bias b):

    y = (A + u vᵀ) x + b.

Sherman–Morrison and the matrix determinant lemma give the inverse and determinant of the
perturbed matrix in O(n²):

    (A + u vᵀ)⁻¹ = A⁻¹ - A⁻¹u vᵀA⁻¹ / (1 + vᵀA⁻¹u),
    det(A + u vᵀ) = (1 + vᵀA⁻¹u) det A.

Every few optimizer steps the perturbation is merged into (A, A⁻¹, log|det A|, sign) by the same
formulas and reset to the identity (u = 0, v ~ N(0, I)). A merge whose update factor
1 + vᵀA⁻¹u is tiny, not finite, or would leave log|det| outside a band and no closer to it is
rejected, like a rejected step of an adaptive integrator. Rarely, one hyperpower (Newton–Schulz)
iteration removes the round-off that the rank-one updates of A⁻¹ accumulate. No inverse or
determinant is ever recomputed.

Precision: A, A⁻¹ and log|det A| are tracked in ``state_dtype`` (float64 by default) and a copy of
A and A⁻¹ in the parameters' dtype is refreshed after each merge, so forward and inverse run at the
speed of the compute dtype. ``docs/p4inv.md`` gives the measurement behind this default.
"""

from __future__ import annotations

import math
import warnings
from abc import ABC, abstractmethod
from dataclasses import dataclass

import torch
from torch import nn

__all__ = [
    "MergeReport",
    "MergeRule",
    "P4InvLinear",
    "P4InvScheduler",
    "P4Layer",
    "logdet_band_penalty",
]

_INITS = ("identity", "reverse")
_REFUSALS_TO_WARN = 10


def _check_last_dim(x: torch.Tensor, dim: int) -> None:
    """ValueError unless x is (..., dim): slicing or reshaping the last axis would otherwise drop
    or misread features without a word."""
    if x.shape[-1:] != (dim,):
        raise ValueError(f"expected inputs with last dimension {dim}, got shape {tuple(x.shape)}")


@dataclass(frozen=True)
class MergeRule:
    """When a merge of the perturbation into A is accepted, and the band the penalty keeps log|det| in.

    A merge with update factor f = 1 + vᵀA⁻¹u is rejected (and the perturbation dropped) when
    f is not finite, when |f| < ``min_abs_factor`` (the update nearly makes A singular and
    Sherman–Morrison would divide by almost zero), or when the merged L' = log|det A| + log|f|
    lies outside B = [low - margin, high + margin] (``logdet_band = (low, high)``) without being
    strictly closer to B than L = log|det A|. That is, the band check accepts iff

        dist(L', B) = 0  or  dist(L', B) < dist(L, B),

    so a layer that starts outside the band (e.g. A = ½ I in dimension 8) can merge its way in.

    Attributes:
        min_abs_factor: smallest accepted |1 + vᵀA⁻¹u|; e⁻⁶ ≈ 2.5e-3 by default.
        logdet_band: (low, high) band for log|det|, used by the merge check and the penalty.
        band_margin: slack outside the band that a merge may still reach.
    """

    min_abs_factor: float = math.exp(-6.0)
    logdet_band: tuple[float, float] = (-2.0, 15.0)
    band_margin: float = 0.5

    def __post_init__(self) -> None:
        if not (self.min_abs_factor > 0.0 and math.isfinite(self.min_abs_factor)):
            raise ValueError(f"min_abs_factor must be a positive finite float, got {self.min_abs_factor!r}")
        low, high = self.logdet_band
        if not low < high:
            raise ValueError(f"logdet_band must be (low, high) with low < high, got {self.logdet_band!r}")
        if not self.band_margin >= 0.0:
            raise ValueError(f"band_margin must be >= 0, got {self.band_margin!r}")


@dataclass(frozen=True)
class MergeReport:
    """Outcome of one merge attempt.

    Attributes:
        merged: True when A, A⁻¹ and log|det A| were updated.
        reason: "merged", "not finite", "ill-conditioned" or "log|det| out of band" (and not moving
            towards it).
        factor: the update factor 1 + vᵀA⁻¹u (NaN when the perturbation was not finite).
    """

    merged: bool
    reason: str
    factor: float


class P4Layer(nn.Module, ABC):
    """A layer trained through a property-preserving perturbation (P4): a frozen state keeps the
    property, a trainable perturbation that starts at the identity preserves it, and ``merge()``
    folds the perturbation into the state and resets it. ``P4InvScheduler`` drives every P4 layer."""

    @abstractmethod
    def merge(self) -> MergeReport:
        """Fold the perturbation into the frozen state and reset it to the identity."""

    @abstractmethod
    def refine(self, order: int = 2) -> bool:
        """One iteration that removes the round-off the merges accumulate; False when skipped."""

    @property
    @abstractmethod
    def redrawn(self) -> nn.Parameter:
        """The factor a reset draws anew (its optimizer state is cleared after a merge)."""


class P4InvLinear(P4Layer):
    """Invertible affine layer y = (A + u vᵀ) x + b trained through its rank-one perturbation.

    Trainable: ``u``, ``v`` (and ``bias`` when ``bias=True``). Buffers (tracked in ``state_dtype``):
    ``weight`` A, ``weight_inverse`` A⁻¹, ``log_abs_det`` log|det A|, ``det_sign`` sign(det A).
    In training mode the layer applies A + u vᵀ; in eval mode only the merged A and A⁻¹ (unless
    ``training`` was switched off directly, without eval(), after a training pass: then still A + u vᵀ).
    Switching to eval mode, or loading a state dict with u ≠ 0 into a layer in eval mode, merges
    the pending perturbation, so both modes compute the same map (that merge leaves the optimizer
    alone; ``P4InvScheduler`` merges are the ones that clear the optimizer state of v).

    Args:
        dim: n, the number of features.
        bias: learn the shift b (else b = 0).
        init: "identity", "reverse" (the permutation x ↦ (x_n, …, x_1)), or an invertible (n, n)
            matrix; a given matrix is inverted once here, in float64.
        rule: merge acceptance and log|det| band (``MergeRule``).
        state_dtype: dtype in which A, A⁻¹ and log|det A| are tracked.
        dtype, device: of the parameters (the compute dtype) and of all tensors.
    """

    weight: torch.Tensor
    weight_inverse: torch.Tensor
    log_abs_det: torch.Tensor
    det_sign: torch.Tensor
    _weight_c: torch.Tensor
    _weight_inverse_c: torch.Tensor
    _log_abs_det_c: torch.Tensor

    def __init__(
        self,
        dim: int,
        bias: bool = True,
        init: str | torch.Tensor = "identity",
        *,
        rule: MergeRule = MergeRule(),
        state_dtype: torch.dtype = torch.float64,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(dim, int) or dim < 1:
            raise ValueError(f"dim must be a positive int, got {dim!r}")
        if not isinstance(rule, MergeRule):
            raise TypeError(f"rule must be a MergeRule, got {type(rule).__name__}")
        if not state_dtype.is_floating_point:
            raise TypeError(f"state_dtype must be a floating dtype, got {state_dtype}")
        self.dim = dim
        self.rule = rule
        self.state_dtype = state_dtype
        dtype = dtype if dtype is not None else torch.get_default_dtype()
        matrix, inverse, log_abs_det, sign = _initial_state(dim, init)
        self.register_buffer("weight", matrix.to(dtype=state_dtype, device=device))
        self.register_buffer("weight_inverse", inverse.to(dtype=state_dtype, device=device))
        self.register_buffer("log_abs_det", torch.tensor(log_abs_det, dtype=state_dtype, device=device))
        self.register_buffer("det_sign", torch.tensor(sign, dtype=state_dtype, device=device))
        # Compute-dtype copies of A and A⁻¹, rebuilt from the tracked state, never saved.
        self.register_buffer("_weight_c", torch.empty(0), persistent=False)
        self.register_buffer("_weight_inverse_c", torch.empty(0), persistent=False)
        self.register_buffer("_log_abs_det_c", torch.empty(0), persistent=False)
        self.u = nn.Parameter(torch.zeros(dim, dtype=dtype, device=device))
        self.v = nn.Parameter(torch.randn(dim, dtype=dtype, device=device))
        self.bias = nn.Parameter(torch.zeros(dim, dtype=dtype, device=device)) if bias else None
        self.num_merges = 0
        self.num_skipped = 0
        # True when u may be nonzero although the layer is not in training mode: set by every
        # training-mode pass (an optimizer step may follow it), cleared by a merge or reset. It lets
        # an evaluation that flips ``training`` without eval() (sdl.training.evaluation_mode) see
        # the exact map A + u vᵀ without merging, so evaluating never changes training.
        self._perturbed = False
        self._refresh_compute_copies()

    # ----------------------------------------------------------------------------------- maps
    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """y = (A + u vᵀ) x + b and log|det(A + u vᵀ)| (eval mode: y = A x + b, log|det A|).

        Shapes: x (..., n) → y (..., n), logdet (...,). Cost O(n²) per sample.
        """
        flat = self._flatten(x)
        y = torch.addmm(self._bias_or_zero(flat), flat, self._weight_c.T)
        logdet = self._log_abs_det_c
        if self._uses_perturbation():  # (A + u vᵀ) x = A x + u (vᵀx): O(n) extra per sample, no n × n product
            y = torch.addr(y, flat @ self.v, self.u)
            logdet = logdet + torch.log(torch.abs(self._update_factor()))
        return y.reshape(x.shape), logdet.expand(x.shape[:-1])

    def inverse(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x = (A + u vᵀ)⁻¹ (y - b) by Sherman–Morrison, and log|det| of this inverse map.

        With w = A⁻¹(y - b) and f = 1 + vᵀA⁻¹u: x = w - A⁻¹u (vᵀw) / f. In eval mode x = A⁻¹(y - b).
        Shapes: y (..., n) → x (..., n), logdet (...,) = -log|det(A + u vᵀ)|. Cost O(n²) per sample.
        """
        flat = self._flatten(y)
        if self.bias is None:
            w = flat @ self._weight_inverse_c.T
        else:  # A⁻¹(y - b) = A⁻¹y - A⁻¹b, fused into one product
            w = torch.addmm(self._weight_inverse_c @ self.bias, flat, self._weight_inverse_c.T, beta=-1)
        if self._uses_perturbation():
            inverse_u = self._weight_inverse_c @ self.u
            factor = 1.0 + self.v @ inverse_u
            x = torch.addr(w, w @ self.v, inverse_u / factor, alpha=-1)
            logdet = -(self._log_abs_det_c + torch.log(torch.abs(factor)))
        else:
            x = w
            logdet = -self._log_abs_det_c
        return x.reshape(y.shape), logdet.expand(y.shape[:-1])

    def effective_matrix(self) -> torch.Tensor:
        """A + u vᵀ as a dense (n, n) tensor in ``state_dtype`` (for checks; not used in training)."""
        u, v = self.u.detach().to(self.state_dtype), self.v.detach().to(self.state_dtype)
        return self.weight + torch.outer(u, v)

    def log_abs_det_perturbed(self) -> torch.Tensor:
        """log|det(A + u vᵀ)| = log|det A| + log|1 + vᵀA⁻¹u|, differentiable in u and v. Shape ()."""
        return self._log_abs_det_c + torch.log(torch.abs(self._update_factor()))

    def band_penalty(self) -> torch.Tensor:
        """relu(low - L)² + relu(L - high)², L = log|det(A + u vᵀ)|, (low, high) = rule.logdet_band.

        Zero inside the band; it keeps the determinant from vanishing or exploding. Shape ().
        """
        low, high = self.rule.logdet_band
        logdet = self.log_abs_det_perturbed()
        return torch.relu(low - logdet) ** 2 + torch.relu(logdet - high) ** 2

    # ------------------------------------------------------------------------- merge / refine
    @torch.no_grad()
    def merge(self) -> MergeReport:
        """Fold u vᵀ into A, A⁻¹, log|det A| and sign(det A), then reset the perturbation.

        With w = A⁻¹u, f = 1 + vᵀw, zᵀ = vᵀA⁻¹ (all in ``state_dtype``):
        A ← A + u vᵀ, A⁻¹ ← A⁻¹ - w zᵀ / f, log|det A| ← log|det A| + log|f|, sign ← sign · sign(f).
        A rejected merge (see ``MergeRule``: f not finite, |f| too small, or log|det| outside the
        band and not moving towards it) leaves A untouched and drops the perturbation. Either
        way u ← 0 and v ~ N(0, I), so the layer again computes exactly y = A x + b. O(n²).
        """
        u, v = self.u.to(self.state_dtype), self.v.to(self.state_dtype)
        inverse_u = self.weight_inverse @ u
        factor = 1.0 + v @ inverse_u
        new_log_abs_det = self.log_abs_det + torch.log(torch.abs(factor))
        low, high = self.rule.logdet_band
        margin = self.rule.band_margin
        # One host sync per merge: merges are rare, and the decision is a Python branch.
        factor_value, new_logdet_value, logdet_value = (
            float(t) for t in torch.stack([factor, new_log_abs_det, self.log_abs_det]).cpu()
        )
        new_distance, distance = (_distance(ld, low - margin, high + margin) for ld in (new_logdet_value, logdet_value))
        if not (math.isfinite(factor_value) and bool(torch.isfinite(u).all() and torch.isfinite(v).all())):
            report = MergeReport(False, "not finite", factor_value)
        elif abs(factor_value) < self.rule.min_abs_factor:
            report = MergeReport(False, "ill-conditioned", factor_value)
        elif new_distance > 0.0 and not new_distance < distance:
            report = MergeReport(False, "log|det| out of band", factor_value)
        else:
            v_inverse = v @ self.weight_inverse
            self.weight.add_(torch.outer(u, v))
            self.weight_inverse.sub_(torch.outer(inverse_u, v_inverse) / factor)
            self.log_abs_det.copy_(new_log_abs_det)
            self.det_sign.mul_(torch.sign(factor))
            report = MergeReport(True, "merged", factor_value)
        if report.merged:
            self.num_merges += 1
        else:
            self.num_skipped += 1
        self.reset_perturbation()
        self._refresh_compute_copies()
        return report

    @torch.no_grad()
    def reset_perturbation(self) -> None:
        """u ← 0, v ~ N(0, I): the perturbation is the identity and v gives u a gradient direction."""
        self._perturbed = False
        self.u.zero_()
        self.v.normal_()

    @torch.no_grad()
    def refine_inverse(self, order: int = 2) -> bool:
        """One hyperpower iteration of order p on A⁻¹ (p = 2 is Newton–Schulz).

        With X ≈ A⁻¹ and R = I - A X: X ← X (I + R + … + R^{p-1}), so that the new residual is
        I - A X_new = R^p, and ‖R^p‖_F ≤ ‖R‖_F^p < ‖R‖_F whenever ‖R‖_F < 1; otherwise the step is
        not guaranteed to help and is skipped (returns False). Cost: p + 1 matrix products, in
        ``state_dtype``.
        """
        if not isinstance(order, int) or order < 2:
            raise ValueError(f"order must be an int >= 2, got {order!r}")
        eye = torch.eye(self.dim, dtype=self.state_dtype, device=self.weight.device)
        residual = eye - self.weight @ self.weight_inverse
        if not float(torch.linalg.matrix_norm(residual)) < 1.0:
            return False
        series = eye + residual  # Horner: I + R(I + R(… (I + R)))
        for _ in range(order - 2):
            series = eye + residual @ series
        self.weight_inverse.copy_(self.weight_inverse @ series)
        self._refresh_compute_copies()
        return True

    def refine(self, order: int = 2) -> bool:
        """``refine_inverse(order)``."""
        return self.refine_inverse(order)

    @property
    def redrawn(self) -> nn.Parameter:
        return self.v

    # ----------------------------------------------------------------------------- internals
    def _uses_perturbation(self) -> bool:
        if self.training:
            self._perturbed = True
        return self._perturbed

    def _update_factor(self) -> torch.Tensor:
        return 1.0 + self.v @ (self._weight_inverse_c @ self.u)

    def _bias_or_zero(self, flat: torch.Tensor) -> torch.Tensor:
        return self.bias if self.bias is not None else flat.new_zeros(())

    def _flatten(self, x: torch.Tensor) -> torch.Tensor:
        _check_last_dim(x, self.dim)
        return x.reshape(-1, self.dim)

    def _refresh_compute_copies(self) -> None:
        # The copies enter the autograd graph of every training forward, so they must not be
        # inference tensors even when eval(), merge() or .to() runs under torch.inference_mode().
        # inference_mode(False) turns grad mode back on, hence the no_grad inside it.
        with torch.inference_mode(False), torch.no_grad():
            dtype, device = self.u.dtype, self.u.device
            self._weight_c = self.weight.to(dtype=dtype, device=device)
            self._weight_inverse_c = self.weight_inverse.to(dtype=dtype, device=device)
            self._log_abs_det_c = self.log_abs_det.to(dtype=dtype, device=device)

    def _apply(self, fn, recurse=True):
        # Casting the module (.float(), .half(), .to(dtype)) changes the compute dtype only: the
        # tracked state keeps state_dtype (cast from the untouched originals, so no precision is
        # lost) and follows the device. Outside inference mode, so that a layer moved under
        # torch.inference_mode() holds ordinary tensors and can still be trained.
        tracked = {name: getattr(self, name) for name in ("weight", "weight_inverse", "log_abs_det", "det_sign")}
        with torch.inference_mode(False), torch.no_grad():
            super()._apply(fn, recurse)
            for name, original in tracked.items():
                moved = getattr(self, name)
                setattr(self, name, original.to(device=moved.device, dtype=self.state_dtype))
        self._refresh_compute_copies()
        return self

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        self._refresh_compute_copies()
        # Eval forward ignores u vᵀ, so a perturbation saved in training mode must be folded in
        # here, as eval() would have done, or the loaded layer would compute a different map.
        if not self.training:
            self._merge_pending("load_state_dict() in eval mode")
        else:
            self._perturbed = True

    def train(self, mode: bool = True) -> P4InvLinear:
        if self.training and not mode:
            self._merge_pending("eval()")
        return super().train(mode)

    def _merge_pending(self, event: str) -> None:
        if not bool(self.u.detach().ne(0).any()):
            return
        report = self.merge()
        if not report.merged:
            warnings.warn(
                f"P4InvLinear: pending perturbation dropped on {event} ({report.reason}, factor {report.factor:.3g})",
                stacklevel=3,
            )

    def extra_repr(self) -> str:
        return f"dim={self.dim}, bias={self.bias is not None}, state_dtype={self.state_dtype}"


def _initial_state(dim: int, init: str | torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, float, float]:
    """(A, A⁻¹, log|det A|, sign det A) in float64 for the named or given initial matrix."""
    if isinstance(init, str):
        if init == "identity":
            eye = torch.eye(dim, dtype=torch.float64)
            return eye, eye.clone(), 0.0, 1.0
        if init == "reverse":
            flip = torch.eye(dim, dtype=torch.float64).flip(0)
            # The reversal is the product of ⌊n/2⌋ transpositions.
            return flip, flip.clone(), 0.0, (-1.0) ** (dim // 2)
        raise ValueError(f"unknown init {init!r}; valid: {', '.join(map(repr, _INITS))} or an invertible matrix")
    if not isinstance(init, torch.Tensor):
        raise TypeError(f"init must be one of {_INITS} or a torch.Tensor, got {type(init).__name__}")
    if init.shape != (dim, dim):
        raise ValueError(f"init matrix must have shape ({dim}, {dim}), got {tuple(init.shape)}")
    matrix = init.detach().to(device="cpu", dtype=torch.float64)
    if not bool(torch.isfinite(matrix).all()):
        raise ValueError(f"init matrix must be finite, got {int((~torch.isfinite(matrix)).sum())} non-finite entries")
    sign, log_abs_det = torch.linalg.slogdet(matrix)
    condition = torch.linalg.cond(matrix)
    if sign == 0 or not torch.isfinite(condition) or condition > 1e12:
        raise ValueError(f"init matrix is singular or nearly so (condition number {float(condition):.3g})")
    return matrix, torch.linalg.inv(matrix), float(log_abs_det), float(sign)


def _distance(value: float, low: float, high: float) -> float:
    """dist(value, [low, high])."""
    return max(low - value, 0.0, value - high)


def _p4inv_layers(module: nn.Module) -> list[P4InvLinear]:
    return [m for m in module.modules() if isinstance(m, P4InvLinear)]


def logdet_band_penalty(module: nn.Module) -> torch.Tensor:
    """Σ over the P4InvLinear layers in ``module`` of ``layer.band_penalty()``. Shape ().

    Add ``weight * logdet_band_penalty(model)`` to the loss (the reference used weight 0.1).
    """
    layers = _p4inv_layers(module)
    if not layers:
        raise ValueError(f"{type(module).__name__} contains no P4InvLinear layer")
    return torch.stack([layer.band_penalty() for layer in layers]).sum()


class P4InvScheduler:
    """Merges every P4 layer in a model (``P4InvLinear``, ``P4OrthLinear``: any ``P4Layer``) every
    ``merge_every`` optimizer steps.

    Call ``step()`` once after each ``optimizer.step()``. At every merge it clears the optimizer
    state (Adam moments, step count, …) of the factor that the reset redraws (``layer.redrawn``,
    v), because its history belongs to a direction that no longer exists; u and every other parameter
    keep theirs. (The reference implementation, bgflow's PPPPScheduler, clears the whole optimizer
    state, the coupling layers' included; on φ⁴ neither that nor clearing u as well raised the
    effective sample size: experiments/README.md.) Every ``refine_every`` merges it runs
    ``layer.refine(refine_order)`` (for P4Inv one hyperpower iteration of that order on A⁻¹;
    ``None``: never).

    A refused merge drops the perturbation, so a layer whose merges are mostly refused has almost
    stopped learning. The scheduler warns once per layer when at least ``_REFUSALS_TO_WARN`` merges
    of it were refused and they outnumber its accepted ones (for instance when the loss pulls
    log|det| out of ``MergeRule.logdet_band``: experiments/README.md has a Gaussian fit at d = 64 that
    the default band [-2, 15] stops).

    Attributes:
        reports: the ``MergeReport`` of each layer at the latest merge.
        steps: number of ``step()`` calls so far.
    """

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        merge_every: int = 10,
        refine_every: int | None = 50,
        refine_order: int = 2,
    ) -> None:
        if not isinstance(merge_every, int) or merge_every < 1:
            raise ValueError(f"merge_every must be a positive int, got {merge_every!r}")
        if refine_every is not None and (not isinstance(refine_every, int) or refine_every < 1):
            raise ValueError(f"refine_every must be a positive int or None, got {refine_every!r}")
        if not isinstance(refine_order, int) or refine_order < 2:
            raise ValueError(f"refine_order must be an int >= 2, got {refine_order!r}")
        self.layers = [m for m in model.modules() if isinstance(m, P4Layer)]
        if not self.layers:
            raise ValueError(f"{type(model).__name__} contains no P4 layer: no P4InvLinear or P4OrthLinear")
        self.optimizer = optimizer
        self.merge_every = merge_every
        self.refine_every = refine_every
        self.refine_order = refine_order
        self.steps = 0
        self.merge_rounds = 0
        self.reports: list[MergeReport] = []
        self._warned: set[P4InvLinear] = set()

    def state_dict(self) -> dict:
        """The counters that decide when the next merge and refinement fall (to resume a run exactly)."""
        return {"steps": self.steps, "merge_rounds": self.merge_rounds}

    def load_state_dict(self, state: dict) -> None:
        self.steps, self.merge_rounds = int(state["steps"]), int(state["merge_rounds"])

    def step(self) -> None:
        self.steps += 1
        if self.steps % self.merge_every:
            return
        self.reports = [layer.merge() for layer in self.layers]
        for layer, report in zip(self.layers, self.reports, strict=True):
            if not isinstance(layer, P4InvLinear) or layer in self._warned:
                continue
            refused = layer.num_skipped
            if refused >= _REFUSALS_TO_WARN and refused > layer.num_merges:
                self._warned.add(layer)
                warnings.warn(
                    f"P4InvLinear({layer.extra_repr()}): {refused} of {refused + layer.num_merges} merges "
                    f"refused so far (the latest: {report.reason}); each refusal drops the perturbation, so this layer "
                    f"has nearly stopped learning. See MergeRule (logdet_band {layer.rule.logdet_band}, "
                    f"min_abs_factor {layer.rule.min_abs_factor:.3g}).",
                    stacklevel=2,
                )
        for layer in self.layers:
            self.optimizer.state.pop(layer.redrawn, None)
        self.merge_rounds += 1
        if self.refine_every is not None and self.merge_rounds % self.refine_every == 0:
            for layer in self.layers:
                layer.refine(self.refine_order)
