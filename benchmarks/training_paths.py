"""GPU numerics (asserted) and microbenchmarks of exactly the kernel calls a bf16-autocast QuEST training
step makes (issue 12), at the 100M model's shapes (M = 32×512 tokens, d = 1024, SwiGLU hidden 2816).

  python benchmarks/training_paths.py --out paths.json     # GPU
  python benchmarks/training_paths.py --smoke              # CPU interpreter: numerics on tiny shapes only

Inputs as training sees them: qkv / gate_up inputs are fp32 (RMSNorm of the fp32 residual stream),
o_proj / down_proj inputs bf16; weights fp32 (quantized as bf16(W)); gradients of the rotated operands
bf16 (from the bf16 GEMMs) and ∂x written in the input's dtype.  Paths timed (triton do_bench: CUDA
events, L2 flushed; output buffers allocated by the wrappers as in training):
  fake fwd   quantize → bf16 x̂ (rotated), what gemm="fake" runs before a bf16 GEMM
  codes fwd  quantize → FP8 codes + Δ/2, what gemm="lowp" runs before the FP8 GEMM
  bwd        masked Hadamard backward of a pre-rotated bf16 gradient (both paths)
  dequant    FP8 codes → bf16 x̂ (lowp backward)
  GEMMs      F.linear bf16 vs torch._scaled_mm FP8 row-wise, for the four layer shapes
  host time  per layer call at a tiny shape: eager autograd.Function vs eager torch.library op
             (kernels/ops.py) vs torch.compile (GPU: mode="reduce-overhead", CUDA graphs); also on the
             CPU with --smoke, where the interpreter dominates (it only shows the code runs)
Numerics (each an assertion; the script exits 1 when one fails, after printing all of them): codes vs
the float64 reference on bf16(x) (mismatches only at rounding ties, at most one step), trust mask
mismatches, the FP8 GEMM vs the float64 product of the codes, lowp vs fake-quant layer outputs against
the exact product, and the gradients of the two paths.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TOKENS, D, H = 32 * 512, 1024, 2816
LAYERS = {"qkv": (D, 3 * D, "fp32"), "o": (D, D, "bf16"), "gate_up": (D, 2 * H, "fp32"), "down": (H, D, "bf16")}


def _inputs(m, k, dtype, seed):
    import torch

    g = torch.Generator(device="cuda" if torch.cuda.is_available() else "cpu").manual_seed(seed)
    dev = g.device
    x = torch.randn(m, k, device=dev, generator=g) * (torch.rand(m, 1, device=dev, generator=g) * 3 + 0.1)
    x[:, :3] += 4.0
    return x.to(dtype)


def numerics(m: int, quick: bool) -> list[dict]:
    """Assert-style checks; returns one record per case with `ok`."""
    import torch
    import torch.nn.functional as F

    from quest_lab.kernels import quest_fake_quant_rotated, quest_quantize_bwd, quest_quantize_bwd_ref, unpack_mask
    from quest_lab.kernels.lowp import code_format_for, quest_lowp_linear
    from quest_lab.kernels.quest import code_mode, quest_quantize_codes
    from quest_lab.kernels.reference import quest_codes_ref, quest_lowp_linear_ref
    from quest_lab.quant.gaussian import gaussian_alpha

    cuda = torch.cuda.is_available()
    rows = []
    for k, dtype, bits in ((1024, torch.float32, 4), (1024, torch.bfloat16, 4), (2816, torch.bfloat16, 4),
                           (1024, torch.float32, 2), (2816, torch.bfloat16, 8)):
        if quick:
            k = 256
        alpha = gaussian_alpha(bits)
        side = (bits, alpha, alpha / (2**bits - 1))
        fmt = code_format_for(bits, bits)
        code_dtype = torch.float8_e4m3fn if fmt == "fp8" else torch.int8
        mode = code_mode(bits, code_dtype)
        x = _inputs(m, k, dtype, seed=k + bits)
        c, mk, s = quest_quantize_codes(x, *side, code_dtype=code_dtype, round_input=True)
        cr, mr, sr = quest_codes_ref(x.to(torch.bfloat16).double(), *side, mode=mode)
        dj = (c.double() - cr.double()).abs() / (2 if mode == "codes" else 1)
        ties, max_step = int((dj > 0).sum()), float(dj.max())
        mask_off = int((unpack_mask(mk) != unpack_mask(mr)).sum())
        scale_rel = float(((s.double() - sr) / sr).abs().max())
        # a layer: lowp (codes GEMM) and fake (bf16 GEMM on x̂) against the exact float64 product
        n = 3 * 1024 if not quick else 128
        w = (_inputs(n, k, torch.float32, seed=7) * 0.02).requires_grad_(True)
        xa = x.detach().clone().requires_grad_(True)
        xb = x.detach().clone().requires_grad_(True)
        wb = w.detach().clone().requires_grad_(True)
        out_dt = torch.bfloat16 if cuda else torch.float32
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda):
            lowp = quest_lowp_linear(xa, w, None, side, side, fmt=fmt, out_dtype=out_dt, round_input=True)
            fake = F.linear(quest_fake_quant_rotated(xb, *side, out_dtype=out_dt, round_input=True),
                            quest_fake_quant_rotated(wb, *side, out_dtype=out_dt, round_input=True))
        exact = quest_lowp_linear_ref(x.float(), w.detach(), side, side, round_input=True)
        nrm = float(exact.norm())
        err_lowp = float((lowp.detach().double() - exact).norm()) / nrm
        err_fake = float((fake.detach().double() - exact).norm()) / nrm
        g = torch.randn_like(lowp)
        lowp.backward(g)
        fake.backward(g)
        dx_rel = float((xa.grad.double() - xb.grad.double()).norm() / xb.grad.double().norm())
        dw_rel = float((w.grad.double() - wb.grad.double()).norm() / wb.grad.double().norm())
        # the one-dot backward of a pre-rotated 16-bit gradient vs float64
        gr = _inputs(m, k, torch.bfloat16, seed=11)
        dx = quest_quantize_bwd(gr, mk, grad_rotated=True, out_dtype=torch.float32)
        dref = quest_quantize_bwd_ref(gr.double(), mk, grad_rotated=True)
        bwd_rel = float((dx.double() - dref).norm() / dref.norm())
        n_el = x.numel()
        checks = {
            "ties<=1e-4": ties <= max(2, n_el * 1e-4), "max_step<=1": max_step <= 1,
            "mask_off<=1e-4": mask_off <= max(2, n_el * 1e-4), "scale_rel<=2e-6": scale_rel <= 2e-6,
            # the lowp forward rounds once at the end: at least as exact as the bf16 fake-quant GEMM
            "lowp_err<=fake_err+1e-4": err_lowp <= err_fake + 1e-4,
            "lowp_err<=4e-3": err_lowp <= 4e-3,
            "grads_equal(rel<=1e-2)": dx_rel <= 1e-2 and dw_rel <= 1e-2,  # bf16 GEMMs, maybe other algorithms
            "bwd_rel<=1e-2": bwd_rel <= (1e-2 if cuda else 1e-5),
        }
        rows.append(dict(K=k, dtype=str(dtype).split(".")[-1], bits=bits, fmt=fmt, n=n_el, code_ties=ties,
                         max_step=max_step, mask_off=mask_off, scale_rel=scale_rel, err_lowp=err_lowp,
                         err_fake=err_fake, dx_rel=dx_rel, dw_rel=dw_rel, bwd_rel=bwd_rel,
                         failed=[c for c, ok in checks.items() if not ok]))
        if quick:
            break
    return rows


def _configs():
    from quest_lab.kernels import LaunchConfig as C

    return {"r32w4p2s3 (default)": C(rows=32, num_warps=4, programs_per_sm=2, num_stages=3),
            "r32w4p2s3-exactdiv": C(rows=32, num_warps=4, programs_per_sm=2, num_stages=3, fast_div=False),
            "r64w4p2s3": C(rows=64, num_warps=4, programs_per_sm=2, num_stages=3),
            "r64w8p2s3": C(rows=64, num_warps=8, programs_per_sm=2, num_stages=3),
            "r64w8p1s2": C(rows=64, num_warps=8, programs_per_sm=1, num_stages=2)}


def microbench(quick: bool) -> list[dict]:
    import torch
    import torch.nn.functional as F
    import triton.testing

    from quest_lab.kernels import quest_quantize_bwd, quest_quantize_fwd
    from quest_lab.kernels.lowp import dequantize_codes, lowp_gemm
    from quest_lab.kernels.quest import quest_quantize_codes
    from quest_lab.quant.gaussian import gaussian_alpha

    def bench(fn):
        return float(triton.testing.do_bench(fn, warmup=10 if quick else 25, rep=30 if quick else 100,
                                             return_mode="median")) * 1e-3

    configs = _configs()
    a4 = gaussian_alpha(4)
    fp8 = torch.float8_e4m3fn
    rows = []
    m = TOKENS if not quick else 2048
    for name, (k, n, in_dt) in LAYERS.items():
        dt = torch.float32 if in_dt == "fp32" else torch.bfloat16
        es = 4 if dt == torch.float32 else 2
        x = _inputs(m, k, dt, seed=1)
        w = _inputs(n, k, torch.float32, seed=2) * 0.02
        rnd = dt == torch.float32
        t_fake = bench(lambda: quest_quantize_fwd(x, 4, a4, out_dtype=torch.bfloat16, round_input=rnd))
        t_codes = bench(lambda: quest_quantize_codes(x, 4, a4, code_dtype=fp8, round_input=rnd))
        cfg_us = {}  # the codes forward under alternative launch settings (default: rows 32, fast_div)
        for label, cfg in configs.items():
            try:
                cfg_us[label] = bench(lambda: quest_quantize_codes(x, 4, a4, code_dtype=fp8, round_input=rnd,
                                                                   config=cfg)) * 1e6
            except Exception as exc:  # a config that does not compile: report it, keep going
                cfg_us[label] = f"{type(exc).__name__}: {str(exc)[:100]}"
        cx, mx, sx = quest_quantize_codes(x, 4, a4, code_dtype=fp8, round_input=rnd)
        cw, mw, sw = quest_quantize_codes(w, 4, a4, code_dtype=fp8, round_input=True)
        g = _inputs(m, k, torch.bfloat16, seed=3)
        t_bwd = bench(lambda: quest_quantize_bwd(g, mx, grad_rotated=True, out_dtype=dt))
        t_deq = bench(lambda: dequantize_codes(cx, sx, "codes", torch.bfloat16))
        xh = dequantize_codes(cx, sx, "codes", torch.bfloat16)
        wh = dequantize_codes(cw, sw, "codes", torch.bfloat16)
        t_gemm_bf16 = bench(lambda: F.linear(xh, wh))
        t_gemm_fp8 = bench(lambda: lowp_gemm(cx, sx, cw, sw))
        # bytes each kernel must move (read input + write outputs + mask + scales)
        fwd_fake_b = m * k * (es + 2) + m * k // 8 + 4 * m
        fwd_codes_b = m * k * (es + 1) + m * k // 8 + 4 * m
        bwd_b = m * k * (2 + es) + m * k // 8
        deq_b = m * k * 3 + 4 * m
        flops = 2 * m * k * n
        rec = dict(layer=name, M=m, K=k, N=n, input=in_dt,
                   fake_fwd_us=t_fake * 1e6, fake_fwd_gbs=fwd_fake_b / t_fake / 1e9,
                   codes_fwd_us=t_codes * 1e6, codes_fwd_gbs=fwd_codes_b / t_codes / 1e9,
                   bwd_us=t_bwd * 1e6, bwd_gbs=bwd_b / t_bwd / 1e9,
                   dequant_us=t_deq * 1e6, dequant_gbs=deq_b / t_deq / 1e9,
                   gemm_bf16_us=t_gemm_bf16 * 1e6, gemm_bf16_tflops=flops / t_gemm_bf16 / 1e12,
                   gemm_fp8_us=t_gemm_fp8 * 1e6, gemm_fp8_tflops=flops / t_gemm_fp8 / 1e12, codes_fwd_configs_us=cfg_us)
        rows.append(rec)
        print(f"  {name:8} {m}x{k}->{n} ({in_dt} in): fake fwd {rec['fake_fwd_us']:.0f} us ({rec['fake_fwd_gbs']:.0f} GB/s)"
              f" | codes fwd {rec['codes_fwd_us']:.0f} us ({rec['codes_fwd_gbs']:.0f} GB/s) | bwd {rec['bwd_us']:.0f} us"
              f" ({rec['bwd_gbs']:.0f} GB/s) | dequant {rec['dequant_us']:.0f} us | GEMM bf16 {rec['gemm_bf16_us']:.0f} us"
              f" ({rec['gemm_bf16_tflops']:.0f} TFLOP/s) vs fp8 {rec['gemm_fp8_us']:.0f} us "
              f"({rec['gemm_fp8_tflops']:.0f} TFLOP/s)\n           codes fwd by launch config (us): "
              + ", ".join(f"{k} {v:.0f}" if isinstance(v, float) else f"{k} {v}" for k, v in cfg_us.items()),
              flush=True)
    return rows


def host_overhead(quick: bool = False) -> dict:
    """Host time per call at a tiny shape (launch-bound): the layer paths a QuantLinear runs, eager through
    the autograd.Functions (the default), eager through the torch.library custom ops (kernels/ops.py,
    what torch.compile traces), and the layer under torch.compile (GPU: inductor with CUDA graphs,
    mode="reduce-overhead"; CPU: aot_eager).  "fwd" times the forward alone, "fwd+bwd" forward and
    backward.  On the CPU (--smoke) the Triton interpreter dominates: the numbers only show the code runs."""
    import time

    import torch
    import torch.nn.functional as F

    from quest_lab.kernels import ops as kops
    from quest_lab.kernels import quest_fake_quant_rotated
    from quest_lab.kernels.lowp import quest_lowp_linear
    from quest_lab.quant.gaussian import gaussian_alpha

    cuda = torch.cuda.is_available()
    dev = "cuda" if cuda else "cpu"
    a4 = gaussian_alpha(4)
    side = (4, a4, a4 / 15)
    m, k = (64, 1024) if cuda else (16, 128)
    x = torch.randn(m, k, device=dev, requires_grad=True)
    w = torch.randn(k if cuda else 32, k, device=dev, requires_grad=True)
    odt = torch.bfloat16 if cuda else torch.float32

    def fake():
        return F.linear(quest_fake_quant_rotated(x, *side, out_dtype=odt, round_input=True),
                        quest_fake_quant_rotated(w, *side, out_dtype=odt, round_input=True))

    def lowp():
        return quest_lowp_linear(x, w, None, side, side, fmt="fp8", out_dtype=odt)

    def eager_ops(fn):
        def run():
            kops.EAGER_OPS = True
            try:
                return fn()
            finally:
                kops.EAGER_OPS = False
        return run

    def compiled(fn):
        torch._dynamo.reset()
        if cuda:
            return torch.compile(fn, fullgraph=True, mode="reduce-overhead")
        return torch.compile(fn, fullgraph=True, backend="aot_eager")

    calls = {"fake layer (2 quantizers + F.linear)": fake, "lowp layer (quest_lowp_linear)": lowp}
    if cuda:
        calls["F.linear bf16"] = lambda: F.linear(x.to(torch.bfloat16), w.to(torch.bfloat16))
    warm, reps = (20, 200) if cuda and not quick else (2, 3)
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    out = {}
    for label, fn in calls.items():
        variants = {"eager Function": fn}
        if "quest" in label or "quantizers" in label:
            variants["eager op"] = eager_ops(fn)
            variants["compiled"] = None  # built below (one compile per layer)
        for vname, vfn in variants.items():
            try:
                if vfn is None:
                    vfn = compiled(fn)
                for what, call in (("fwd", vfn), ("fwd+bwd", lambda f=vfn: f().float().sum().backward())):
                    if what == "fwd" and vname == "compiled" and cuda:
                        continue  # a cudagraph forward without its backward keeps pending state; time fwd+bwd
                    for _ in range(warm):
                        call()
                    sync()
                    t0 = time.perf_counter()
                    for _ in range(reps):
                        call()
                    sync()
                    key = f"{label} | {vname} | {what}"
                    out[key] = (time.perf_counter() - t0) / reps * 1e6
                    print(f"  host time per call: {key}: {out[key]:.0f} us", flush=True)
            except Exception as exc:  # report, keep going (e.g. a compile failure on a new torch)
                out[f"{label} | {vname}"] = f"{type(exc).__name__}: {str(exc)[:200]}"
                print(f"  host time per call: {label} | {vname}: FAILED {out[f'{label} | {vname}']}", flush=True)
    x.grad = w.grad = None
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    import torch

    cuda = torch.cuda.is_available()
    if not cuda:
        os.environ.setdefault("TRITON_INTERPRET", "1")
    quick = args.smoke or not cuda
    res = dict(device=torch.cuda.get_device_name() if cuda else "cpu", torch=torch.__version__)
    print(f"device: {res['device']}; torch {torch.__version__}")
    res["numerics"] = rows = numerics(4096 if cuda and not quick else 64, quick)
    print("\n# numerics vs float64 (codes of bf16(x); layer outputs vs the exact product of the codes)")
    for r in rows:
        print(f"  K={r['K']} {r['dtype']} b{r['bits']} {r['fmt']}: ties {r['code_ties']}/{r['n']} (max step "
              f"{r['max_step']:.0f}), mask off {r['mask_off']}, Δ rel {r['scale_rel']:.1e}, layer err lowp "
              f"{r['err_lowp']:.2e} vs fake {r['err_fake']:.2e}, grad rel dx {r['dx_rel']:.1e} dW {r['dw_rel']:.1e}, "
              f"bwd rel {r['bwd_rel']:.1e}  {'OK' if not r['failed'] else 'FAILED: ' + ', '.join(r['failed'])}")
    if args.out:
        Path(args.out).write_text(json.dumps(res, indent=1))
    if cuda:
        print("\n# microbenchmarks (median, us)")
        res["micro"] = microbench(quick)
    print("\n# host time per call (eager autograd.Function vs eager custom op vs torch.compile)"
          + ("" if cuda else "; CPU interpreter: not a host-overhead number"))
    res["host_us"] = host_overhead(quick)
    if args.out:
        Path(args.out).write_text(json.dumps(res, indent=1))
    failed = [r for r in rows if r["failed"]]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
