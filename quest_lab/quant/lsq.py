"""LSQ: learned step size quantization (Esser et al., ICLR 2020, arXiv 1902.08153).

Weights: one learnable step per output row (needs `rows` = out_features); activations: one
learnable step per tensor.  Signed grid for b ≥ 2: [−2^{b−1}, 2^{b−1} − 1]·s; for b = 1 the
symmetric grid {−s/2, +s/2}.  Steps are initialised from the first tensor seen (paper: 2⟨|v|⟩/√Qp;
for 1 bit s = 2⟨|v|⟩, i.e. levels ±⟨|v|⟩).  Gradient scale g = 1/√(n·Qp) with n the number of elements
sharing one step (a weight row; the whole activation tensor of the batch).
"""
from __future__ import annotations

import math

import torch
from torch import nn

from quest_lab.quant.base import Quantizer, register_quantizer
from quest_lab.quant.estimators import LSQFunction


@register_quantizer("lsq")
class LSQQuantizer(Quantizer):
    def __init__(self, bits, role, features, options=None, backend="auto", rows=None) -> None:
        super().__init__(bits, role, features, options, backend, rows=rows)
        b = int(round(self.bits))
        if b == 1:
            self.q_lo, self.q_hi, self.offset, self.q_pos = -1, 0, 0.5, 0.5
        else:
            self.q_lo, self.q_hi, self.offset, self.q_pos = -(2 ** (b - 1)), 2 ** (b - 1) - 1, 0.0, 2 ** (b - 1) - 1
        if role == "weight":
            if rows is None or rows < 1:
                raise ValueError(f"lsq weight quantizer needs rows (= out_features) >= 1 for its per-row "
                                 f"step; got rows={rows!r}")
            n_steps = rows
        else:
            n_steps = 1
        self.step = nn.Parameter(torch.ones(n_steps))  # 1-D: not caught by "ndim >= 2 → weight decay"
        self.register_buffer("initialized", torch.zeros((), dtype=torch.bool))

    @torch.no_grad()
    def _init_step(self, x: torch.Tensor) -> None:
        if self.role == "weight":
            mean_abs = x.abs().mean(-1)
        else:
            mean_abs = x.abs().mean().reshape(1)
        scale = 2.0 if self.offset else 2.0 / math.sqrt(self.q_pos)
        self.step.copy_((scale * mean_abs).clamp_min(1e-6).to(self.step.dtype))
        self.initialized.fill_(True)

    def quantize(self, x: torch.Tensor) -> torch.Tensor:
        if not bool(self.initialized):
            self._init_step(x)
        if self.role == "weight":
            step = self.step.to(x.dtype).unsqueeze(-1)
            n = x.shape[-1]
        else:
            step = self.step.to(x.dtype)
            n = x.numel()
        grad_scale = 1.0 / math.sqrt(n * self.q_pos)
        return LSQFunction.apply(x, step, self.q_lo, self.q_hi, self.offset, grad_scale)
