"""Quantizers for quantization-aware training (QuEST and baselines) and the `QuantLinear` layer.

Registered names: bf16 (alias none), ste, clip, quest, lsq, ternary, fp4 — see each module.
"""
from quest_lab.quant.base import (BACKENDS, QUANTIZERS, ROLES, Quantizer, build_quantizer,
                                  register_quantizer)
from quest_lab.quant.estimators import STE, LSQFunction, MaskedSTE
from quest_lab.quant.gaussian import (FP4_E2M1_GRID, FP4_RMS_SCALE, GAUSSIAN_ALPHA, gaussian_alpha,
                                      gaussian_grid_mse, optimal_fp4_scale, optimal_gaussian_clip)
from quest_lab.quant.hadamard import hadamard_block_for, hadamard_matrix, hadamard_transform
from quest_lab.quant.quest import (default_trust, quest_quantize, quest_quantize_rotated,
                                   uniform_fake_quant)

# Importing these modules registers their quantizers.
from quest_lab.quant import baselines as _baselines  # noqa: F401  (bf16/none, ste, clip, fp4)
from quest_lab.quant import lsq as _lsq  # noqa: F401
from quest_lab.quant import quest as _quest  # noqa: F401
from quest_lab.quant import ternary as _ternary  # noqa: F401
from quest_lab.quant.baselines import fp4_fake_quant
from quest_lab.quant.config import QuantConfig
from quest_lab.quant.linear import QuantLinear

__all__ = [
    "BACKENDS", "FP4_E2M1_GRID", "FP4_RMS_SCALE", "GAUSSIAN_ALPHA", "LSQFunction", "MaskedSTE",
    "QUANTIZERS", "ROLES", "STE", "QuantConfig", "QuantLinear", "Quantizer", "build_quantizer",
    "default_trust", "fp4_fake_quant", "gaussian_alpha", "gaussian_grid_mse", "hadamard_block_for",
    "hadamard_matrix", "hadamard_transform", "optimal_fp4_scale", "optimal_gaussian_clip",
    "quest_quantize", "quest_quantize_rotated", "register_quantizer", "uniform_fake_quant",
]
