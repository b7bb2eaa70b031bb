"""`train(config) -> RunResult`: one quantization-aware pre-training run, as a pure function.

No database access: the caller (a sweep driver, the CLI) decides what to do with the result.
Divergence (NaN/inf loss, or a loss blow-up) is an outcome, not an exception: it returns
status "diverged".  Real errors (bad corpus, out of memory, bugs) raise.

Recipe (docs/design.md §2), as the QuEST reference trains (IST-DASLab/QuEST src/main.py and
src/models/base.py `get_parameter_group_specs`): AdamW β = (0.9, 0.95); weight decay on the linear
weights inside the blocks only (not lm_head, embeddings, norms or quantizer state); grad clip 1.0;
PyTorch's `OneCycleLR(anneal_strategy="cos", div_factor=100)` schedule (cosine warm-up from LR/100
over `warmup_frac` of the steps, cosine decay to `final_lr_frac`·LR); bf16 autocast on CUDA, fp32 on CPU.
"""
from __future__ import annotations

import logging
import math
import platform
import time
from collections.abc import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

from quest_lab.tokens import TokenStream, eval_batches, load_tokens, train_batch
from quest_lab.model import Llama, build_model, get_size
from quest_lab.quant import Quantizer
from quest_lab.run import RunConfig, RunResult

log = logging.getLogger(__name__)

MAX_CURVE_POINTS = 200
# (step, total_steps, train_loss, tokens_per_s) -> None; used by the CLI's progress bar
ProgressFn = Callable[[int, int, float, float], None]


WARMUP_DIV_FACTOR = 100.0  # initial LR = peak / this (the reference's OneCycleLR div_factor=1e2)


def _cos_anneal(start: float, end: float, pct: float) -> float:
    """Cosine from `start` (pct 0) to `end` (pct 1): PyTorch's `OneCycleLR._annealing_cos`."""
    return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1)


def lr_at(step: int, total: int, peak: float, warmup_frac: float, final_frac: float) -> float:
    """LR of 0-based optimizer step `step` of `total`: exactly what
    `torch.optim.lr_scheduler.OneCycleLR(max_lr=peak, total_steps=total, pct_start=warmup_frac,
    anneal_strategy="cos", div_factor=100, final_div_factor=1/(100·final_frac))` gives after `step`
    scheduler steps, as the QuEST reference uses it (src/main.py; final_div_factor 0.1 = final_frac 0.1).

    Phase 1 ends at step e = warmup_frac·total − 1 (a float): cosine from peak/100 up to peak;
    phase 2 from e to total − 1: cosine from peak down to final_frac·peak.  Two edges PyTorch leaves
    undefined are defined here: a phase 1 of zero length (e = 0) gives peak/100 at step 0 (PyTorch
    divides by zero), and steps ≥ total give the final LR (PyTorch raises past `total`).
    """
    if total < 1 or step < 0:
        raise ValueError(f"lr_at needs total >= 1 and step >= 0; got step={step!r}, total={total!r}")
    initial, final = peak / WARMUP_DIV_FACTOR, final_frac * peak
    warm_end = float(warmup_frac * total) - 1
    if step <= warm_end:
        return _cos_anneal(initial, peak, step / warm_end if warm_end > 0 else 0.0)
    span = (total - 1) - warm_end
    pct = (step - warm_end) / span if span > 0 else 1.0
    return _cos_anneal(peak, final, min(pct, 1.0))


def param_groups(model: Llama, weight_decay: float) -> list[dict]:
    """AdamW groups: weight decay on the 2-D weights of the linear layers inside the blocks; none on
    the output head (`lm_head`), embeddings, norms, biases or quantizer state (e.g. LSQ steps).

    The reference (IST-DASLab/QuEST src/models/base.py, `get_parameter_group_specs`) decays
    `nn.Linear`/`QuantizedLinear` weights and moves `lm_head.weight` to the no-decay group.  One
    difference: there an LSQ step named `alpha_weight` inside a `QuantizedLinear` ends in "weight"
    and so is decayed; here quantizer state never is.
    """
    head = {id(p) for p in model.lm_head.parameters()}
    quant = {id(p) for m in model.modules() if isinstance(m, Quantizer) for p in m.parameters()}
    decay, no_decay = [], []
    for m in model.modules():
        for p in m.parameters(recurse=False):
            if id(p) in quant or not p.requires_grad:
                continue
            is_block_linear = isinstance(m, nn.Linear) and p.dim() == 2 and id(p) not in head
            (decay if is_block_linear else no_decay).append(p)
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    quant_params = [p for m in model.modules() if isinstance(m, Quantizer) for p in m.parameters()]
    if quant_params:
        groups.append({"params": quant_params, "weight_decay": 0.0})
    return groups


def make_optimizer(model: Llama, lr: float, weight_decay: float, fused: bool) -> torch.optim.AdamW:
    """AdamW β = (0.9, 0.95) over `param_groups` (decay on the blocks' linear weights only)."""
    return torch.optim.AdamW(param_groups(model, weight_decay), lr=lr, betas=(0.9, 0.95), fused=fused)


def _downsample(curve: list[tuple[int, int, float]], n: int = MAX_CURVE_POINTS) -> list[tuple[int, int, float]]:
    if len(curve) <= n:
        return curve
    idx = sorted({round(i * (len(curve) - 1) / (n - 1)) for i in range(n)})
    return [curve[i] for i in idx]


@torch.no_grad()
def evaluate(model: Llama, stream: TokenStream, cfg: RunConfig, device: torch.device) -> float:
    """Mean next-token cross-entropy (nats) over the fixed validation windows."""
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    for x, y in eval_batches(stream, cfg.eval_tokens, cfg.seq_len, cfg.batch_size):
        x, y = x.to(device), y.to(device)
        with _autocast(device):
            logits = model(x)
        total += F.cross_entropy(logits.float().flatten(0, 1), y.flatten(), reduction="sum").item()
        count += y.numel()
    model.train(was_training)
    return total / count


def _autocast(device: torch.device):
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return torch.autocast("cpu", enabled=False)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("device='cuda' was requested but CUDA is not available")
    return torch.device(name)


def _versions() -> dict[str, str]:
    from quest_lab import __version__

    v = {"quest_lab": __version__, "torch": torch.__version__, "python": platform.python_version()}
    try:
        import triton

        v["triton"] = triton.__version__
    except ImportError:  # pragma: no cover - triton is a dependency, but optional at run time
        pass
    return v


def _hardware(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{platform.machine()} cpu x{torch.get_num_threads()} threads"


def train(config: RunConfig, progress: ProgressFn | None = None) -> RunResult:
    """Train one model as `config` says and return its `RunResult` (never touches a database)."""
    t_start = time.perf_counter()
    device = resolve_device(config.device)
    stream = load_tokens(config.data)
    size = get_size(config.size)
    qcfg = config.quant

    torch.manual_seed(config.seed)
    model = build_model(size, qcfg, vocab_size=stream.vocab_size, seq_len=config.seq_len, device=device)
    n_params = model.num_params(non_embedding=True)
    peak_lr = config.lr if config.lr is not None else size.peak_lr
    opt = make_optimizer(model, peak_lr, config.weight_decay, fused=device.type == "cuda")

    tokens_per_step = config.batch_size * config.seq_len
    total_steps = max(1, round(config.token_budget / tokens_per_step))
    gen = torch.Generator().manual_seed(config.seed)

    # quantizers whose forward depends on how far training is (SLB's temperature): told before each step
    progress_hooks = [m for m in model.modules() if callable(getattr(m, "set_progress", None))]
    train_curve: list[tuple[int, int, float]] = []
    eval_curve: list[tuple[int, int, float]] = []
    status, error, initial_loss, loss_val = "completed", None, None, float("nan")
    t_train = time.perf_counter()
    model.train()
    step = 0
    for step in range(1, total_steps + 1):
        lr = lr_at(step - 1, total_steps, peak_lr, config.warmup_frac, config.final_lr_frac)
        for group in opt.param_groups:
            group["lr"] = lr
        for m in progress_hooks:
            m.set_progress((step - 1) / total_steps)
        x, y = train_batch(stream, config.batch_size, config.seq_len, gen)
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        with _autocast(device):
            logits = model(x)
        loss = F.cross_entropy(logits.float().flatten(0, 1), y.flatten())
        loss_val = loss.item()
        if initial_loss is None:
            initial_loss = loss_val
        if not math.isfinite(loss_val) or loss_val > config.divergence_factor * initial_loss:
            status = "diverged"
            error = f"train loss {loss_val:.4g} at step {step} (initial {initial_loss:.4g})"
            train_curve.append((step, step * tokens_per_step, loss_val))
            log.warning("run diverged: %s", error)
            break
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        opt.step()
        train_curve.append((step, step * tokens_per_step, loss_val))
        if progress is not None:
            progress(step, total_steps, loss_val, step * tokens_per_step / (time.perf_counter() - t_train))
        if config.eval_every and step % config.eval_every == 0 and step < total_steps:
            eval_curve.append((step, step * tokens_per_step, evaluate(model, stream, config, device)))

    train_time = time.perf_counter() - t_train
    for m in progress_hooks:
        m.set_progress(1.0)  # training is over: e.g. SLB weights are hard from here on
    tokens_seen = step * tokens_per_step
    final_eval = None
    if status == "completed":
        final_eval = evaluate(model, stream, config, device)
        if not math.isfinite(final_eval):
            status, error = "diverged", f"final eval loss {final_eval}"
        eval_curve.append((step, tokens_seen, final_eval))

    return RunResult(
        config=config.to_dict(),
        status=status,
        n_params=n_params,
        tokens=tokens_seen,
        w_bits=config.w_bits,
        a_bits=config.a_bits,
        quantizer=config.quantizer,
        final_eval_loss=final_eval,
        final_train_loss=loss_val,
        steps=step,
        train_curve=_downsample(train_curve),
        eval_curve=eval_curve,
        wall_time_s=time.perf_counter() - t_start,
        tokens_per_s=tokens_seen / train_time if train_time > 0 else 0.0,
        device=device.type,
        hardware=_hardware(device),
        versions=_versions(),
        data_identity=stream.identity,
        error=error,
    )
