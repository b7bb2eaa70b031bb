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

from quest_lab.kernels import lowp as kl
from quest_lab.kernels import quest as kq
from quest_lab.kernels._common import LaunchConfig

PTR = {torch.float32: "*fp32", torch.bfloat16: "*bf16", torch.float16: "*fp16", torch.int8: "*i8",
       torch.float8_e4m3fn: "*fp8e4nv"}
FWD_SIG = {"mask_ptr": "*u8", "scale_ptr": "*fp32", "M": "i32", "K": "i32", "NB": "i32", "alpha": "fp32",
           "trust": "fp32", "inv_sqrt_b": "fp32"}
CPU = torch.device("cpu")  # plans only ask the device for the SM count (1 off-GPU)
CONFIGS = (None, LaunchConfig(rows=16, pack=1), LaunchConfig(rows=16, fast_div=True),
           LaunchConfig(tile_blocks=16, two_pass=False))


def _compile(kernel, signature: dict, meta: dict, arch: int) -> None:
    meta = {name: value for name, value in meta.items() if name in kernel.arg_names}
    signature = dict(signature, **{name: "constexpr" for name in meta})
    triton.compile(ASTSource(kernel, signature, constexprs=meta), target=GPUTarget("cuda", arch, 32),
                   options={"num_warps": 4})


def compile_training_path(arch: int = 90) -> int:
    """What a bf16-autocast training step runs: fp32 input rounded to bf16 on load, x̂ written as bf16
    (fake quant) or as FP8 / int8 codes (low-precision GEMM), the dequantization and int8 epilogue."""
    n = 0
    for k, (out_dtype, mode), bits in itertools.product(
            (1024, 2816), ((torch.bfloat16, "rotated"), (torch.float8_e4m3fn, "codes"), (torch.int8, "codes"),
                           (torch.int8, "offset_codes")), (4, 8)):
        if (mode == "offset_codes") != (bits == 8) or (out_dtype == torch.float8_e4m3fn and bits > 4):
            continue
        kernel, meta, _, _ = kq._fwd_plan(k, torch.float32, bits, 128, True, kq.OUT_MODES[mode], "packed", None,
                                          CPU, True)
        _compile(kernel, {"x_ptr": "*fp32", "out_ptr": PTR[out_dtype], **FWD_SIG}, meta, arch)
        n += 1
    # group sizes inside a Hadamard block (issue 15): the two-pass kernel's SUBGROUP mode, rotated bf16
    # output (training) and de-rotated fp32 (the fp32 x̂·H split dot); groups >= block are a view
    for subgroup, (dtype, out_dtype, derot, rnd) in itertools.product(
            (32, 8), ((torch.float32, torch.bfloat16, False, True), (torch.float32, torch.float32, True, False))):
        kernel, meta, _, _ = kq._fwd_plan(1024, dtype, 4, 128, True, int(derot), "packed", None, CPU, rnd, subgroup)
        assert meta["SUBGROUP"] == subgroup
        _compile(kernel, {"x_ptr": PTR[dtype], "out_ptr": PTR[out_dtype], **FWD_SIG}, meta, arch)
        n += 1
    for code_dtype, (mult, off) in itertools.product((torch.int8, torch.float8_e4m3fn), ((1, 0), (2, 1))):
        _compile(kl._dequant_kernel, {"c_ptr": PTR[code_dtype], "s_ptr": "*fp32", "out_ptr": "*bf16", "n": "i32",
                                      "K": "i32"}, dict(MULT=mult, OFF=off, BLOCK=1024), arch)
        n += 1
    for ox, ow in ((0, 0), (1, 1)):
        _compile(kl._int_epilogue_kernel, {"p_ptr": "*i32", "rx_ptr": "*i32", "rw_ptr": "*i32", "sx_ptr": "*fp32",
                                           "sw_ptr": "*fp32", "out_ptr": "*bf16", "M": "i32", "N": "i32", "K": "i32"},
                 dict(MX=1 + ox, OX=ox, MW=1 + ow, OW=ow, BM=32, BN=128), arch)
        n += 1
    return n


def compile_all(arch: int = 90) -> int:
    n = compile_training_path(arch)
    for dtype, k, cfg, (had, derot) in itertools.product(
            (torch.float32, torch.bfloat16), (1024, 2816), CONFIGS, ((True, True), (True, False), (False, False))):
        if cfg is not None and not (had and derot):
            continue  # the alternative configs: the main path only (keeps this under ~1.5 min)
        for mask_format in ("packed", "bytes") if cfg is None else ("packed",):
            kernel, meta, _, _ = kq._fwd_plan(k, dtype, 4, 128, had, int(derot), mask_format, cfg, CPU)
            ptr = PTR[dtype]
            _compile(kernel, {"x_ptr": ptr, "out_ptr": ptr, **FWD_SIG}, meta, arch)
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
