"""`QuantLinear`: drop-in nn.Linear whose forward is F.linear(aq(x), wq(W), b)."""
from __future__ import annotations

import logging

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from quest_lab.quant.base import build_quantizer
from quest_lab.quant.config import QuantConfig

log = logging.getLogger(__name__)

_DEFAULT = QuantConfig()


class QuantLinear(nn.Linear):
    """nn.Linear with fake-quantized weight (per output row) and input (per token row), or per group of
    `qconfig.group_size` inputs along K on both sides.

    With the default `QuantConfig()` (bf16) it computes exactly what nn.Linear computes.
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = False,
                 qconfig: QuantConfig = _DEFAULT, device=None, dtype=None) -> None:
        super().__init__(in_features, out_features, bias=bias, device=device, dtype=dtype)
        if not isinstance(qconfig, QuantConfig):
            raise ValueError(f"qconfig must be a QuantConfig, got {type(qconfig).__name__}")
        self.qconfig = qconfig
        q = qconfig
        self.wq = build_quantizer(q.name, q.w_bits, "weight", in_features, q.options, q.backend, rows=out_features,
                                  group_size=q.group_size)
        self.aq = build_quantizer(q.name, q.a_bits, "activation", in_features, q.options, q.backend,
                                  group_size=q.group_size)
        self._logged_group_fallback = False
        if device is not None:
            self.wq.to(device=device)
            self.aq.to(device=device)

    @property
    def rotated_gemm(self) -> bool:
        """Both sides QuEST with Hadamard: Q(xH)·Hᵀ·(Q(WH)·Hᵀ)ᵀ = Q(xH)·Q(WH)ᵀ (HᵀH = I), so the GEMM
        runs in the rotated basis and the two inverse rotations are skipped (same value and gradients
        up to float rounding)."""
        rot = getattr(self.wq, "rotates", False) and getattr(self.aq, "rotates", False)
        return bool(rot) and self.wq.options["hadamard_block"] == self.aq.options["hadamard_block"]

    def lowp_format(self, x: Tensor, out_dtype: torch.dtype | None) -> str | None:
        """Code format ("fp8" / "int8") of the low-precision forward GEMM for this input, or None (fake
        quantization).  gemm="auto" takes it on CUDA under bf16 autocast with the Triton quantizers;
        gemm="lowp" requires it (on the CPU only under the Triton interpreter, for tests)."""
        mode = self.qconfig.gemm
        if mode == "fake" or not self.rotated_gemm:
            return None
        if not (self.wq.per_row and self.aq.per_row):  # QuantConfig refuses gemm="lowp" with groups
            if not self._logged_group_fallback:
                log.info("QuantLinear(%d→%d) group_size=%s: the FP8/int8 GEMM takes one scale per row; "
                         "running the fake-quant GEMM", self.in_features, self.out_features, self.qconfig.group_size)
                self._logged_group_fallback = True
            return None
        from quest_lab.kernels.lowp import code_format_for, lowp_supported

        k, n = self.in_features, self.out_features
        block = self.aq.kernel_block(k)
        if mode == "auto":
            if out_dtype != torch.bfloat16 or not (self.aq._use_triton(x) and self.wq._use_triton(self.weight)):
                return None
            return lowp_supported(self.wq.bits, self.aq.bits, k, n, block, x.device)
        fmt = (lowp_supported(self.wq.bits, self.aq.bits, k, n, block, x.device) if x.is_cuda
               else code_format_for(self.wq.bits, self.aq.bits))
        if fmt is None:
            raise RuntimeError(f"gemm='lowp': no low-precision GEMM for w{self.wq.bits:g}a{self.aq.bits:g} "
                               f"K={k} N={n} on {x.device}; use gemm='auto' or 'fake'")
        return fmt

    def forward(self, x: Tensor) -> Tensor:
        if self.rotated_gemm:
            # under autocast the quantizers write the GEMM's dtype directly (no separate cast pass)
            dt = torch.get_autocast_dtype(x.device.type) if torch.is_autocast_enabled(x.device.type) else None
            fmt = self.lowp_format(x, dt)
            if fmt is not None:
                from quest_lab.kernels.lowp import quest_lowp_linear

                return quest_lowp_linear(x, self.weight, self.bias, self.aq.kernel_triple(), self.wq.kernel_triple(),
                                         self.aq.kernel_block(self.in_features), fmt, out_dtype=dt or x.dtype,
                                         round_input=dt == torch.bfloat16)
            return F.linear(self.aq.forward_rotated(x, dt), self.wq.forward_rotated(self.weight, dt), self.bias)
        return F.linear(self.aq(x), self.wq(self.weight), self.bias)

    def extra_repr(self) -> str:
        q = self.qconfig
        return (f"{super().extra_repr()}, quant={q.name} w{q.w_bits:g}a{q.a_bits:g}"
                + (f" g{q.group_size}" if q.group_size else "") + (f" backend={q.backend}" if q.enabled else ""))
