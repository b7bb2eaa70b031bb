"""Quantization MSE on N(0, 1) per bit-width: quest (± Hadamard), clip/ste (α_b·RMS), absmax, gaussian, fp4.

Compares with the docs/design.md §3 table (4b 0.011543, 8b 8.782e-5) and with the exact Gaussian MSE of
each quantizer's grid at the table's α (`gaussian_grid_mse`).  Data: `--rows` × `--k` samples, one
scale per row of length K (as in a layer), float64.

    python benchmarks/quant_mse.py            # 1024 rows × 1024 (~10^6 samples)
    python benchmarks/quant_mse.py --smoke    # 64 rows, for CI
    python benchmarks/quant_mse.py --groups   # + group sizes × Hadamard block (docs/design.md §3)

`--groups`: relative MSE (‖x̂ − x‖²/‖x‖²) of 4-bit quest per row and per group G, with the default
Hadamard block 128, with the block set to G, and without rotation, on N(0, 1) and on rows whose channels
have log-normal scales (σ_c = exp(N(0, 1)), shared by all rows: outlier channels, as in activations).
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


GROUPS = (None, 256, 128, 64, 32, 16)
GROUP_VARIANTS = {  # label -> options for a group size g (None: per row)
    "had128": lambda g: {"hadamard": True, "hadamard_block": 128},
    "had=G": lambda g: {"hadamard": True, "hadamard_block": min(g or 128, 128)},
    "no-had": lambda g: {"hadamard": False},
}


def group_table(rows: int, k: int, seed: int, bits: int = 4) -> None:
    gen = torch.Generator().manual_seed(seed)
    data = {"N(0,1)": torch.randn(rows, k, generator=gen, dtype=torch.float64)}
    data["outlier ch."] = data["N(0,1)"] * torch.randn(1, k, generator=gen, dtype=torch.float64).exp()
    for name, x in data.items():
        print(f"\n{bits}-bit quest, relative MSE, {name} ({rows}x{k})")
        print(f"{'G':>6} " + " ".join(f"{v:>10}" for v in GROUP_VARIANTS))
        for g in GROUPS:
            cells = []
            for opts in GROUP_VARIANTS.values():
                q = build_quantizer("quest", bits, "weight", k, opts(g), "torch", rows=rows, group_size=g)
                with torch.no_grad():
                    cells.append((q(x) - x).pow(2).sum().item() / x.pow(2).sum().item())
            print(f"{'row' if g is None else g:>6} " + " ".join(f"{c:10.4e}" for c in cells))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=1024)
    p.add_argument("--k", type=int, default=1024)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--smoke", action="store_true", help="64 rows, bits 2/4/8 only")
    p.add_argument("--groups", action="store_true", help="also the group-size × Hadamard table")
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
    if args.groups:
        group_table(rows, args.k, args.seed)


if __name__ == "__main__":
    main()
