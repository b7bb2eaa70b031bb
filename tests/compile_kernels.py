"""Compile every QuEST kernel variant for Hopper (sm_90) on the CPU, no GPU needed.

The interpreter tests run the kernels as Python; this runs Triton's real compiler (TTIR → TTGIR →
LLVM → PTX → cubin with the ptxas bundled in the triton wheel), so a change that only breaks the
compiled path fails CI too.  Run by tests/test_kernels.py::test_kernels_compile_for_sm90 in a
subprocess without TRITON_INTERPRET (the interpreter replaces the kernels' compile path).
"""
import itertools

import torch
import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource

from quest_lab.kernels import quest as kq
from quest_lab.kernels._common import LaunchConfig

PTR = {torch.float32: "*fp32", torch.bfloat16: "*bf16", torch.float16: "*fp16"}
CPU = torch.device("cpu")  # plans only ask the device for the SM count (1 off-GPU)
CONFIGS = (None, LaunchConfig(rows=16, pack=1), LaunchConfig(rows=16, fast_div=True),
           LaunchConfig(tile_blocks=16, two_pass=False))


def _compile(kernel, signature: dict, meta: dict, arch: int) -> None:
    meta = {name: value for name, value in meta.items() if name in kernel.arg_names}
    signature = dict(signature, **{name: "constexpr" for name in meta})
    triton.compile(ASTSource(kernel, signature, constexprs=meta), target=GPUTarget("cuda", arch, 32),
                   options={"num_warps": 4})


def compile_all(arch: int = 90) -> int:
    n = 0
    for dtype, k, cfg, (had, derot) in itertools.product(
            (torch.float32, torch.bfloat16), (1024, 2816), CONFIGS, ((True, True), (True, False), (False, False))):
        if cfg is not None and not (had and derot):
            continue  # the alternative configs: the main path only (keeps this under ~1.5 min)
        for mask_format in ("packed", "bytes") if cfg is None else ("packed",):
            kernel, meta, _, _ = kq._fwd_plan(k, dtype, 4, 128, had, derot, mask_format, cfg, CPU)
            ptr = PTR[dtype]
            _compile(kernel, {"x_ptr": ptr, "out_ptr": ptr, "mask_ptr": "*u8", "scale_ptr": "*fp32", "M": "i32",
                              "K": "i32", "NB": "i32", "alpha": "fp32", "trust": "fp32", "inv_sqrt_b": "fp32"},
                     meta, arch)
            n += 1
            for grad_rotated in (False, True):
                kernel, meta, _, _, flat = kq._bwd_plan(k, dtype, 128, had, grad_rotated, mask_format == "bytes",
                                                        cfg, CPU)
                shape = {"NBLK": "i32"} if flat else {"M": "i32", "K": "i32", "NB": "i32"}
                _compile(kernel, {"g_ptr": ptr, "mask_ptr": "*u8", "dx_ptr": ptr, **shape, "inv_sqrt_b": "fp32"},
                         meta, arch)
                n += 1
    return n


if __name__ == "__main__":
    print(f"compiled {compile_all()} kernel variants for sm_90")
