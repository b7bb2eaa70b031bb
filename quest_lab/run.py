"""The unit of work: one fully-resolved training run (`RunConfig`) and what it produced (`RunResult`).

Both are plain, JSON-serialisable records.  `RunConfig` is what a sweep expands to and what
`train()` consumes; `RunResult` is what a worker returns and the driver writes to the store.
Workers never touch the database (docs/design.md §1).  Torch-free: validation uses the size
registry (`quest_lab.sizes`) and the quantizer specs (`quest_lab.quant.specs`); `.quant` and
`.data` are the component configs the model and the data loader take.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import numbers
from dataclasses import dataclass, field
from typing import Any, Literal

# Bumped whenever the meaning of a stored row changes (training semantics, result fields):
# it is part of every run_id, so old rows are never mistaken for new ones.
SCHEMA_VERSION = 2  # 2: baselines true to their papers, OneCycle-cosine LR, no decay on lm_head (issue 9)

RunStatus = Literal["pending", "running", "completed", "diverged", "failed"]
RUN_STATUSES: tuple[str, ...] = ("pending", "running", "completed", "diverged", "failed")

from quest_lab.corpus import TOKENIZERS, DataConfig
from quest_lab.quant.config import QuantConfig
from quest_lab.quant.specs import (BACKENDS, OFF_BITS, bits_match, check_group_divides, fmt_bits, get_spec,
                                   precision_label, valid_bits)
from quest_lab.sizes import MODEL_SIZES, get_size, non_embedding_params

DEVICES: tuple[str, ...] = ("auto", "cpu", "cuda")
__all__ = ["BACKENDS", "DEVICES", "MAX_TOKENS", "RUN_STATUSES", "TOKENIZERS", "RunConfig", "RunResult",
           "SCHEMA_VERSION", "check_bits"]


# Largest token budget a config may ask for (far beyond any run; keeps D a finite, storable number).
MAX_TOKENS = 10 ** 15


def _check_numbers(cfg: "RunConfig") -> None:
    """Every real-valued option (quantizer options included) is a finite number: NaN and ±inf
    would slip through range checks (`nan > 1` is False) and be stored as diverged runs."""
    values = [(f.name, getattr(cfg, f.name)) for f in dataclasses.fields(cfg)]
    if isinstance(cfg.quantizer_options, dict):
        values += [(f"quantizer_options.{k}", v) for k, v in cfg.quantizer_options.items()]
    for name, value in values:
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"{name}={value!r} must be a finite number")


def check_bits(name: str, value: float) -> None:
    """A bit-width some quantizer accepts (the union of the specs' bits; 16 = off)."""
    if not bits_match(value, valid_bits()):
        raise ValueError(f"{name}={value!r} is not a supported bit-width; allowed: {fmt_bits(valid_bits())} "
                         "(16 = off)")


@dataclass(frozen=True)
class RunConfig:
    """Everything that determines a run's outcome.  Two equal configs give the same run_id."""

    size: str = "tiny"
    w_bits: float = 16
    a_bits: float = 16
    quantizer: str = "quest"
    quantizer_options: dict[str, Any] = field(default_factory=dict)
    # one scale per group of G inputs along K (None: the quantizer's own, per row); in the label as g<G>
    group_size: int | None = None
    # backward (gradient) precision; train() has no quantized backward, so only 16 trains (imported runs,
    # `quest-lab import` / `fit --csv`, carry any g_bits); in the label as b<bits> when below 16
    g_bits: float = 16
    # Token budget D: exactly one of `tokens` / `tokens_per_param` (× non-embedding N).
    tokens: int | None = None
    tokens_per_param: float | None = None
    seed: int = 0
    # Data
    corpus: str = "shakespeare"  # "shakespeare", a text file/dir, or a pre-tokenised .bin/.npy
    tokenizer: str = "bpe"  # "bpe" (HF tokenizers byte-level BPE trained locally) or "byte"
    vocab_size: int = 1024  # for "bpe"; "byte" is always 256
    seq_len: int = 128
    batch_size: int = 16
    # Optimisation (docs/design.md §2); lr=None takes the size's peak LR from the registry
    lr: float | None = None
    weight_decay: float = 0.1
    grad_clip: float = 1.0
    warmup_frac: float = 0.1
    final_lr_frac: float = 0.1
    # Evaluation
    eval_every: int = 0  # steps; 0 = only at the end
    eval_tokens: int = 65_536
    # Divergence: NaN/inf, or train loss above `divergence_factor` × the initial loss
    divergence_factor: float = 3.0
    # Execution (not part of the science, but part of the identity: bf16 on GPU ≠ fp32 on CPU)
    device: str = "auto"
    backend: str = "auto"  # quantizer backend: torch reference or Triton kernels

    def __post_init__(self) -> None:
        if self.size not in MODEL_SIZES:
            raise ValueError(f"size={self.size!r} is unknown; allowed: {', '.join(MODEL_SIZES)}")
        get_spec(self.quantizer)  # known, even when 16/16 canonicalises it to bf16 below
        check_bits("w_bits", self.w_bits)
        check_bits("a_bits", self.a_bits)
        check_bits("g_bits", self.g_bits)
        if float(self.g_bits) < OFF_BITS:
            raise ValueError(f"g_bits={self.g_bits!r}: a quantized backward is not implemented in train(); "
                             "allowed: 16 (runs with g_bits < 16 can be imported: quest-lab import, fit --csv)")
        if float(self.w_bits) >= OFF_BITS and float(self.a_bits) >= OFF_BITS and self.quantizer != "bf16":
            # Full precision is one run whatever quantizer a grid crossed it with: canonicalise so
            # 16/16 under `quest`, `ste`, ... share a run_id and the baseline is trained once.
            object.__setattr__(self, "quantizer", "bf16")
            object.__setattr__(self, "quantizer_options", {})
            object.__setattr__(self, "group_size", None)
        _check_numbers(self)
        if (self.tokens is None) == (self.tokens_per_param is None):
            raise ValueError("give exactly one of tokens / tokens_per_param")
        if self.tokens is not None and (not isinstance(self.tokens, int) or not 0 < self.tokens <= MAX_TOKENS):
            raise ValueError(f"tokens={self.tokens!r} must be a positive integer <= {MAX_TOKENS:.0e}")
        if self.tokens_per_param is not None and not 0 < self.tokens_per_param * self.n_params <= MAX_TOKENS:
            raise ValueError(f"tokens_per_param={self.tokens_per_param!r} must be > 0 and give at most "
                             f"{MAX_TOKENS:.0e} tokens (N = {self.n_params:,})")
        if self.device not in DEVICES:
            raise ValueError(f"device={self.device!r} is unknown; allowed: {', '.join(DEVICES)}")
        if self.backend not in BACKENDS:
            raise ValueError(f"backend={self.backend!r} is unknown; allowed: {', '.join(BACKENDS)}")
        for name in ("seq_len", "batch_size", "eval_tokens"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name}={getattr(self, name)!r} must be > 0")
        if self.eval_every < 0:
            raise ValueError(f"eval_every={self.eval_every!r} must be >= 0 (0 = only at the end)")
        if self.lr is not None and not self.lr > 0:
            raise ValueError(f"lr={self.lr!r} must be > 0")
        if not 0 <= self.warmup_frac < 1 or not 0 <= self.final_lr_frac <= 1:
            raise ValueError(f"warmup_frac={self.warmup_frac!r} must be in [0, 1) and "
                             f"final_lr_frac={self.final_lr_frac!r} in [0, 1]")
        if not self.divergence_factor > 1:
            raise ValueError(f"divergence_factor={self.divergence_factor!r} must be > 1")
        if not self.weight_decay >= 0:
            raise ValueError(f"weight_decay={self.weight_decay!r} must be >= 0")
        if not self.grad_clip > 0:
            raise ValueError(f"grad_clip={self.grad_clip!r} must be > 0")
        if isinstance(self.seed, bool) or not isinstance(self.seed, numbers.Integral) or not 0 <= self.seed < 2 ** 63:
            raise ValueError(f"seed={self.seed!r} must be an integer in [0, 2**63)")
        self.quant  # quantizer, bits, options, group size and backend, as the quantizer's spec allows
        size = get_size(self.size)
        check_group_divides(self.group_size, {"d": size.n_embd, "mlp_hidden": size.mlp_hidden})
        self.data  # corpus exists, tokenizer known

    # -- component configs -------------------------------------------------------------------
    @property
    def quant(self) -> QuantConfig:
        """What `build_model` takes: quantizer, bits, options, backend."""
        return QuantConfig(name=self.quantizer, w_bits=self.w_bits, a_bits=self.a_bits,
                           options=dict(self.quantizer_options), backend=self.backend, group_size=self.group_size)

    @property
    def data(self) -> DataConfig:
        """What the data loader takes: corpus and tokenizer."""
        return DataConfig(corpus=self.corpus, tokenizer=self.tokenizer, vocab_size=self.vocab_size)

    # -- derived -----------------------------------------------------------------------------
    @property
    def n_params(self) -> int:
        """Non-embedding parameter count N (docs/design.md §2)."""
        return non_embedding_params(self.size)

    @property
    def token_budget(self) -> int:
        """D, the number of training tokens."""
        if self.tokens is not None:
            return self.tokens
        return int(round(self.tokens_per_param * self.n_params))

    @property
    def precision_label(self) -> str:
        return precision_label(self.quantizer, self.w_bits, self.a_bits, self.group_size, self.g_bits)

    # -- serialisation -----------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "RunConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"unknown run option(s) {unknown}; allowed: {', '.join(sorted(names))}")
        return cls(**d)

    def resolved(self) -> dict[str, Any]:
        """The config with its defaults resolved: D in tokens and the actual peak LR.

        Two configs that train identically (`tokens_per_param: 25` and the equal `tokens`; `lr: null`
        and the size's peak LR) resolve to the same dict, and a change to the size registry (its N
        or peak LR) changes it.
        """
        d = self.to_dict()
        d.update(tokens=self.token_budget, tokens_per_param=None,
                 lr=self.lr if self.lr is not None else get_size(self.size).peak_lr)
        if d["group_size"] is None:  # per row, as before the field existed: stored run_ids stay valid
            del d["group_size"]
        if float(d["g_bits"]) >= OFF_BITS:  # 16-bit gradients, as before the field existed: same run_ids
            del d["g_bits"]
        return d

    def run_id(self, data_identity: str = "") -> str:
        """Stable content hash of the resolved config + corpus/tokenizer identity + schema version."""
        payload = {"config": self.resolved(), "data": data_identity, "schema": SCHEMA_VERSION}
        blob = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


@dataclass
class RunResult:
    """What `train()` returns.  Everything a fit or a report needs, as plain data."""

    config: dict[str, Any]
    status: str  # completed | diverged | failed
    n_params: int  # N, non-embedding
    tokens: int  # D actually seen
    w_bits: float
    a_bits: float
    quantizer: str
    final_eval_loss: float | None = None
    final_train_loss: float | None = None
    steps: int = 0
    # [(step, tokens_seen, train_loss)], downsampled to <= 200 points
    train_curve: list[tuple[int, int, float]] = field(default_factory=list)
    # [(step, tokens_seen, eval_loss)]
    eval_curve: list[tuple[int, int, float]] = field(default_factory=list)
    wall_time_s: float = 0.0
    tokens_per_s: float = 0.0
    device: str = "cpu"
    hardware: str = ""
    versions: dict[str, str] = field(default_factory=dict)
    data_identity: str = ""  # hash of corpus content + tokenizer; part of the run_id
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "RunResult":
        return cls(**d)
