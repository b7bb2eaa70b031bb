"""What code produced a result: quest-lab's version and the git commit of its checkout.

`code_identity()` is stored with every fit and shown in the report's provenance; `quest-lab --version`
prints `version_text()`.
"""
from __future__ import annotations

import subprocess
from functools import lru_cache
from pathlib import Path

from quest_lab import __version__


@lru_cache(maxsize=1)
def git_commit() -> str | None:
    """The checkout's HEAD commit, with '-dirty' when tracked files are modified; None outside git."""
    here = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                                cwd=here).stdout.strip()
        if not commit:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                               text=True, timeout=5, cwd=here).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return commit + ("-dirty" if dirty else "")


def code_identity() -> dict[str, str]:
    """{"version": ..., "git_commit": ...} (no git_commit outside a git checkout)."""
    out = {"version": __version__}
    commit = git_commit()
    if commit:
        out["git_commit"] = commit
    return out


def version_text() -> str:
    commit = git_commit()
    return f"quest-lab {__version__}" + (f" (git {commit[:12]}{'-dirty' if commit.endswith('-dirty') else ''})"
                                         if commit else "")
