"""Shared check for tests that compare two implementations of one layer (not a test module)."""
from __future__ import annotations

import torch


def assert_same_layer(ref: torch.nn.Module, other: torch.nn.Module, x: torch.Tensor, tol: float = 1e-4) -> None:
    """`other` matches `ref` (same weights loaded) on x: output, input gradient and weight gradient,
    each within atol = rtol = tol."""
    xr, xo = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    yr, yo = ref(xr), other(xo)
    torch.testing.assert_close(yo, yr, atol=tol, rtol=tol)
    yr.sum().backward()
    yo.sum().backward()
    torch.testing.assert_close(xo.grad, xr.grad, atol=tol, rtol=tol)
    torch.testing.assert_close(other.weight.grad, ref.weight.grad, atol=tol, rtol=tol)
