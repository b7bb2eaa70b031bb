"""Sweep files: schema, validation and parsing (`load_spec`).

A sweep YAML holds::

    name: smoke                    # [A-Za-z0-9_.-]+, the sweep's key in the store
    base: {corpus: shakespeare}    # defaults for every run (any RunConfig field)
    grid:                          # axes whose values are crossed
      size: [nano, micro, tiny]
      bits: [[4, 4], [8, 8], 16]   # joint (w_bits, a_bits) axis; a scalar b means [b, b]
      tokens_per_param: [25, 50]   # or `tokens`
    include: [{size: small, bits: [4, 4], tokens: 100000}]   # extra points (merged on base)
    exclude: [{size: nano, bits: [16, 16]}]                  # drop grid points matching all keys
    resources: {cpus: 1, gpus: 0}  # per trial, fractional allowed
    max_concurrent: 2              # default: as many as the resources allow
    retries: 1                     # Ray FailureConfig(max_failures=retries)
    store: sqlite:///results.db    # any SQLAlchemy URL

Everything is checked before anything runs; every problem is a `SpecError` naming the file,
the key path (e.g. `grid.size[2]`) and the allowed values.
"""
from __future__ import annotations

import dataclasses
import re
import typing
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator

from quest_lab.quant.specs import QUANTIZER_SPECS, bits_match, fmt_bits, valid_bits
from quest_lab.run import RunConfig
from quest_lab.sizes import MODEL_SIZES

DEFAULT_STORE = "sqlite:///results.db"
MAX_SPEC_BYTES = 1 << 20  # a sweep file larger than 1 MiB is not a sweep file
MAX_YAML_VALUES = 100_000  # scalars + collections after alias expansion
SWEEP_NAME = r"[A-Za-z0-9_.\-]{1,200}"  # a sweep's key in the store (also `import --sweep`)
# The keys a sweep may set on a run: RunConfig's fields plus the joint `bits` = [w_bits, a_bits].
JOINT_BITS = "bits"


class SpecError(ValueError):
    """A sweep file is malformed.  str() is one line: `FILE: KEY.PATH: problem; allowed: ...`."""

    def __init__(self, file: str | Path, where: str, message: str) -> None:
        self.file, self.where, self.message = str(file), where, message
        super().__init__(f"{file}: {where}: {message}" if where else f"{file}: {message}")


class _Loader(yaml.SafeLoader):
    """YAML 1.2 numbers: PyYAML (YAML 1.1) reads `1e6` and `3e-4` as strings; here they are floats."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)?(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789."))


def run_fields() -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(RunConfig))


def run_keys() -> tuple[str, ...]:
    return run_fields() + (JOINT_BITS,)


_INT_FIELDS = frozenset(f.name for f in dataclasses.fields(RunConfig)
                        if "int" in str(f.type) and "float" not in str(f.type))


@lru_cache(maxsize=None)
def _field_adapters() -> dict[str, TypeAdapter]:
    hints = typing.get_type_hints(RunConfig)
    return {name: TypeAdapter(hints[name]) for name in run_fields()}


class Resources(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)
    cpus: float = Field(1.0, gt=0, allow_inf_nan=False, description="CPUs per trial (fractional allowed)")
    gpus: float = Field(0.0, ge=0, allow_inf_nan=False, description="GPUs per trial (fractional allowed)")


class SweepSpec(BaseModel):
    """The validated contents of a sweep file (structure only; see `load_spec` for semantics)."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)
    name: str = Field(pattern=f"^{SWEEP_NAME}$", max_length=200)
    base: dict[str, Any] = Field(default_factory=dict)
    grid: dict[str, list[Any]] = Field(default_factory=dict)
    include: list[dict[str, Any]] = Field(default_factory=list)
    exclude: list[dict[str, Any]] = Field(default_factory=list)
    resources: Resources = Field(default_factory=Resources)
    max_concurrent: int | None = Field(None, ge=1)
    retries: int = Field(0, ge=0, le=100)
    store: str = DEFAULT_STORE

    @field_validator("store")
    @classmethod
    def _url(cls, v: str) -> str:
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        try:
            make_url(v)
        except ArgumentError:
            raise ValueError(f"{v!r} is not a SQLAlchemy URL (e.g. sqlite:///results.db)") from None
        return v


def _loc(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _bits_value(file: str, where: str, value: Any) -> tuple[float, float]:
    """A joint bits entry: [w, a] or a scalar b meaning [b, b]."""
    allowed = fmt_bits(valid_bits())
    pair = [value, value] if isinstance(value, (int, float)) and not isinstance(value, bool) else value
    if (not isinstance(pair, (list, tuple)) or len(pair) != 2
            or not all(isinstance(b, (int, float)) and not isinstance(b, bool) for b in pair)):
        raise SpecError(file, where, f"{value!r} is not a bit-width or a [w_bits, a_bits] pair; "
                                     f"bit-widths allowed: {allowed}")
    for b in pair:
        if not bits_match(b, valid_bits()):
            raise SpecError(file, where, f"bit-width {b!r} is out of range; allowed: {allowed} (16 = off)")
    return float(pair[0]), float(pair[1])


def _check_value(file: str, where: str, key: str, value: Any) -> Any:
    """Type- and registry-check one run option; returns the normalised value."""
    if key == JOINT_BITS:
        return _bits_value(file, where, value)
    if (key in _INT_FIELDS and isinstance(value, float) and value.is_integer()
            and abs(value) < 2 ** 53):
        value = int(value)  # `tokens: 1e6` means 1000000 (and hashes like it)
    try:
        value = _field_adapters()[key].validate_python(value, strict=True)
    except ValidationError as exc:
        msg = exc.errors()[0]["msg"]
        raise SpecError(file, where, f"{value!r} has the wrong type for {key} ({msg})") from None
    if key == "size" and value not in MODEL_SIZES:
        raise SpecError(file, where, f"size {value!r} is unknown; allowed: {', '.join(MODEL_SIZES)}")
    if key == "quantizer" and value not in QUANTIZER_SPECS:
        raise SpecError(file, where, f"quantizer {value!r} is unknown; allowed: {', '.join(QUANTIZER_SPECS)}")
    if key in ("w_bits", "a_bits"):
        _bits_value(file, where, value)
    return value


def _check_point(file: str, where: str, point: dict[str, Any]) -> dict[str, Any]:
    """Check every key/value of a partial run (base, include/exclude entry)."""
    out: dict[str, Any] = {}
    for key, value in point.items():
        if key not in run_keys():
            raise SpecError(file, f"{where}.{key}", f"unknown run option; allowed: {', '.join(run_keys())}")
        out[key] = _check_value(file, f"{where}.{key}", key, value)
    if JOINT_BITS in out and ({"w_bits", "a_bits"} & set(out)):
        raise SpecError(file, where, "give either `bits` or `w_bits`/`a_bits`, not both")
    return out


@dataclasses.dataclass(frozen=True)
class Sweep:
    """A validated sweep: the raw spec plus normalised base / axes / include / exclude."""

    spec: SweepSpec
    path: str
    base: dict[str, Any]
    axes: dict[str, list[Any]]
    include: list[dict[str, Any]]
    exclude: list[dict[str, Any]]

    @property
    def name(self) -> str:
        return self.spec.name


def parse_spec(raw: Any, file: str | Path = "<sweep>") -> Sweep:
    """Validate an already-loaded YAML document.  Raises SpecError."""
    file = str(file)
    if not isinstance(raw, dict):
        raise SpecError(file, "", f"the top level must be a mapping of keys "
                                  f"({', '.join(SweepSpec.model_fields)}), got {type(raw).__name__}")
    try:
        spec = SweepSpec.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = _loc(err["loc"])
        if err["type"] == "extra_forbidden":
            parent = err["loc"][:-1]
            allowed = (Resources.model_fields if parent == ("resources",) else SweepSpec.model_fields)
            raise SpecError(file, where, f"unknown key; allowed: {', '.join(allowed)}") from None
        if err["type"] == "missing":
            raise SpecError(file, where, "required key is missing") from None
        if err["type"] == "value_error":
            raise SpecError(file, where, str(err["ctx"]["error"])) from None
        raise SpecError(file, where, f"{err['msg']} (got {err.get('input')!r})") from None

    base = _check_point(file, "base", spec.base)
    axes: dict[str, list[Any]] = {}
    for key, values in spec.grid.items():
        if key not in run_keys():
            raise SpecError(file, f"grid.{key}", f"unknown axis; allowed: {', '.join(run_keys())}")
        if not values:
            raise SpecError(file, f"grid.{key}", "axis is empty; give at least one value")
        axes[key] = [_check_value(file, f"grid.{key}[{i}]", key, v) for i, v in enumerate(values)]
        if len(set(map(repr, axes[key]))) != len(axes[key]):
            raise SpecError(file, f"grid.{key}", f"axis has duplicate values: {values!r}")
    if JOINT_BITS in axes and ({"w_bits", "a_bits"} & set(axes)):
        raise SpecError(file, "grid", "give either a `bits` axis or `w_bits`/`a_bits` axes, not both")
    if "tokens" in axes and "tokens_per_param" in axes:
        raise SpecError(file, "grid", "give either a `tokens` axis or a `tokens_per_param` axis, not both")
    include = [_check_point(file, f"include[{i}]", p) for i, p in enumerate(spec.include)]
    exclude = [_check_point(file, f"exclude[{i}]", p) for i, p in enumerate(spec.exclude)]
    for i, p in enumerate(exclude):
        if not p:
            raise SpecError(file, f"exclude[{i}]", "empty exclude entry would drop every point")
    if not axes and not include and not base:
        raise SpecError(file, "grid", "the sweep has no runs: give a grid, include entries or a base")
    return Sweep(spec=spec, path=file, base=base, axes=axes, include=include, exclude=exclude)


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def _check_expansion(root: yaml.Node, file: Path) -> None:
    """Bound the document's size *after* alias expansion (a "billion laughs" file is a few lines that
    expand to 10⁹ values) and refuse recursive aliases.  Iterative, memoised by node: linear in the
    composed graph, whatever it expands to."""
    size: dict[int, int] = {}
    on_path: set[int] = set()
    stack: list[tuple[yaml.Node, int]] = [(root, 0)]
    while stack:
        node, i = stack.pop()
        kids = _children(node)
        if i == 0:
            if id(node) in size:
                continue
            if id(node) in on_path:
                raise SpecError(file, "", "invalid YAML: an alias refers to a node that contains it")
            on_path.add(id(node))
        if i < len(kids):
            stack.append((node, i + 1))
            stack.append((kids[i], 0))
            continue
        on_path.discard(id(node))
        size[id(node)] = 1 + sum(size[id(k)] for k in kids)
        if size[id(node)] > MAX_YAML_VALUES:
            raise SpecError(file, "", f"the file expands to more than {MAX_YAML_VALUES:,} values "
                                      "(YAML aliases); a sweep file is a few hundred values at most")


def read_yaml(path: str | Path) -> Any:
    """A sweep file's YAML document, parsed with bounds: size on disk, nesting, alias expansion."""
    p = Path(path)
    if not p.is_file():
        raise SpecError(p, "", "no such sweep file")
    if p.stat().st_size > MAX_SPEC_BYTES:
        raise SpecError(p, "", f"file is {p.stat().st_size:,} bytes; a sweep file may be at most {MAX_SPEC_BYTES:,}")
    try:
        loader = _Loader(p.read_text(encoding="utf-8"))
        try:
            node = loader.get_single_node()
            if node is None:
                return None
            _check_expansion(node, p)
            return loader.construct_document(node)
        finally:
            loader.dispose()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise SpecError(p, where, f"invalid YAML: {problem}") from None
    except UnicodeDecodeError:
        raise SpecError(p, "", "not a UTF-8 text file") from None
    except RecursionError:
        raise SpecError(p, "", "invalid YAML: nested too deeply") from None


def load_spec(path: str | Path) -> Sweep:
    """Read and validate a sweep file (structure, keys, value types, registries).  Only parses:
    resolving the grid into runs (`quest_lab.sweep.grid.expand`) is the planner's job.
    Raises SpecError."""
    return parse_spec(read_yaml(path), Path(path))


_SAFE = re.compile(r"[^A-Za-z0-9_.\-]+")


def safe_name(name: str) -> str:
    return _SAFE.sub("-", name)
