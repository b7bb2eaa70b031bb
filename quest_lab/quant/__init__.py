"""Quantizers for quantization-aware training (QuEST and baselines) and the `QuantLinear` layer.

The torch-free parts (`QuantConfig`, the quantizer specs, labels) import without torch; everything
else (`QuantLinear`, the quantizer classes and their math) is loaded on first attribute access, so
`from quest_lab.quant import QuantConfig` in configs and the CLI never loads torch.
Registered names: see `quest_lab.quant.specs` (`quest-lab quantizers`).
"""
from __future__ import annotations

import importlib

from quest_lab.quant.config import QuantConfig
from quest_lab.quant.specs import (BACKENDS, GEMMS, OFF_BITS, QUANTIZER_SPECS, ROLES, Precision, QuantizerSpec,
                                   get_spec, group_quantizers, parse_precision_label, precision_label,
                                   register_spec, valid_bits)

# name -> module holding it (imported on first access: these need torch)
_LAZY = {
    "QUANTIZERS": "base", "Quantizer": "base", "build_quantizer": "base", "register_quantizer": "base",
    "implementation": "base", "per_group": "base", "slb_temperature": "slb",
    "STE": "estimators", "LSQFunction": "estimators", "MaskedSTE": "estimators",
    "masked_in_basis": "estimators", "ste_in_basis": "estimators",
    "FP4_E2M1_GRID": "gaussian", "FP4_REFERENCE_TRUST": "gaussian", "FP4_RMS_SCALE": "gaussian",
    "GAUSSIAN_ALPHA": "gaussian", "gaussian_alpha": "gaussian", "gaussian_grid_mse": "gaussian",
    "optimal_fp4_scale": "gaussian", "optimal_gaussian_clip": "gaussian",
    "LLOYD_MAX_LEVELS": "lloyd_max", "lloyd_iterate": "lloyd_max", "lloyd_max_levels": "lloyd_max",
    "hadamard_block_for": "hadamard", "hadamard_matrix": "hadamard", "hadamard_transform": "hadamard",
    "default_trust": "quest", "quest_quantize": "quest", "quest_quantize_rotated": "quest",
    "uniform_fake_quant": "quest", "nearest_level": "nonuniform", "QuantLinear": "linear",
}


def load_all() -> None:
    """Import every registered quantizer's implementation (for code that lists QUANTIZERS)."""
    from quest_lab.quant.base import implementation

    for name in list(QUANTIZER_SPECS):
        implementation(name)


def __getattr__(name: str):
    if name in _LAZY:
        module = importlib.import_module(f"quest_lab.quant.{_LAZY[name]}")
        if name == "QUANTIZERS":
            load_all()
        return getattr(module, name)
    raise AttributeError(f"module 'quest_lab.quant' has no attribute {name!r}")


__all__ = ["BACKENDS", "GEMMS", "OFF_BITS", "QUANTIZER_SPECS", "ROLES", "Precision", "QuantConfig", "QuantizerSpec",
           "get_spec", "group_quantizers", "load_all", "parse_precision_label", "precision_label", "register_spec", "valid_bits", *_LAZY]
