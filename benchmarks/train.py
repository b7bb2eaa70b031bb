"""Training benchmarks: CPU throughput, and the paper's small-scale ordering of quantizers.

    python benchmarks/train.py speed    [--size tiny --tokens 1000000]     tokens/s, wall time
    python benchmarks/train.py ordering [--size small --tokens 2000000]    BF16 vs QuEST W4A4 vs STE W4A4
    python benchmarks/train.py all --smoke                                  tiny versions of both (CI)

`ordering` trains the same size on the same tokens and seed at BF16, QuEST W4A4 and STE W4A4 and
prints final eval losses and the ratios to BF16.  The QuEST paper's claim at scale: BF16 ≤ QuEST
W4A4 < STE W4A4, with QuEST close to BF16.  Prints a table; writes nothing.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from quest_lab.run import RunConfig  # noqa: E402
from quest_lab.train import train  # noqa: E402


def _base(args: argparse.Namespace) -> dict:
    return dict(size=args.size, tokens=args.tokens, corpus=args.corpus, tokenizer=args.tokenizer,
                vocab_size=args.vocab_size, seq_len=args.seq_len, batch_size=args.batch_size,
                device=args.device, seed=args.seed)


def speed(args: argparse.Namespace) -> None:
    print(f"# throughput: {args.size}, {args.tokens:,} tokens, torch threads={os.environ.get('OMP_NUM_THREADS', 'default')}")
    print(f"{'precision':<14}{'tokens/s':>12}{'wall s':>10}{'eval loss':>11}")
    warm = dict(_base(args), tokens=min(args.tokens, 20_000))
    train(RunConfig(**warm))  # warm-up: tokenizer cache, allocator and thread pools, not timed
    rows = []
    for q, w, a in (("bf16", 16, 16), ("quest", 4, 4)):
        t = time.perf_counter()
        r = train(RunConfig(quantizer=q, w_bits=w, a_bits=a, **_base(args)))
        rows.append(r)
        print(f"{RunConfig(quantizer=q, w_bits=w, a_bits=a, tokens=1).precision_label:<14}"
              f"{r.tokens_per_s:>12,.0f}{time.perf_counter() - t:>10.1f}{r.final_eval_loss:>11.4f}")
    print(f"quest/bf16 throughput ratio: {rows[1].tokens_per_s / rows[0].tokens_per_s:.2f}")


def ordering(args: argparse.Namespace) -> None:
    print(f"# ordering: {args.size}, {args.tokens:,} tokens, seed {args.seed}, {args.tokenizer} tokenizer")
    print(f"{'precision':<16}{'eval loss':>11}{'vs bf16':>10}{'tokens/s':>12}")
    losses = {}
    for q, w, a in (("bf16", 16, 16), ("quest", 4, 4), ("ste", 4, 4)):
        r = train(RunConfig(quantizer=q, w_bits=w, a_bits=a, **_base(args)))
        label = "bf16" if w == 16 else f"{q} W{w}A{a}"
        losses[label] = r.final_eval_loss
        ratio = r.final_eval_loss / losses["bf16"]
        print(f"{label:<16}{r.final_eval_loss:>11.4f}{ratio:>10.4f}{r.tokens_per_s:>12,.0f}")
    bf16, quest, ste = losses["bf16"], losses["quest W4A4"], losses["ste W4A4"]
    print(f"BF16 <= QuEST W4A4: {bf16 <= quest}; QuEST W4A4 < STE W4A4: {quest < ste}; "
          f"QuEST within 3% of BF16: {quest <= 1.03 * bf16} ({100 * (quest / bf16 - 1):+.2f}%)")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("what", choices=["speed", "ordering", "all"])
    p.add_argument("--size", default=None)
    p.add_argument("--tokens", type=int, default=None)
    p.add_argument("--corpus", default="shakespeare")
    p.add_argument("--tokenizer", default="bpe", choices=["bpe", "byte"])
    p.add_argument("--vocab-size", type=int, default=1024)
    p.add_argument("--seq-len", type=int, default=128)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--device", default="auto")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--smoke", action="store_true", help="tiny run for CI: nano, 20k tokens, byte tokenizer")
    args = p.parse_args()
    if args.smoke:
        args.size, args.tokens, args.tokenizer, args.seq_len = "nano", 20_000, "byte", 64
    for what in (("speed", "ordering") if args.what == "all" else (args.what,)):
        defaults = {"speed": ("tiny", 1_000_000), "ordering": ("small", 2_000_000)}[what]
        run_args = argparse.Namespace(**vars(args))
        run_args.size = args.size or defaults[0]
        run_args.tokens = args.tokens or defaults[1]
        (speed if what == "speed" else ordering)(run_args)


if __name__ == "__main__":
    main()
