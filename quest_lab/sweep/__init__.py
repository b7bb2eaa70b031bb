"""Sweeps: YAML spec → RunConfig grid → claims → executor (Ray Tune, local, ...) → results store.

Executors are found by `load_executors()` (every `*_executor` module here registers one); Ray itself is
only imported when the ray executor runs.
"""
from quest_lab.sweep.executors import EXECUTORS, ExecutorConfig, load_executors, make_executor, register_executor
from quest_lab.sweep.grid import ContractError, Plan, PlannedRun, expand, plan_sweep
from quest_lab.sweep.runner import SweepOutcome, SweepSetupError, plan, run_sweep
from quest_lab.sweep.spec import SpecError, Sweep, SweepSpec, load_spec, parse_spec

load_executors()

__all__ = [
    "EXECUTORS", "ContractError", "ExecutorConfig", "Plan", "PlannedRun", "SpecError", "Sweep", "SweepOutcome",
    "SweepSetupError", "SweepSpec", "expand", "load_executors", "load_spec", "make_executor", "parse_spec", "plan",
    "plan_sweep", "register_executor", "run_sweep",
]
