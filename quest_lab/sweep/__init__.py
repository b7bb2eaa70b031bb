"""Sweeps: YAML spec → RunConfig grid → executor (Ray Tune or local) → results store.

Importing this package registers the built-in executors (`local`, `ray`); Ray itself is only
imported when the ray executor runs.
"""
from quest_lab.sweep import ray_executor as _ray_executor  # noqa: F401  (registers "ray")
from quest_lab.sweep.executors import EXECUTORS, ExecutorConfig, make_executor, register_executor
from quest_lab.sweep.grid import Plan, PlannedRun, expand, plan_sweep
from quest_lab.sweep.runner import SweepOutcome, SweepSetupError, plan, run_sweep
from quest_lab.sweep.spec import SpecError, Sweep, SweepSpec, load_spec, parse_spec

__all__ = [
    "EXECUTORS", "ExecutorConfig", "Plan", "PlannedRun", "SpecError", "Sweep", "SweepOutcome",
    "SweepSetupError", "SweepSpec", "expand", "load_spec", "make_executor", "parse_spec", "plan",
    "plan_sweep", "register_executor", "run_sweep",
]
