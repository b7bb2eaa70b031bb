"""Sweeps: YAML spec → RunConfig grid → claims → executor (Ray Tune, local, ...) → results store.

Executors are found by `load_executors()` (every `*_executor` module here registers one); Ray itself is
only imported when the ray executor runs.
"""
import importlib

# Lazy exports (PEP 562): `sweep --dry-run`, `--help` and `quest_lab.sweep.claims` must not import the
# driver (pandas, the store) until it is used.  Each name maps to the submodule that defines it.
_EXPORTS = {
    "executors": ("EXECUTORS", "ExecutorConfig", "load_executors", "make_executor", "register_executor"),
    "grid": ("ContractError", "Plan", "PlannedRun", "expand", "plan_sweep"),
    "runner": ("SweepOutcome", "SweepSetupError", "plan", "run_sweep"),
    "spec": ("SpecError", "Sweep", "SweepSpec", "load_spec", "parse_spec"),
}
_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}
__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module = importlib.import_module(f"{__name__}.{_WHERE[name]}")
    if _WHERE[name] == "executors":
        module.load_executors()  # every *_executor module registers itself
    value = getattr(module, name)
    globals()[name] = value
    return value
