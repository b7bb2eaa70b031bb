"""What each quantizer accepts, declared once and torch-free: bit-widths per role, options with their
defaults and checks, a one-line summary and its citation.  Everything else is derived from here:
`VALID_BITS`, the option validation of configs and sweep files, `quest-lab quantizers`, and the
precision labels.  The torch implementation of a spec is imported lazily from `impl` ("module:Class"),
so configs, the CLI and sweep planning never load torch.

Group size (issue 15): `group_size` = G gives one scale per group of G consecutive inputs along K
(the quantized last dim) instead of one per row; None keeps the quantizer's own granularity (per row;
per tensor for lsq).  G is a power of two >= 2 (`check_group_size`), must divide every quantized K
of the model (checked where K is known), and only quantizers whose spec says `groups=True` take it.
It is part of the precision label: `quest:w4a4g32` (per row: `quest:w4a4`, unchanged).

Backward precision (issue 15): `g_bits` < 16 (quantized gradients, imported runs only: `train()` has
no quantized backward) adds `b<bits>` after the activation bits: `quartet:w4a4b4`, `sr:w16a16b4`.

Adding a quantizer: `register_spec(QuantizerSpec(...))` next to its implementation class (the
implementation module registers it with `@register_quantizer(name)`), plus a test.
"""
from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

OFF_BITS: float = 16.0  # a side at 16 bits is not quantized
INT_BITS: tuple[float, ...] = (1, 2, 3, 4, 5, 6, 7, 8)
TERNARY_BITS: float = 1.58  # log2(3); 1.585 is accepted as the same value
BITS_TOL: float = 0.01  # bit-widths within this of an allowed value are that value (1.585 == 1.58)
ROLES: tuple[str, ...] = ("weight", "activation")
BACKENDS: tuple[str, ...] = ("auto", "torch", "triton")
# forward GEMM of a layer whose two sides are Hadamard-rotated QuEST: "fake" = bf16 GEMM on the
# fake-quantized operands; "lowp" = on the integer codes (FP8 / int8, `quest_lab.kernels.lowp`);
# "auto" = lowp on CUDA under bf16 autocast where bits and shapes allow, else fake
GEMMS: tuple[str, ...] = ("auto", "fake", "lowp")
BASE_LABEL = "bf16"


def fmt_bits(values) -> str:
    return ", ".join(f"{float(b):g}" for b in values)


def bits_match(bits: Any, allowed) -> bool:
    """True when `bits` is a real number within BITS_TOL of one of `allowed`."""
    if isinstance(bits, bool) or not isinstance(bits, (int, float)) or not math.isfinite(bits):
        return False
    return any(abs(float(bits) - float(a)) < BITS_TOL for a in allowed)


# ---------------------------------------------------------------------------------------------
# Option checks: each returns None when the value is fine, else what is allowed
# ---------------------------------------------------------------------------------------------
def is_bool(v: Any) -> str | None:
    return None if isinstance(v, bool) else "true or false"


def positive_or_none(v: Any) -> str | None:
    ok = v is None or (not isinstance(v, bool) and isinstance(v, (int, float)) and math.isfinite(v) and v > 0)
    return None if ok else "a positive finite number, or null"


def power_of_two(v: Any) -> str | None:
    ok = not isinstance(v, bool) and isinstance(v, int) and v >= 1 and v & (v - 1) == 0
    return None if ok else "a power of two (e.g. 32, 64, 128)"


def fraction(v: Any) -> str | None:
    ok = not isinstance(v, bool) and isinstance(v, (int, float)) and 0 <= v <= 1
    return None if ok else "a number in [0, 1] (a fraction of training)"


def positive(v: Any) -> str | None:
    ok = not isinstance(v, bool) and isinstance(v, (int, float)) and math.isfinite(v) and v > 0
    return None if ok else "a positive finite number"


def one_of(*values: str) -> Callable[[Any], str | None]:
    def check(v: Any) -> str | None:
        return None if v in values else ", ".join(repr(x) for x in values)

    return check


@dataclass(frozen=True)
class Option:
    default: Any
    check: Callable[[Any], str | None]
    help: str


@dataclass(frozen=True)
class QuantizerSpec:
    """The public contract of one quantizer (see module doc)."""

    name: str
    summary: str
    citation: str
    impl: str  # "module:Class" of the torch implementation
    weight_bits: tuple[float, ...] = INT_BITS
    activation_bits: tuple[float, ...] = INT_BITS
    options: Mapping[str, Option] = field(default_factory=dict)
    aliases: tuple[str, ...] = ()
    # checks across options, run after each option's own check: resolved options -> None or the problem
    constraints: tuple[Callable[[Mapping[str, Any]], str | None], ...] = ()
    # whether the quantizer takes a `group_size` (one scale per group of G inputs along K)
    groups: bool = False

    def allowed_bits(self, role: str) -> tuple[float, ...]:
        """Bit-widths for `role`; 16 (= off) is always allowed."""
        if role not in ROLES:
            raise ValueError(f"role={role!r} is unknown; allowed: {', '.join(ROLES)}")
        bits = self.weight_bits if role == "weight" else self.activation_bits
        return tuple(bits) + (OFF_BITS,)

    def check_bits(self, bits: Any, role: str) -> float:
        """The canonical value of `bits` for `role`, or ValueError naming what is allowed."""
        allowed = self.allowed_bits(role)
        if not bits_match(bits, allowed):
            side = "w_bits" if role == "weight" else "a_bits"
            raise ValueError(f"{side}={bits!r} is not supported by quantizer {self.name!r} for {role}s; "
                             f"allowed: {fmt_bits(allowed)} (16 = off)")
        return next(float(a) for a in allowed if abs(float(bits) - float(a)) < BITS_TOL)

    def check_group_size(self, group_size: Any) -> int | None:
        """`group_size` if this quantizer takes it (None always), else ValueError naming what is allowed."""
        if group_size is None:
            return None
        if not self.groups:
            raise ValueError(f"group_size={group_size!r} is not supported by quantizer {self.name!r}; "
                             f"allowed: null (groups: {', '.join(group_quantizers())})")
        problem = group_size_problem(group_size)
        if problem:
            raise ValueError(f"group_size={group_size!r} is not valid; allowed: {problem}")
        return int(group_size)

    def resolve_options(self, options: Mapping[str, Any] | None) -> dict[str, Any]:
        """Defaults filled in and every value checked; ValueError names the option and what is allowed."""
        options = dict(options or {})
        unknown = sorted(set(options) - set(self.options))
        if unknown:
            allowed = ", ".join(sorted(self.options)) or "(none)"
            raise ValueError(f"unknown option(s) {unknown} for quantizer {self.name!r}; allowed: {allowed}")
        resolved = {k: options.get(k, opt.default) for k, opt in self.options.items()}
        for k, v in resolved.items():
            problem = self.options[k].check(v)
            if problem:
                raise ValueError(f"{self.name} option {k}={v!r} is not valid; allowed: {problem}")
        for constraint in self.constraints:
            problem = constraint(resolved)
            if problem:
                raise ValueError(f"{self.name} options {options}: {problem}")
        return resolved


QUANTIZER_SPECS: dict[str, QuantizerSpec] = {}


def register_spec(spec: QuantizerSpec) -> QuantizerSpec:
    for n in (spec.name, *spec.aliases):
        if n in QUANTIZER_SPECS and QUANTIZER_SPECS[n] is not spec:
            raise ValueError(f"quantizer name {n!r} is already registered")
        QUANTIZER_SPECS[n] = spec
    return spec


def get_spec(name: str) -> QuantizerSpec:
    try:
        return QUANTIZER_SPECS[name]
    except (KeyError, TypeError):
        raise ValueError(f"quantizer={name!r} is unknown; allowed: {', '.join(QUANTIZER_SPECS)}") from None


def group_quantizers() -> tuple[str, ...]:
    """Registered quantizer names (no aliases) that take a group size."""
    return tuple(n for n, spec in QUANTIZER_SPECS.items() if n == spec.name and spec.groups)


def group_size_problem(group_size: Any) -> str | None:
    """None when `group_size` is a valid value (a power of two >= 2), else what is allowed."""
    g = group_size
    if not isinstance(g, bool) and isinstance(g, int) and g >= 2 and g & (g - 1) == 0:
        return None
    return "a power of two >= 2 (e.g. 32, 64, 128), or null for one scale per row"


def check_group_divides(group_size: int | None, dims: Mapping[str, int]) -> None:
    """ValueError unless G divides every named K (the quantized input widths of a model's layers)."""
    if group_size is None:
        return
    bad = {name: k for name, k in dims.items() if k % group_size}
    if bad:
        fits = [g for g in (2 ** i for i in range(1, 13)) if all(k % g == 0 for k in dims.values())]
        raise ValueError(f"group_size={group_size} does not divide {', '.join(f'{n}={k}' for n, k in bad.items())}; "
                         f"allowed here: {', '.join(map(str, fits))} (or null)")


def valid_bits() -> tuple[float, ...]:
    """Every bit-width some quantizer accepts on some side (derived, sorted; 16 = off)."""
    out: set[float] = {OFF_BITS}
    for spec in QUANTIZER_SPECS.values():
        out.update(float(b) for b in spec.weight_bits + spec.activation_bits)
    return tuple(sorted(out))


# ---------------------------------------------------------------------------------------------
# Precision labels: the one place they are built and parsed
# ---------------------------------------------------------------------------------------------
def precision_label(quantizer: str, w_bits: float, a_bits: float, group_size: int | None = None,
                    g_bits: float = OFF_BITS) -> str:
    """"bf16" for full precision (forward and backward), else "quantizer:w{w}a{a}", then "b{g}" when the
    backward (gradient) precision g_bits is below 16, then "g{G}" for a group size: quest:w4a4,
    ternary:w1.58a8, quest:w4a4g32, quartet:w4a4b4, sr:w16a16b4 (a 16-bit forward with 4-bit gradients
    is not the base).  Per row (group_size None) and 16-bit gradients add no suffix, so labels of
    earlier runs are unchanged."""
    if float(w_bits) >= OFF_BITS and float(a_bits) >= OFF_BITS and float(g_bits) >= OFF_BITS:
        return BASE_LABEL
    return (f"{quantizer}:w{float(w_bits):g}a{float(a_bits):g}"
            + (f"b{float(g_bits):g}" if float(g_bits) < OFF_BITS else "")
            + (f"g{int(group_size)}" if group_size else ""))


def forward_label(label: str) -> str | None:
    """The forward part of a precision label ("quartet:w4a4b4g32" -> "quartet:w4a4g32"); None when the
    forward is full precision (w = a = 16)."""
    p = parse_precision_label(label)
    if p.w_bits >= OFF_BITS and p.a_bits >= OFF_BITS:
        return None
    return precision_label(p.quantizer, p.w_bits, p.a_bits, p.group_size)


def backward_label(label: str) -> str | None:
    """The backward part of a precision label ("quartet:w4a4b4" -> "quartet:b4"); None when the
    gradients are 16-bit."""
    p = parse_precision_label(label)
    return None if p.g_bits >= OFF_BITS else f"{p.quantizer}:b{p.g_bits:g}"


class Precision(NamedTuple):
    """A parsed precision label."""

    quantizer: str
    w_bits: float
    a_bits: float
    group_size: int | None = None
    g_bits: float = OFF_BITS  # backward (gradient) precision


_NUM = r"\d+(?:\.\d+)?"
_LABEL = re.compile(rf"^(?P<q>.+):w(?P<w>{_NUM})a(?P<a>{_NUM})(?:b(?P<b>{_NUM}))?(?:g(?P<g>\d+))?$")


def parse_precision_label(label: str) -> Precision:
    """Inverse of `precision_label`: (quantizer, w_bits, a_bits, group_size, g_bits);
    "bf16" → ("bf16", 16, 16, None, 16)."""
    if label == BASE_LABEL:
        return Precision(BASE_LABEL, OFF_BITS, OFF_BITS, None, OFF_BITS)
    m = _LABEL.match(label) if isinstance(label, str) else None
    if not m:
        raise ValueError(f"precision label {label!r} is not 'bf16' or 'quantizer:w<bits>a<bits>[b<bits>][g<group>]'")
    g, b = m.group("g"), m.group("b")
    return Precision(m.group("q"), float(m.group("w")), float(m.group("a")), int(g) if g else None,
                     float(b) if b else OFF_BITS)


def label_sort_key(label: str) -> tuple:
    """Natural order of precision labels for legends and tables: the base first, then by quantizer, bits
    from wide to narrow, group sizes numerically (per row last): w4a4g16 < w4a4g32 < w4a4g256 < w4a4."""
    try:
        p = parse_precision_label(label)
    except ValueError:
        return (2, str(label))
    if label == BASE_LABEL:
        return (0, "")
    return (1, p.quantizer, -p.w_bits, -p.a_bits, -p.g_bits, p.group_size if p.group_size else float("inf"))


# ---------------------------------------------------------------------------------------------
# The built-in quantizers.  "IST-DASLab/QuEST X" = class X of that repository's
# src/models/quantization/base_linear.py (the QuEST reference code); docs/design.md §3 has the
# formulas.  Issue 9 changed what ste, lsq, ternary and fp4 compute (they now follow their published
# definitions); the old ste is kept as `absmax`.
# ---------------------------------------------------------------------------------------------
HADAMARD_BLOCK = Option(128, power_of_two, "largest Hadamard block (the block used divides K)")
QUEST_OPTIONS = {
    "hadamard": Option(True, is_bool, "rotate by a block Hadamard before quantizing"),
    "trust": Option(None, positive_or_none, "trust radius T in σ units (null: half a quantization step)"),
    "hadamard_block": HADAMARD_BLOCK,
}
# gradient estimators of the fixed-level (non-uniform) quantizers, as the QuEST reference names them:
# ste = pass everywhere; clip = pass where |x| <= the outermost level; trust = pass where |x̂ − x| <= T·σ
BACKWARDS: tuple[str, ...] = ("ste", "clip", "trust")


def level_options(hadamard: bool, backward: str) -> dict[str, Option]:
    """Options of a fixed-level quantizer (fp4, gaussian) with these defaults."""
    return {
        "hadamard": Option(hadamard, is_bool, "rotate by a block Hadamard before quantizing"),
        "backward": Option(backward, one_of(*BACKWARDS), "gradient estimator: ste, clip or trust"),
        "trust": Option(None, positive_or_none, "trust radius T in σ units for backward=trust "
                                                "(null: the quantizer's default)"),
        "hadamard_block": HADAMARD_BLOCK,
    }


def trust_only_with_trust_backward(o: Mapping[str, Any]) -> str | None:
    if o.get("trust") is not None and o.get("backward") != "trust":
        return f"trust is only used with backward='trust' (backward={o.get('backward')!r}); drop trust or set it"
    return None


register_spec(QuantizerSpec(
    "bf16", "No quantization: the full-precision baseline (16 bits only).", "—",
    "quest_lab.quant.baselines:IdentityQuantizer", weight_bits=(), activation_bits=(), aliases=("none",)))
register_spec(QuantizerSpec(
    "ste", "QuEST's grid at s = α_b·RMS (no Hadamard), plain straight-through backward (QuEST's STE ablation).",
    "Bengio et al. 2013 (arXiv 1308.3432); IST-DASLab/QuEST STEQuantizer", "quest_lab.quant.baselines:STEQuantizer",
    groups=True))
register_spec(QuantizerSpec(
    "absmax", "Round-to-nearest on the 2^b grid at s = max|row|, straight-through backward (`ste` before issue 9).",
    "Bengio et al. 2013 (arXiv 1308.3432)", "quest_lab.quant.baselines:AbsmaxQuantizer", groups=True))
register_spec(QuantizerSpec(
    "clip", "QuEST's grid at s = α_b·RMS (no Hadamard); clipped STE: gradient where |x| ≤ clip_scale·s.",
    "IST-DASLab/QuEST ClipQuantizer (arXiv 2502.05003)", "quest_lab.quant.baselines:ClipQuantizer",
    options={"clip_scale": Option(1.0, positive, "gradient passes where |x| <= clip_scale·s")}, groups=True))
register_spec(QuantizerSpec(
    "hadamard_clip", "Hadamard + QuEST's grid; clipped STE in the rotated basis (the QuEST paper's 1-bit runs).",
    "IST-DASLab/QuEST HadamardClipQuantizer, clip_scale 1.3 (arXiv 2502.05003)",
    "quest_lab.quant.baselines:HadamardClipQuantizer",
    options={"clip_scale": Option(1.3, positive, "gradient passes where |x·H| <= clip_scale·s"),
             "hadamard_block": HADAMARD_BLOCK}, groups=True))
register_spec(QuantizerSpec(
    "quest", "QuEST: Hadamard rotation, Gaussian-MSE grid, trust-masked gradient.",
    "Panferov et al. 2025 (arXiv 2502.05003)", "quest_lab.quant.quest:QuestQuantizer", options=QUEST_OPTIONS,
    groups=True))
register_spec(QuantizerSpec(
    "lsq", "Learned step size: symmetric half-integer grid (k + ½)·s, one learned step per tensor.",
    "Esser et al. 2020 (arXiv 1902.08153); IST-DASLab/QuEST LSQQuantizer", "quest_lab.quant.lsq:LSQQuantizer",
    weight_bits=INT_BITS[1:], activation_bits=INT_BITS[1:], groups=True))
register_spec(QuantizerSpec(
    "ternary", "BitNet b1.58: weights {−γ, 0, γ}, γ = mean|W| per matrix; 8-bit absmax activations per token; STE.",
    "Ma et al. 2024 (arXiv 2402.17764)", "quest_lab.quant.ternary:TernaryQuantizer",
    weight_bits=(TERNARY_BITS,), activation_bits=(8,)))
register_spec(QuantizerSpec(
    "fp4", "FP4 E2M1 values × c·RMS (c Gaussian-MSE optimal); by default Hadamard + trust (the QuEST paper's FP4).",
    "OCP Microscaling formats (2023); IST-DASLab/QuEST HalfHadamardFP4TrustQuantizer",
    "quest_lab.quant.nonuniform:FP4Quantizer", weight_bits=(4,), activation_bits=(4,),
    options=level_options(hadamard=True, backward="trust"), constraints=(trust_only_with_trust_backward,), groups=True))
register_spec(QuantizerSpec(
    "gaussian", "Lloyd–Max: the MSE-optimal 2^b-level grid for N(0, 1) × RMS(row); straight-through backward.",
    "Max 1960; Lloyd 1982; IST-DASLab/QuEST GaussianSTEQuantizer", "quest_lab.quant.nonuniform:GaussianQuantizer",
    options=level_options(hadamard=False, backward="ste"), constraints=(trust_only_with_trust_backward,), groups=True))

# SLB (issue 15): weights only; the temperature schedule is in training-progress fractions
SLB_SCHEDULES: tuple[str, ...] = ("exponential", "linear", "cosine")


def slb_schedule_is_ordered(o: Mapping[str, Any]) -> str | None:
    if o["tau_end"] > o["tau_start"]:
        return f"tau_end={o['tau_end']} must be <= tau_start={o['tau_start']} (the softmax sharpens)"
    if not o["anneal_start"] < o["anneal_end"]:
        return f"anneal_start={o['anneal_start']} must be < anneal_end={o['anneal_end']}"
    return None


register_spec(QuantizerSpec(
    "slb", "Searched low-bit weights: per weight 2^b logits over QuEST's grid (s = α_b·RMS of the initial W), "
           "soft weight Σ softmax(z/τ)·v with τ annealed, hard argmax at eval and after anneal_end; "
           "memory: 2^b fp32 logits per weight (+ AdamW moments), 16× the weight at 4 bits; weights only (a16).",
    "Yang et al. 2020, NeurIPS (arXiv 2009.08695); mindspore-ai/golden-stick SlbQuantAwareTraining",
    "quest_lab.quant.slb:SLBQuantizer", weight_bits=(1, 2, 3, 4), activation_bits=(),
    options={
        "tau_start": Option(1.0, positive, "softmax temperature before annealing"),
        "tau_end": Option(1e-3, positive, "temperature reached at anneal_end"),
        "schedule": Option("exponential", one_of(*SLB_SCHEDULES), "τ from tau_start to tau_end: "
                                                                   "exponential, linear or cosine"),
        "anneal_start": Option(0.2, fraction, "fraction of training where τ starts to fall"),
        "anneal_end": Option(0.6, fraction, "fraction of training from which the weights are hard (argmax)"),
        "scale": Option("row", one_of("row", "tensor"), "grid scale α_b·RMS of the initial weight: per row "
                                                         "or per (fused) matrix"),
        "init": Option("weight", one_of("weight", "random"), "logits from the initial weight "
                                                              "(−½((w − v)/Δ)²) or N(0, 1) as the reference"),
    },
    constraints=(slb_schedule_is_ordered,)))
