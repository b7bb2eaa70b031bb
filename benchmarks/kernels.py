"""Benchmark the fused QuEST Triton kernels (issue 6).

  python benchmarks/kernels.py            # GPU: correctness, tile sweep, GB/s, speedups
  (training steps: benchmarks/step.py; the calls a training step makes: benchmarks/training_paths.py)
  python benchmarks/kernels.py --smoke    # CPU (Triton interpreter, tiny shapes) or a quick GPU pass

Needs only torch + triton (+ numpy): `kernels/` is loaded as `quest_lab.kernels` from the checkout,
no install needed.  Ratios are measured within one run; timings are medians of triton's do_bench
(events, L2 flushed between repetitions).  --out FILE writes every number as JSON.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _load_kernels():
    """Import quest_lab and map kernels/ to quest_lab.kernels (as the installed package does)."""
    sys.path.insert(0, str(ROOT))
    import quest_lab  # noqa: F401  (light: logging only)

    try:
        import quest_lab.kernels as k  # installed (editable) checkout
        return k
    except ImportError:
        pass
    spec = importlib.util.spec_from_file_location(
        "quest_lab.kernels", ROOT / "kernels" / "__init__.py",
        submodule_search_locations=[str(ROOT / "kernels")])
    mod = importlib.util.module_from_spec(spec)
    sys.modules["quest_lab.kernels"] = mod
    spec.loader.exec_module(mod)
    return mod


ALPHA = {1: 0.7978845587, 2: 1.4935346200, 3: 2.0510683541, 4: 2.5139305786, 8: 3.8849386788}
NOMINAL_HBM = {"H100": 3.35e12, "H200": 4.8e12, "A100": 2.0e12}  # datasheet, bytes/s


def bench(fn, quick: bool) -> float:
    import triton.testing

    return float(triton.testing.do_bench(fn, warmup=10 if quick else 25, rep=30 if quick else 100,
                                         return_mode="median")) * 1e-3


def copy_bandwidth(quick: bool) -> float:
    import torch

    n = (256 if quick else 1024) * 2**20
    a = torch.empty(n, dtype=torch.uint8, device="cuda").random_()
    b = torch.empty_like(a)
    t = bench(lambda: b.copy_(a), quick)
    return 2 * n / t


def check_gpu(K, quick):
    """Correctness on the GPU against the fp64 reference: tie counts and backward error."""
    import torch

    rows = []
    for dtype in (torch.float32, torch.bfloat16):
        for bits in (2, 4):
            for k in (1024, 2816):
                x = torch.randn(4096, k, device="cuda").mul(torch.rand(4096, 1, device="cuda") + 0.1).to(dtype)
                q, m, d = K.quest_quantize_fwd(x, bits, ALPHA[bits])
                qr, mr, dr = K.quest_quantize_fwd_ref(x.double(), bits, ALPHA[bits])
                j = torch.round(q.double() / d.double()[:, None] + 0.5)
                jr = torch.round(qr / dr[:, None] + 0.5)
                ties = int((j != jr).sum())
                maxstep = int((j - jr).abs().max())
                mask_off = int((K.unpack_mask(m) != K.unpack_mask(mr)).sum())
                g = torch.randn_like(x)
                dx = K.quest_quantize_bwd(g, m)
                ref = K.quest_quantize_bwd_ref(g.double(), m)
                rel = float((dx.double() - ref).norm() / ref.norm())
                fq = K.quest_fake_quant(x, bits, ALPHA[bits])
                fr = K.quest_fake_quant_ref(x.double(), bits, ALPHA[bits])
                frel = float((fq.double() - fr).norm() / fr.norm())
                # other kernel variants must agree with the default one
                qb, mb, _ = K.quest_quantize_fwd(x, bits, ALPHA[bits], mask_format="bytes", out_dtype=torch.bfloat16)
                ql, ml, _ = K.quest_quantize_fwd(x, bits, ALPHA[bits], config=K.LaunchConfig(two_pass=False))
                qp, mp, _ = K.quest_quantize_fwd(x, bits, ALPHA[bits], config=K.LaunchConfig(pack=1))
                qf, mf, _ = K.quest_quantize_fwd(x, bits, ALPHA[bits], config=K.LaunchConfig(fast_div=True))
                variants_ok = (f"bytes={torch.equal(mb.bool(), K.unpack_mask(m))},"
                               f"out_bf16={torch.equal(qb, q.to(torch.bfloat16))},"
                               f"dotpack={torch.equal(mp, m) and torch.equal(qp, q)},"
                               f"bwd_bytes={torch.equal(K.quest_quantize_bwd(g, mb), dx)},"
                               f"one_pass_mask_bytes_off={int((ml != m).sum())},"
                               f"fastdiv_values_off={int((qf != q).sum())}")  # vs default (one-pass for short fp32: σ differs by ulps)
                rows.append(dict(dtype=str(dtype).split(".")[-1], bits=bits, K=k, n=x.numel(), code_ties=ties,
                                 max_step_diff=maxstep, mask_diff=mask_off, bwd_rel=rel, fake_rel=frel,
                                 variants_ok=variants_ok))
                if quick:
                    break
    print("\n# correctness vs float64 reference (4096 rows)")
    print(f"{'dtype':9}{'bits':>5}{'K':>6}{'code ties':>11}{'max |Δj|':>10}{'mask diff':>11}{'bwd rel':>10}{'fq rel':>10}")
    for r in rows:
        print(f"{r['dtype']:9}{r['bits']:>5}{r['K']:>6}{r['code_ties']:>11}{r['max_step_diff']:>10}"
              f"{r['mask_diff']:>11}{r['bwd_rel']:>10.1e}{r['fake_rel']:>10.1e}  {r['variants_ok']}")
    return rows


def _desc(cfg):
    if cfg is None:
        return "auto"
    return (f"{'2p' if cfg.two_pass else '1p'} r{cfg.rows} tb{cfg.tile_blocks} w{cfg.num_warps} "
            f"p{cfg.programs_per_sm} s{cfg.num_stages}" + (" dotpack" if cfg.pack else "")
            + (" fastdiv" if cfg.fast_div else ""))


def kernel_throughput(K, peak, shapes, configs, quick):
    """GB/s of forward (rotated / de-rotated) and backward kernels, best launch config per shape;
    plus the previous one-pass design and the byte-mask format at the default config."""
    import torch

    from quest_lab.quant import quest_quantize  # torch reference path (what backend="torch" runs)

    out = []
    for (m, k, dtype) in shapes:
        es = torch.finfo(dtype).bits // 8
        x = torch.randn(m, k, device="cuda", dtype=dtype)
        g = torch.randn(m, k, device="cuda", dtype=dtype)
        fwd_bytes = 2 * m * k * es + m * k // 8 + 4 * m
        bwd_bytes = 2 * m * k * es + m * k // 8
        best = {}
        one_pass = K.LaunchConfig(two_pass=False)
        extra = {}
        for label, cfg, fmt in (("one-pass", one_pass, "packed"), ("default", None, "packed"), ("bytes", None, "bytes")):
            tf = bench(lambda: K.quest_quantize_fwd(x, 4, ALPHA[4], derotate=True, config=cfg, mask_format=fmt), quick)
            _, mask, _ = K.quest_quantize_fwd(x, 4, ALPHA[4], config=cfg, mask_format=fmt)
            tb = bench(lambda: K.quest_quantize_bwd(g, mask, config=cfg), quick)
            fb = fwd_bytes + (m * k - m * k // 8 if fmt == "bytes" else 0)
            bb = bwd_bytes + (m * k - m * k // 8 if fmt == "bytes" else 0)
            extra[label] = dict(fwd_gbs=fb / tf / 1e9, fwd_pct=100 * fb / tf / peak, fwd_t=tf,
                                bwd_gbs=bb / tb / 1e9, bwd_pct=100 * bb / tb / peak, bwd_t=tb)
        for cfg in configs:
            try:
                tf = bench(lambda: K.quest_quantize_fwd(x, 4, ALPHA[4], derotate=True, config=cfg), quick)
                _, mask, _ = K.quest_quantize_fwd(x, 4, ALPHA[4], config=cfg)
                tb = bench(lambda: K.quest_quantize_bwd(g, mask, config=cfg), quick)
                tr = bench(lambda: K.quest_quantize_fwd(x, 4, ALPHA[4], derotate=False, config=cfg), quick)
                if dtype != torch.float32 and cfg is not None and cfg.split_in is not None:
                    continue  # split modes only differ for fp32
            except Exception as exc:  # a config that does not compile / fit: report, keep going
                print(f"  config {cfg} failed on {m}x{k} {dtype}: {type(exc).__name__}: {str(exc)[:120]}")
                continue
            for name, t in (("fwd", tf), ("bwd", tb), ("fwd_rot", tr)):
                if name not in best or t < best[name][0]:
                    best[name] = (t, cfg)
        # torch reference: forward of the quant engineer's path, and forward+backward
        xr = x.detach().clone().requires_grad_(True)
        t_ref_f = bench(lambda: quest_quantize(x, 4), quick)
        t_ref_fb = bench(lambda: quest_quantize(xr, 4)[0].backward(g), quick)
        xt = x.detach().clone().requires_grad_(True)
        t_tri_fb = bench(lambda: K.quest_fake_quant(xt, 4, ALPHA[4]).backward(g), quick)
        row = dict(M=m, K=k, dtype=str(dtype).split(".")[-1], t_ref_fwd=t_ref_f, t_ref_fwdbwd=t_ref_fb,
                   t_triton_fwdbwd=t_tri_fb, variants=extra)
        for name, (t, cfg) in best.items():
            nbytes = bwd_bytes if name == "bwd" else fwd_bytes
            desc = _desc(cfg)
            row[name] = dict(t=t, gbs=nbytes / t / 1e9, pct_peak=100 * nbytes / t / peak, cfg=desc)
        row["speedup_fwd"] = t_ref_f / best["fwd"][0] if "fwd" in best else float("nan")
        row["speedup_fwdbwd"] = t_ref_fb / t_tri_fb
        out.append(row)
        f, b = row.get("fwd", {}), row.get("bwd", {})
        print(f"  {m}x{k} {row['dtype']}: best fwd {f.get('gbs', 0):.0f} GB/s ({f.get('cfg')}), bwd {b.get('gbs', 0):.0f}"
              f" ({b.get('cfg')}); " + "; ".join(f"{l} fwd {v['fwd_gbs']:.0f} bwd {v['bwd_gbs']:.0f}"
                                                 for l, v in extra.items()), flush=True)
    return out


def smoke_cpu(K) -> None:
    import torch

    x = torch.randn(19, 256)
    q, m, d = K.quest_quantize_fwd(x, 4, ALPHA[4])
    qr, mr, dr = K.quest_quantize_fwd_ref(x, 4, ALPHA[4])
    g = torch.randn_like(x)
    rel = float((K.quest_quantize_bwd(g, m) - K.quest_quantize_bwd_ref(g, m)).norm() / g.norm())
    print(f"interpreter smoke: fwd max |x̂ − ref| = {float((q - qr).abs().max()):.2e}, "
          f"mask equal = {bool(torch.equal(m, mr))}, bwd rel = {rel:.1e}")
    print("no CUDA device: GPU throughput / speedup / training-step parts skipped")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--smoke", action="store_true", help="tiny/quick run (CPU interpreter if no GPU)")
    ap.add_argument("--out", default=None, help="write all results as JSON here")
    ap.add_argument("--no-sweep", action="store_true", help="time only the default launch config")
    args = ap.parse_args()
    import torch

    if not torch.cuda.is_available():
        os.environ.setdefault("TRITON_INTERPRET", "1")
        smoke_cpu(_load_kernels())
        return 0
    K = _load_kernels()
    quick = args.smoke
    name = torch.cuda.get_device_name()
    copy_bw = copy_bandwidth(quick)
    nominal = next((v for k_, v in NOMINAL_HBM.items() if k_ in name), None)
    peak = copy_bw
    print(f"device: {name}; torch {torch.__version__}; measured copy bandwidth {copy_bw / 1e9:.0f} GB/s"
          + (f" (datasheet {nominal / 1e9:.0f} GB/s)" if nominal else ""))
    results = dict(device=name, torch=torch.__version__, copy_gbs=copy_bw / 1e9,
                   nominal_gbs=nominal / 1e9 if nominal else None)
    results["correctness"] = check_gpu(K, quick)
    C = K.LaunchConfig
    if quick:
        configs = [None]  # automatic (config_for)
        shapes = [(4096, 1024, torch.bfloat16)]
    else:
        # fwd uses `rows`, bwd `tile_blocks`: one sweep serves both (best picked separately)
        # (run 5 swept rows {16,32} x warps {4,8} x programs/SM {2,4} (+ stages 3, dot packing))
        configs = [C(rows=32, tile_blocks=64, num_warps=4, programs_per_sm=2, num_stages=3),
                   C(rows=32, tile_blocks=64, num_warps=4, programs_per_sm=2, num_stages=3, fast_div=True),
                   C(rows=16, tile_blocks=32, num_warps=4, programs_per_sm=4),
                   C(rows=16, tile_blocks=32, num_warps=4, programs_per_sm=4, num_stages=3, fast_div=True),
                   C(rows=32, tile_blocks=64, num_warps=8, programs_per_sm=2),
                   C(rows=64, tile_blocks=128, num_warps=8, programs_per_sm=2, num_stages=3),
                   C(rows=32, tile_blocks=64, num_warps=4, programs_per_sm=4)]
        shapes = [(16384, 1024, torch.bfloat16), (16384, 2816, torch.bfloat16),
                  (16384, 1024, torch.float32), (16384, 2816, torch.float32), (2816, 1024, torch.float32)]
        if args.no_sweep:
            configs = [None]  # automatic per-shape choice (config_for)
    x = torch.randn(64, 1024, device="cuda")
    w = torch.randn(64, 1024, device="cuda")
    xg = x.clone().requires_grad_(True)
    for label, fn in (("quest_quantize_fwd", lambda: K.quest_quantize_fwd(x, 4, ALPHA[4])),
                      ("quest_fake_quant_rotated (autograd)", lambda: K.quest_fake_quant_rotated(xg, 4, ALPHA[4])),
                      ("torch.nn.functional.linear", lambda: torch.nn.functional.linear(x, w))):
        for _ in range(20):
            fn()
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(200):
            fn()
        torch.cuda.synchronize()
        results[f"host_us_{label}"] = us = (time.perf_counter() - t0) / 200 * 1e6
        print(f"host time per call, tiny shape (launch overhead): {label}: {us:.0f} us")
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=1, default=str))
    t0 = time.time()
    results["throughput"] = rows = kernel_throughput(K, peak, shapes, configs, quick)
    print(f"\n# kernels (bits=4; GB/s counts x read + x̂ written + packed mask + scale; % of measured copy BW)"
          f"  [{time.time() - t0:.0f}s]")
    print(f"{'shape':>14} {'dtype':9}{'fwd GB/s':>9}{'%':>5}{'bwd GB/s':>9}{'%':>5}{'rot GB/s':>9}"
          f"{'fwd×ref':>8}{'f+b×ref':>8}  best cfg (fwd | bwd)")
    for r in rows:
        f, b, ro = r.get("fwd", {}), r.get("bwd", {}), r.get("fwd_rot", {})
        print(f"{r['M']:>7}x{r['K']:<6} {r['dtype']:9}{f.get('gbs', 0):>9.0f}{f.get('pct_peak', 0):>5.0f}"
              f"{b.get('gbs', 0):>9.0f}{b.get('pct_peak', 0):>5.0f}{ro.get('gbs', 0):>9.0f}"
              f"{r['speedup_fwd']:>8.1f}{r['speedup_fwdbwd']:>8.1f}  {f.get('cfg')} | {b.get('cfg')}")
    print("\n# default config per variant: GB/s (% of copy BW); one-pass = the previous one-pass/row-tiled kernels;"
          " bytes = one mask byte per element (its bytes counted)")
    for r in rows:
        print(f"{r['M']:>7}x{r['K']:<6} {r['dtype']:9}" + "  ".join(
            f"{l}: fwd {v['fwd_gbs']:.0f} ({v['fwd_pct']:.0f}%) bwd {v['bwd_gbs']:.0f} ({v['bwd_pct']:.0f}%)"
            for l, v in r["variants"].items()))
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
