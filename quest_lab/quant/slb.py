"""SLB: searching for low-bit weights (Yang et al. 2020, "Searching for Low-Bit Weights in Quantized
Neural Networks", NeurIPS; arXiv 2009.08695), weights only.

Each weight is not a real number but a distribution over the 2^b values of a grid: per weight a logit
vector z ∈ R^{2^b}.  Training optimises the logits (search, not rounding: no straight-through
estimator anywhere); the forward uses

    soft (training, τ annealed):   ŵ = Σ_k softmax(z/τ)_k · v_k
    hard (eval, and in training from `anneal_end` on):   ŵ = v_{argmax z}

as the reference implementation does (mindspore-ai/golden-stick `SlbFakeQuantizerPerLayer`: softmax
of A·T with T growing, one-hot argmax at eval and once the temperature stops changing).

Grid.  The paper's layers are followed by batch norm, so its values are the bare set linspace(−1, 1,
2^b).  Our Llama has no norm after a linear layer, so the values are QuEST's symmetric grid
v_k = −s + k·2s/(2^b − 1) with s = α_b·RMS + 1e-8 of the *initial* weight, per row (option
scale="row") or per (fused) matrix (scale="tensor"), fixed for the run (a buffer).

Temperature (options, fractions of training from `set_progress`): τ = tau_start until anneal_start,
then `schedule` (exponential = geometric, the reference's ×1.2 per epoch; linear; cosine) down to
tau_end at anneal_end; from anneal_end on the weights are hard, i.e. frozen at their most probable
value (the reference's defaults: annealing over 20 %–60 % of training, T 1 → 1.2^40 ≈ 1470, so
τ 1 → ≈ 7e-4; ours tau_end = 1e-3).  `train()` calls `set_progress(step / steps)` before every step
and `set_progress(1.0)` at the end.  Without it (progress 0) the soft weights use tau_start.

Logits start from the layer's initial weight (init="weight": z_k = −½((w − v_k)/Δ)², so the model
starts near its usual initialisation; Δ = the grid step) or N(0, 1) (init="random", the reference).
They are quantizer state: no weight decay, not counted in N.  The layer's own `weight` is read once, to
initialise, and gets no gradient after that.

Memory: 2^b logits per weight (fp32, plus AdamW's two moments: 3·2^b·4 bytes per weight, 192 at
4 bits vs 12 for a plain fp32 weight) and the (rows, K, 2^b) softmax kept for the backward: 2^b times
a weight matrix per layer.  So the spec offers 1–4 bits only.  The paper's state batch normalisation
(BN statistics recomputed after the switch to hard weights) has nothing to act on here (RMSNorm has no
running statistics).  Activations are not quantized (a_bits 16).
"""
from __future__ import annotations

import math

import torch
from torch import nn

from quest_lab.quant.base import Quantizer, register_quantizer, row_rms
from quest_lab.quant.gaussian import gaussian_alpha


def slb_temperature(progress: float, tau_start: float, tau_end: float, schedule: str, anneal_start: float,
                    anneal_end: float) -> float | None:
    """τ at this fraction of training; None from `anneal_end` on (hard weights)."""
    if progress >= anneal_end:
        return None
    if progress <= anneal_start:
        return tau_start
    u = (progress - anneal_start) / (anneal_end - anneal_start)
    if schedule == "exponential":
        return tau_start * (tau_end / tau_start) ** u
    if schedule == "linear":
        return tau_start + (tau_end - tau_start) * u
    if schedule == "cosine":
        return tau_end + (tau_start - tau_end) * (1 + math.cos(math.pi * u)) / 2
    raise ValueError(f"schedule={schedule!r} is unknown; allowed: exponential, linear, cosine")


@register_quantizer("slb")
class SLBQuantizer(Quantizer):
    """SLB weights (see module doc); options (spec): tau_start, tau_end, schedule, anneal_start,
    anneal_end, scale ("row" | "tensor"), init ("weight" | "random")."""

    def __init__(self, bits, role, features, options=None, backend="auto", rows=None, group_size=None) -> None:
        super().__init__(bits, role, features, options, backend, rows=rows, group_size=group_size)
        self.progress = 0.0
        if not self.enabled:
            return
        if rows is None:
            raise ValueError("slb needs rows (= out_features) to hold one logit vector per weight")
        self.levels = 2 ** int(round(self.bits))
        self.logits = nn.Parameter(torch.zeros(rows, features, self.levels))
        self.register_buffer("scale", torch.ones(rows, 1, 1))  # s of the grid, per row (or all equal)
        self.register_buffer("initialized", torch.zeros((), dtype=torch.bool))

    def set_progress(self, fraction: float) -> None:
        """Training progress in [0, 1] (what the temperature schedule reads)."""
        self.progress = float(fraction)

    @property
    def temperature(self) -> float | None:
        """τ of the soft weights now; None when the forward uses hard weights (eval, or ≥ anneal_end)."""
        if not self.training:
            return None
        o = self.options
        return slb_temperature(self.progress, o["tau_start"], o["tau_end"], o["schedule"], o["anneal_start"],
                               o["anneal_end"])

    def unit(self) -> torch.Tensor:
        """The grid in units of s: linspace(−1, 1, 2^b), in the working dtype."""
        return torch.linspace(-1.0, 1.0, self.levels, dtype=self._work_dtype(), device=self.logits.device)

    def values(self) -> torch.Tensor:
        """The grid values v (rows, 1, 2^b), in the working dtype."""
        return self.scale.to(self._work_dtype()) * self.unit()

    def _work_dtype(self) -> torch.dtype:
        """float64 for a float64 module, else float32 (bf16 logits are computed with in fp32)."""
        return torch.float64 if self.logits.dtype == torch.float64 else torch.float32

    @torch.no_grad()
    def _init(self, w: torch.Tensor) -> None:
        w = w.detach().to(self._work_dtype())
        if w.shape != self.logits.shape[:2]:
            raise ValueError(f"slb weight quantizer built for {tuple(self.logits.shape[:2])}, got {tuple(w.shape)}")
        sigma = row_rms(w) if self.options["scale"] == "row" else row_rms(w.reshape(1, -1)).expand(w.shape[0], 1)
        scale = (gaussian_alpha(self.bits) * sigma + 1e-8).unsqueeze(-1)
        self.scale.copy_(scale)
        if self.options["init"] == "weight":
            step = 2 * scale / (self.levels - 1)
            self.logits.copy_(-0.5 * ((w.unsqueeze(-1) - scale * self.unit()) / step) ** 2)
        else:
            self.logits.normal_()
        self.initialized.fill_(True)

    def hard_weight(self) -> torch.Tensor:
        """ŵ = v_{argmax z} (rows, K): the searched weights."""
        v = self.values().expand_as(self.logits)
        return v.gather(-1, self.logits.argmax(-1, keepdim=True)).squeeze(-1)

    def quantize(self, x: torch.Tensor) -> torch.Tensor:
        if not bool(self.initialized):
            self._init(x)
        tau = self.temperature
        if tau is None:
            return self.hard_weight().to(x.dtype)
        p = torch.softmax(self.logits.to(self._work_dtype()) / tau, dim=-1)
        return (p * self.values()).sum(-1).to(x.dtype)

    def extra_repr(self) -> str:
        tau = self.temperature if self.enabled else None
        return super().extra_repr() + (f", progress={self.progress:.3g}, τ={tau:.3g}" if tau is not None else "")
