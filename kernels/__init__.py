"""Triton kernels for QuEST (installed as `quest_lab.kernels`; docs/design.md §6).

Public API:
  quest_quantize_fwd / quest_quantize_fwd_ref     fused rotate + clip + round + packed trust mask
  quest_quantize_bwd / quest_quantize_bwd_ref     fused masked-Hadamard backward
  quest_fake_quant, quest_fake_quant_rotated      autograd ops (QuantLinear backend="triton")
  quest_quantize_codes, quest_lowp_linear         integer codes + scales; the layer with a FP8/int8 forward GEMM
  pack_mask / unpack_mask, pick_block, default_trust, LaunchConfig
Custom ops (torch.ops.quest_lab.*: fake_quant, fake_quant_bwd, dequantize_codes, lowp_linear) for
torch.compile / CUDA graphs: kernels/ops.py; the functions above call them while torch.compile traces.
"""
from quest_lab.kernels._common import LaunchConfig, default_config, interpreting
from quest_lab.kernels.autograd import quest_fake_quant, quest_fake_quant_rotated
from quest_lab.kernels.lowp import code_format_for, dequantize_codes, lowp_gemm, quest_lowp_linear
from quest_lab.kernels.quest import quest_quantize_bwd, quest_quantize_codes, quest_quantize_fwd
from quest_lab.kernels.reference import (default_trust, pack_mask, pick_block, quest_fake_quant_ref,
                                         quest_quantize_bwd_ref, quest_quantize_fwd_ref, unpack_mask)

__all__ = [
    "LaunchConfig", "default_config", "interpreting", "quest_fake_quant", "quest_fake_quant_rotated",
    "quest_quantize_fwd", "quest_quantize_bwd", "quest_quantize_fwd_ref", "quest_quantize_bwd_ref",
    "quest_fake_quant_ref", "default_trust", "pack_mask", "pick_block",
    "unpack_mask", "quest_quantize_codes", "quest_lowp_linear", "lowp_gemm", "dequantize_codes", "code_format_for",
]
