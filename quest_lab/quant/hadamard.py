"""Normalized Sylvester Hadamard matrices and their block-diagonal application along the last dim."""
from __future__ import annotations

import functools

import torch


def _is_pow2(n: int) -> bool:
    return isinstance(n, int) and n >= 1 and (n & (n - 1)) == 0


@functools.lru_cache(maxsize=32)
def _hadamard_f64(n: int) -> torch.Tensor:
    h = torch.ones(1, 1, dtype=torch.float64)
    while h.shape[0] < n:
        h = torch.cat([torch.cat([h, h], 1), torch.cat([h, -h], 1)], 0)
    return h / (n ** 0.5)


_DEVICE_CACHE: dict[tuple[int, torch.dtype, str], torch.Tensor] = {}


def hadamard_matrix(n: int, dtype: torch.dtype = torch.float32, device=None) -> torch.Tensor:
    """Normalized Sylvester Hadamard H (n × n, n a power of two): H = Hᵀ and H·Hᵀ = I.

    Cached per (n, dtype, device) so the training loop does not re-upload it every step.
    """
    if not _is_pow2(n):
        raise ValueError(f"Hadamard size n={n!r} must be a power of two (1, 2, 4, …)")
    key = (n, dtype, str(torch.device(device) if device is not None else "cpu"))
    h = _DEVICE_CACHE.get(key)
    if h is None:
        h = _DEVICE_CACHE[key] = _hadamard_f64(n).to(device=device, dtype=dtype)
    return h


def hadamard_block_for(k: int, max_block: int = 128) -> int:
    """Largest power of two ≤ `max_block` that divides `k`.

    K = 96 → 32, K = 384 → 128.  Odd K gives 1: a 1×1 Hadamard, i.e. no rotation at all (QuEST then
    degrades gracefully to Gaussian clipping + trust mask in the original basis).
    """
    if k < 1:
        raise ValueError(f"feature size K={k!r} must be >= 1")
    if not _is_pow2(max_block):
        raise ValueError(f"max_block={max_block!r} must be a power of two")
    block = 1
    while block * 2 <= max_block and k % (block * 2) == 0:
        block *= 2
    return block


def hadamard_transform(x: torch.Tensor, block: int) -> torch.Tensor:
    """x · blockdiag(H_block, …, H_block) along the last dim (K must be a multiple of `block`).

    The normalized Sylvester H is symmetric and orthogonal, so the same call also applies Hᵀ = H⁻¹.
    """
    k = x.shape[-1]
    if block == 1:
        return x
    if k % block:
        raise ValueError(f"last dim {k} is not a multiple of the Hadamard block {block}")
    h = hadamard_matrix(block, dtype=x.dtype, device=x.device)
    return (x.unflatten(-1, (k // block, block)) @ h).flatten(-2)
