"""Fit settings shared by the fitting code and the CLI, defined once; imports nothing (the CLI reads
them to build its options without loading scipy or pandas)."""

METHODS = ("grid", "varpro")  # full start grid, or variable projection over the exponents
MODES = ("staged", "joint")  # 16-bit base first, or a global search over all parameters (the default)
HUBER_DELTA = 1e-3  # δ of the Huber loss on log residuals (the Quartet authors use 1e-4)
