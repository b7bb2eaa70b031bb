"""Shared pieces of the QuEST Triton kernels: launch configuration, dot-precision modes, checks.

Precision modes (`DotModes`).  Every Hadamard product multiplies by a ±1 matrix (normalization is
a separate fp32 multiply), so products are exact in any float format and only the accumulation
(always fp32) rounds:
  * split_in: 0 = fp32 operands with input_precision="ieee" (interpreter; exact fp32 FMA on GPU);
              1 = native 16-bit operands (fp16 / bf16 inputs, exact products);
              2, 3 = fp32 input split into 2 / 3 bf16 pieces (3 pieces carry all 24 mantissa bits;
              default 3 on GPU; 2 is ~1e-5 relative and flips more rounding ties, no faster);
              4 = fp32 input rounded to bf16 on load, then one native dot (`round_input`: what
              autocast does before a bf16 GEMM, and what the QuEST reference quantizes under autocast).
  * split_mid: same for fp32 intermediates (the masked gradient in the backward): 0, 2 or 3.
  * exact_codes: de-rotation of the grid codes (odd integers |c| ≤ 255) in fp32-ieee (False → fp16
    tensor cores, still exact: integers ≤ 2048 are exact in fp16 and the accumulator is fp32).
"""
from __future__ import annotations

import functools
import os
from dataclasses import dataclass

import torch
import triton
import triton.language as tl

SUPPORTED_DTYPES = (torch.float32, torch.float16, torch.bfloat16)
SUPPORTED_BLOCKS = (16, 32, 64, 128)
# the one-pass forward / row-tiled backward hold whole rows in registers: K ≤ 128·block (16384 for
# block 128).  The default two-pass forward and flat backward take any K.
MAX_BLOCKS_PER_ROW = 128


def interpreting() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


@dataclass(frozen=True)
class LaunchConfig:
    """Launch shape.

    Forward (two-pass, default): each program owns `rows` token rows and walks them block by block as
    [rows, block] tiles: pass 1 sums squares (σ), pass 2 re-reads (L2), rotates, quantizes, writes.
    Forward (one-pass, `two_pass=False`, the previous design kept for comparison): `tile_blocks`
    target rows of a [rows·ceil_pow2(K/block), block] tile holding whole rows.
    Backward: flat [tile_blocks, block] tiles over the M·K/block blocks (no per-row structure).
    `pack`: how the forward packs the trust mask to bits: 0 = reshape + sum, 1 = tl.dot with a
    byte-weight matrix (block 128 only; else 0).
    """

    tile_blocks: int = 64  # one-pass fwd / bwd: rows of the [tile_blocks, block] tile fed to tl.dot
    num_warps: int = 4
    num_stages: int = 1
    programs_per_sm: int = 4  # persistent grid: min(tiles, this × SMs) programs; 0 = one tile each
    split_in: int | None = None  # None: automatic (see module doc)
    split_mid: int | None = None
    exact_codes: bool | None = None
    rows: int = 32  # two-pass fwd: token rows per program tile (power of two >= 16)
    two_pass: bool = True
    pack: int = 0
    fast_div: bool = True  # two-pass fwd: y·(1/Δ) instead of the correctly rounded y/Δ (ties may flip)

    def __post_init__(self) -> None:
        if self.tile_blocks < 16 or self.tile_blocks & (self.tile_blocks - 1):
            raise ValueError(f"tile_blocks={self.tile_blocks} must be a power of two >= 16")
        if self.num_warps not in (1, 2, 4, 8, 16):
            raise ValueError(f"num_warps={self.num_warps} must be one of 1, 2, 4, 8, 16")
        if self.programs_per_sm < 0:
            raise ValueError(f"programs_per_sm={self.programs_per_sm} must be >= 0 (0 = not persistent)")
        if self.rows < 16 or self.rows & (self.rows - 1):
            raise ValueError(f"rows={self.rows} must be a power of two >= 16")
        if self.pack not in (0, 1):
            raise ValueError(f"pack={self.pack} must be 0 (reshape) or 1 (dot)")
        if self.split_in not in (None, 0, 1, 2, 3) or self.split_mid not in (None, 0, 2, 3):
            raise ValueError("split_in must be None/0/1/2/3 and split_mid None/0/2/3")


@functools.lru_cache(maxsize=8)
def _num_sms(index: int) -> int:
    return torch.cuda.get_device_properties(index).multi_processor_count


def num_sms(device: torch.device) -> int:
    return _num_sms(device.index if device.index is not None else torch.cuda.current_device())


# H100 sweep (benchmarks/KERNELS.md, run 5): two-pass fwd best with 32 rows, 2 programs/SM and a
# 3-stage pipelined block loop; the flat bwd with 64-block tiles, 4 warps, 4 programs/SM
# rows 32: 64-row tiles (wgmma-sized) won one microbenchmark run on the H200 and lost the next, and the
# 100M step with them measured ×1.072 vs ×1.042 with 32 rows (benchmarks/KERNELS.md, issue 12)
_FWD_DEFAULT = LaunchConfig(rows=32, num_warps=4, programs_per_sm=2, num_stages=3)
_BWD_DEFAULT = LaunchConfig(tile_blocks=64, num_warps=4, programs_per_sm=4)
# fp32 rows of ≤ 8 blocks: the one-pass kernel measured faster (1315 vs 850 GB/s at 16384×1024)
_FWD_SHORT_FP32 = LaunchConfig(two_pass=False)


def default_config(forward: bool = True) -> LaunchConfig:
    """The launch settings used when a call passes none (callers pass a `LaunchConfig` to override)."""
    if interpreting():
        return LaunchConfig(tile_blocks=16, num_warps=1, rows=16)
    return _FWD_DEFAULT if forward else _BWD_DEFAULT


def resolve_modes(dtype: torch.dtype, cfg: LaunchConfig, round_input: bool = False) -> tuple[int, int, bool]:
    """(split_in, split_mid, exact_codes) for this input dtype.  `round_input`: an fp32 input is
    rounded to bf16 on load (split_in 4; the interpreter's wrapper rounds it before the launch)."""
    if interpreting():  # the interpreter's bf16 is wrong: fp32-ieee everywhere
        return 0, 0, True
    if round_input and dtype == torch.float32:
        return 4, 3, cfg.exact_codes if cfg.exact_codes is not None else False
    split_in = cfg.split_in if cfg.split_in is not None else (1 if dtype != torch.float32 else 3)
    if split_in == 1 and dtype == torch.float32:
        raise ValueError("split_in=1 (native 16-bit dot) needs a float16/bfloat16 input")
    if split_in in (2, 3) and dtype != torch.float32:
        split_in = 1
    # 3 bf16 pieces = full fp32 accuracy; 2 pieces measured no faster on H100 (KERNELS.md) and flip
    # ~5x more rounding ties, so 3 is the default
    split_mid = cfg.split_mid if cfg.split_mid is not None else 3
    exact = cfg.exact_codes if cfg.exact_codes is not None else False
    return split_in, split_mid, exact


def config_for(nb: int, dtype: torch.dtype, cfg: LaunchConfig | None, forward: bool = True,
               one_pass_ok: bool = True) -> LaunchConfig:
    """The caller's config, or the default.  The one-pass forward (two_pass=False) on 16-bit rows of
    ≥ 32 blocks prefers smaller tiles, more warps and programs (H100 sweep: 601 vs 402 GB/s at
    16384×2816 bf16).  `one_pass_ok=False` (codes output, rounded input): never pick it automatically."""
    if cfg is not None:
        if (forward and not cfg.two_pass and not interpreting() and dtype != torch.float32
                and triton.next_power_of_2(nb) >= 32 and cfg == LaunchConfig(two_pass=False)):
            return LaunchConfig(tile_blocks=32, num_warps=8, programs_per_sm=8, two_pass=False)
        return cfg
    if (forward and one_pass_ok and not interpreting() and dtype == torch.float32
            and triton.next_power_of_2(nb) <= 8):
        return _FWD_SHORT_FP32
    return default_config(forward)


def tile_rows(nb: int, cfg: LaunchConfig) -> tuple[int, int]:
    """(ROWS, NBP): rows per program and blocks per row padded to a power of two."""
    nbp = triton.next_power_of_2(nb)
    rows = max(1, cfg.tile_blocks // nbp)
    return rows, nbp


def check_2d(name: str, t: torch.Tensor, block: int) -> None:
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if t.dim() != 2:
        raise ValueError(f"{name} must be 2-D (M, K), got shape {tuple(t.shape)}; reshape(-1, K) first")
    if t.dtype not in SUPPORTED_DTYPES:
        raise TypeError(f"{name}.dtype={t.dtype} is not supported; use float32, float16 or bfloat16")
    if not t.is_contiguous():
        raise ValueError(f"{name} must be contiguous (call .contiguous())")
    if block not in SUPPORTED_BLOCKS:
        raise ValueError(f"block={block} must be one of {SUPPORTED_BLOCKS}")
    k = t.shape[1]
    if k == 0 or k % block:
        raise ValueError(f"{name}: K={k} must be a positive multiple of block={block} "
                         "(pick_block(K) gives the largest usable block)")
    if t.device.type != "cuda" and not interpreting():
        raise RuntimeError(f"{name} is on {t.device}: the Triton kernels need a CUDA tensor "
                           "(or TRITON_INTERPRET=1 for the CPU interpreter); use the torch reference")


def check_row_kernel(k: int, block: int) -> None:
    """The one-pass forward / row-tiled backward (LaunchConfig(two_pass=False)) need whole rows in
    registers; the default kernels do not."""
    if k // block > MAX_BLOCKS_PER_ROW:
        raise ValueError(f"K={k} is too long for the one-pass row kernels (at most {MAX_BLOCKS_PER_ROW} "
                         f"blocks of {block}); use the default two-pass LaunchConfig")


def check_group(k: int, group_size: int | None) -> None:
    """None (one grid per row) or a power of two >= 2 dividing K."""
    g = group_size
    if g is None:
        return
    if isinstance(g, bool) or not isinstance(g, int) or g < 2 or g & (g - 1) or k % g:
        raise ValueError(f"group_size={g!r} must be a power of two >= 2 dividing K={k}, or None (per row)")


def check_bits(bits: int, alpha: float) -> None:
    if not isinstance(bits, int) or not 1 <= bits <= 8:
        raise ValueError(f"bits={bits!r} must be an int in 1..8")
    if not alpha > 0:
        raise ValueError(f"alpha={alpha!r} must be > 0 (Gaussian clip multiple of σ)")


@triton.jit
def _hadamard_pm1(BLOCK: tl.constexpr, LOG2B: tl.constexpr):
    """Unnormalized Sylvester Hadamard (±1, fp32): H[i, j] = (−1)^popcount(i & j)."""
    i = tl.arange(0, BLOCK)[:, None]
    j = tl.arange(0, BLOCK)[None, :]
    a = i & j
    p = tl.zeros([BLOCK, BLOCK], dtype=tl.int32)
    for k in tl.static_range(LOG2B):
        p = p ^ ((a >> k) & 1)
    return 1.0 - 2.0 * p.to(tl.float32)


@triton.jit
def _hdot(a, h, hlow, SPLIT: tl.constexpr):
    """a @ h in fp32 for a ±1 matrix h (fp32) and its 16-bit copy `hlow` (a's dtype if SPLIT == 1,
    else bfloat16; hoisted out of the tile loop by the caller).  SPLIT as `split_in` in the doc."""
    if SPLIT == 0:
        acc = tl.dot(a.to(tl.float32), h, input_precision="ieee")
    elif SPLIT == 1:
        acc = tl.dot(a, hlow)
    elif SPLIT == 4:
        acc = tl.dot(a.to(tl.bfloat16), hlow)
    else:
        a32 = a.to(tl.float32)
        hi = a32.to(tl.bfloat16)
        acc = tl.dot(hi, hlow)
        r = a32 - hi.to(tl.float32)
        for _ in tl.static_range(SPLIT - 1):
            p = r.to(tl.bfloat16)
            acc = tl.dot(p, hlow, acc)
            r = r - p.to(tl.float32)
    return acc
