"""Quantization MSE on N(0, 1) per bit-width: quest (± Hadamard), clip/ste (α_b·RMS), absmax, gaussian, fp4.

Compares with the docs/design.md §3 table (4b 0.011543, 8b 8.782e-5) and with the exact Gaussian MSE of
each quantizer's grid at the table's α (`gaussian_grid_mse`).  Data: `--rows` × `--k` samples, one
scale per row of length K (as in a layer), float64.

    python benchmarks/quant_mse.py            # 1024 rows × 1024 (~10^6 samples)
    python benchmarks/quant_mse.py --smoke    # 64 rows, for CI
"""
from __future__ import annotations

import argparse

import numpy as np
import torch

from quest_lab.quant import (FP4_E2M1_GRID, FP4_RMS_SCALE, build_quantizer, gaussian_alpha,
                             gaussian_grid_mse)

DESIGN_MSE = {4: 0.011543, 8: 8.782e-5}
METHODS = {  # label -> (registry name, options)
    "quest": ("quest", {"hadamard": False}),
    "quest+had": ("quest", {"hadamard": True}),
    "clip": ("clip", {}),
    "ste": ("ste", {}),  # same forward as clip since issue 9 (only the backward differs)
    "absmax": ("absmax", {}),
    "gaussian": ("gaussian", {}),  # Lloyd–Max levels
    "fp4": ("fp4", {}),
}


def analytic_mse(bits: int) -> float:
    a = gaussian_alpha(bits)
    return gaussian_grid_mse(np.linspace(-a, a, 2**bits))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=1024)
    p.add_argument("--k", type=int, default=1024)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--smoke", action="store_true", help="64 rows, bits 2/4/8 only")
    args = p.parse_args()
    rows = 64 if args.smoke else args.rows
    bit_list = (2, 4, 8) if args.smoke else tuple(range(1, 9))
    x = torch.randn(rows, args.k, generator=torch.Generator().manual_seed(args.seed), dtype=torch.float64)

    print(f"N(0,1), {rows}x{args.k} = {x.numel():,} samples, per-row scale, float64")
    header = f"{'bits':>4} {'design':>10} {'analytic':>10} " + " ".join(f"{m:>10}" for m in METHODS)
    print(header + f" {'absmax/q':>10}")
    for bits in bit_list:
        mse = {}
        for label, (name, opts) in METHODS.items():
            if name == "fp4" and bits != 4:
                mse[label] = float("nan")
                continue
            q = build_quantizer(name, bits, "weight", args.k, opts, "torch", rows=rows)
            with torch.no_grad():
                mse[label] = (q(x) - x).pow(2).mean().item()
        design = DESIGN_MSE.get(bits, float("nan"))
        cells = " ".join(f"{mse[m]:10.4e}" for m in METHODS)
        print(f"{bits:>4} {design:10.4e} {analytic_mse(bits):10.4e} {cells} {mse['absmax'] / mse['quest']:10.2f}")
    fp4_exact = gaussian_grid_mse(FP4_RMS_SCALE * np.r_[-np.array(FP4_E2M1_GRID[:0:-1]), FP4_E2M1_GRID])
    print(f"fp4 analytic (E2M1 x {FP4_RMS_SCALE:.4f}*RMS): {fp4_exact:.4e}")


if __name__ == "__main__":
    main()
