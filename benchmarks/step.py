"""Interleaved training-step benchmark: BF16 vs W4A4 QuEST (fake-quant GEMM) vs W4A4 QuEST (low-precision
FP8 GEMM on the codes), on one warm GPU (issue 12).

  python benchmarks/step.py --sizes 100M 200M --out step.json     # GPU
  python benchmarks/step.py --smoke                               # CPU: tiny model, 2 rounds (CI smoke)
  python benchmarks/step.py --compile reduce-overhead             # the same, every model torch.compile'd

Every variant's model and optimizer are built once; then R rounds each time every variant for S steps
(CUDA events around the S steps), the variant order rotating from round to round (ABC, BCA, CAB, …) so
no variant always runs first or last.  Reported: per-variant median step time with its min–max over
rounds, and the per-round ratio to BF16 (median and min–max) — a ratio measured in the same round on
the same warm machine.  The step is `train()`'s: bf16 autocast forward, fp32 cross-entropy,
`loss.item()`, backward, grad-norm clip 1.0, fused AdamW.  One extra step per variant under
torch.profiler splits GPU time into kernel categories (where the limit is).
"""
from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# kernel-name patterns → category, first match wins (CUDA kernel names from cuBLAS/cuDNN/Triton/torch)
CATEGORIES = (
    ("quest kernels", r"_quest_|_dequant_kernel|_int_epilogue"),
    ("gemm fp8/int8", r"f8|fp8|e4m3|_int_mm|igemm|i8i8|imma"),
    ("gemm", r"gemm|cutlass|sm90_xmma|nvjet|matmul|splitK|xmma"),
    ("attention", r"flash|fmha|attention|sdpa"),
    ("cross-entropy", r"softmax|nll|cross_entropy|log_softmax"),
    ("optimizer", r"adam|multi_tensor|foreach|norm_kernel|clip"),
)

VARIANTS = {  # label -> QuantConfig kwargs
    "bf16": dict(),
    "w4a4_fake": dict(name="quest", w_bits=4, a_bits=4, backend="triton", gemm="fake"),
    "w4a4_lowp": dict(name="quest", w_bits=4, a_bits=4, backend="triton", gemm="lowp"),
}


def categorize(name: str) -> str:
    for cat, pat in CATEGORIES:
        if re.search(pat, name, re.IGNORECASE):
            return cat
    return "other (elementwise, norms, casts)"


def build(size, variant, vocab, seq, device):
    import torch

    from quest_lab.model import build_model
    from quest_lab.quant import QuantConfig
    from quest_lab.train import make_optimizer

    torch.manual_seed(0)
    model = build_model(size, QuantConfig(**VARIANTS[variant]), vocab_size=vocab, seq_len=seq, device=device)
    opt = make_optimizer(model, 1e-4, 0.1, fused=device.type == "cuda")
    return model, opt


def compile_model(model, how: str):
    """`--compile`: "" none; "aot_eager" (the backend: traces through the quest_lab ops, no codegen; what
    the CPU can check); else an inductor mode ("default", "reduce-overhead" = CUDA graphs, …)."""
    import torch

    if not how:
        return model
    if how == "aot_eager":
        return torch.compile(model, backend="aot_eager")
    return torch.compile(model, mode=how)


def make_step(model, opt, x, y, device):
    import torch
    import torch.nn.functional as F

    def step() -> float:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            logits = model(x)
        loss = F.cross_entropy(logits.float().flatten(0, 1), y.flatten())
        val = loss.item()  # train() reads the loss every step (divergence check)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        return val

    return step


def time_steps(step, n, device) -> float:
    """Mean seconds per step over n steps (CUDA events on GPU, perf_counter on CPU)."""
    import torch

    if device.type == "cuda":
        s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        torch.cuda.synchronize()
        s.record()
        for _ in range(n):
            step()
        e.record()
        torch.cuda.synchronize()
        return s.elapsed_time(e) * 1e-3 / n
    t0 = time.perf_counter()
    for _ in range(n):
        step()
    return (time.perf_counter() - t0) / n


def profile_step(step, device) -> dict:
    import torch
    from torch.profiler import ProfilerActivity, profile

    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    t0 = time.perf_counter()
    with profile(activities=acts) as prof:
        step()
        if device.type == "cuda":
            torch.cuda.synchronize()
    wall = time.perf_counter() - t0
    cats: dict[str, float] = {}
    kernels: dict[str, float] = {}
    for ev in prof.events():
        if ev.device_type != torch.autograd.DeviceType.CUDA:
            continue
        us = ev.device_time if hasattr(ev, "device_time") else ev.cuda_time
        cats[categorize(ev.name)] = cats.get(categorize(ev.name), 0.0) + us
        kernels[ev.name[:90]] = kernels.get(ev.name[:90], 0.0) + us
    top = sorted(kernels.items(), key=lambda kv: -kv[1])[:12]
    return dict(gpu_ms=sum(cats.values()) / 1e3, wall_ms_profiled=wall * 1e3,
                categories_ms={k: v / 1e3 for k, v in sorted(cats.items(), key=lambda kv: -kv[1])},
                top_kernels_ms=[(k, v / 1e3) for k, v in top])


def bench_size(size, variants, rounds, steps, batch, seq, vocab, device, profile: bool, compile_how: str = "") -> dict:
    import torch

    g = torch.Generator().manual_seed(0)
    idx = torch.randint(0, vocab, (batch, seq + 1), generator=g).to(device)
    x, y = idx[:, :-1].contiguous(), idx[:, 1:].contiguous()
    built = {}
    for v in variants:
        model, opt = build(size, v, vocab, seq, device)
        built[v] = (model, opt, make_step(compile_model(model, compile_how), opt, x, y, device))
        for _ in range(3):  # compile kernels, warm allocator and cuBLAS heuristics
            built[v][2]()
    if device.type == "cuda":
        torch.cuda.synchronize()
    per_round = {v: [] for v in variants}
    for r in range(rounds):
        order = variants[r % len(variants):] + variants[:r % len(variants)]
        for v in order:
            per_round[v].append(time_steps(built[v][2], steps, device))
    out = dict(size=size, batch=batch, seq=seq, vocab=vocab, rounds=rounds, steps_per_round=steps, compile=compile_how,
               n_params=built[variants[0]][0].num_params(), variants={},
               max_memory_gb=torch.cuda.max_memory_allocated() / 1e9 if device.type == "cuda" else None)
    base = per_round.get("bf16")
    for v, ts in per_round.items():
        rec = dict(step_ms_median=statistics.median(ts) * 1e3, step_ms_min=min(ts) * 1e3, step_ms_max=max(ts) * 1e3,
                   per_round_ms=[t * 1e3 for t in ts], tokens_per_s=batch * seq / statistics.median(ts))
        if base:
            ratios = [t / b for t, b in zip(ts, base)]
            rec.update(ratio_vs_bf16_median=statistics.median(ratios), ratio_min=min(ratios), ratio_max=max(ratios))
        out["variants"][v] = rec
    for v, rec in out["variants"].items():
        if profile:
            try:
                rec["profile"] = profile_step(built[v][2], device)
            except Exception as exc:  # keep the timings whatever the profiler does
                rec["profile_error"] = f"{type(exc).__name__}: {exc}"
    del built
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return out


def report(res: dict) -> None:
    print(f"\n# {res['size']} (N = {res['n_params'] / 1e6:.1f}M), batch {res['batch']}×{res['seq']}, vocab "
          f"{res['vocab']}: {res['rounds']} interleaved rounds × {res['steps_per_round']} steps"
          + (f", torch.compile {res['compile']}" if res.get("compile") else ""))
    for v, r in res["variants"].items():
        ratio = (f"×{r['ratio_vs_bf16_median']:.3f} vs bf16 (rounds {r['ratio_min']:.3f}–{r['ratio_max']:.3f})"
                 if "ratio_vs_bf16_median" in r else "")
        print(f"  {v:12} {r['step_ms_median']:8.2f} ms (min {r['step_ms_min']:.2f}, max {r['step_ms_max']:.2f})  "
              f"{r['tokens_per_s'] / 1e3:7.0f}k tok/s  {ratio}")
        if "profile" in r:
            p = r["profile"]
            cats = ", ".join(f"{k} {v:.1f}" for k, v in p["categories_ms"].items())
            print(f"      profile: GPU {p['gpu_ms']:.1f} ms in kernels ({cats})")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", nargs="+", default=["100M", "200M"])
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--seq", type=int, default=512)
    ap.add_argument("--vocab", type=int, default=50304)
    ap.add_argument("--no-profile", action="store_true")
    ap.add_argument("--compile", default="", choices=["", "aot_eager", "default", "reduce-overhead",
                                                      "max-autotune-no-cudagraphs"],
                    help="torch.compile every variant's model (QuEST layers through the quest_lab ops)")
    ap.add_argument("--smoke", action="store_true", help="tiny model, 2 rounds × 1 step (CPU: interpreter)")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    import os

    import torch

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.type == "cpu":
        os.environ.setdefault("TRITON_INTERPRET", "1")
    if args.smoke:
        args.sizes, args.rounds, args.steps, args.batch, args.seq, args.vocab = ["nano"], 2, 1, 2, 32, 256
    results = dict(device=torch.cuda.get_device_name() if device.type == "cuda" else "cpu",
                   torch=torch.__version__, runs=[])
    print(f"device: {results['device']}; torch {torch.__version__}")
    for size in args.sizes:
        res = bench_size(size, list(args.variants), args.rounds, args.steps, args.batch, args.seq, args.vocab,
                         device, profile=not args.no_profile, compile_how=args.compile)
        results["runs"].append(res)
        report(res)
        if args.out:
            Path(args.out).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
