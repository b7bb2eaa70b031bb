"""Lloyd–Max levels: the MSE-optimal non-uniform quantizer of N(0, 1) with 2^b levels (torch-free).

A level set c_1 < … < c_n is MSE-optimal for a density p when (Max 1960, Lloyd 1982)
  * each threshold is the midpoint of its two levels, t_i = (c_i + c_{i+1})/2, and
  * each level is the centroid of its cell, c_i = E[X | t_{i−1} < X ≤ t_i];
for N(0, 1) the centroid has a closed form, (φ(t_{i−1}) − φ(t_i)) / (Φ(t_i) − Φ(t_{i−1})).
Lloyd's iteration alternates the two conditions.  For a log-concave density (the Gaussian is one)
their solution is unique, hence the global optimum (Fleischer 1964; Trushkin 1982).

`LLOYD_MAX_LEVELS[b]` holds the positive half of the 2^b levels (the set is symmetric), computed
once by `lloyd_max_levels` and stored so that training never needs scipy; a test recomputes it.
Values at 1–4 bits agree with Max (1960), Table I.

Note: the QuEST reference's Gaussian quantizers (`GaussianSTEQuantizer._compute_gaussian_levels`
in IST-DASLab/QuEST base_linear.py) stop after 20 Lloyd steps from linspace(−3, 3, 2^b), which is
converged at 1–2 bits only (at 4 bits its outermost level is 2.970 instead of 2.733).  Our
`gaussian` quantizer uses the converged optimum; `lloyd_iterate` reproduces the reference's
truncated levels where a reference constant depends on them (`FP4_REFERENCE_TRUST`).
"""
from __future__ import annotations

import functools

import numpy as np

# bits -> positive half of the 2^b Lloyd–Max levels of N(0, 1), ascending (σ units)
LLOYD_MAX_LEVELS: dict[int, tuple[float, ...]] = {
    1: (
        0.797884560803,
    ),
    2: (
        0.452780034636, 1.510417608499,
    ),
    3: (
        0.245094178944, 0.756005281206, 1.343909278505, 2.151945704537,
    ),
    4: (
        0.128395029851, 0.388048299490, 0.656759118532, 0.942340456486, 1.256231197346, 1.618046386021,
        2.069017226530, 2.732589570994,
    ),
    5: (
        0.065889659771, 0.198051829669, 0.331378305760, 0.466699522976, 0.604933624009, 0.747135703687,
        0.894565117388, 1.048783319924, 1.211804380611, 1.386340339589, 1.576228078616, 1.787233217707,
        2.028728399399, 2.317739404198, 2.691119577379, 3.260732493403,
    ),
    6: (
        0.033409506370, 0.100278289304, 0.167296903369, 0.234566985336, 0.302192846372, 0.370282645259,
        0.438949671659, 0.508313780898, 0.578503030519, 0.649655581064, 0.721921940570, 0.795467655841,
        0.870476586544, 0.947154944743, 1.025736349077, 1.106488239538, 1.189720141861, 1.275794486434,
        1.365141019810, 1.458276374698, 1.555831224705, 1.658588900424, 1.767541882992, 1.883977240523,
        2.009611042594, 2.146810217056, 2.298981209761, 2.471304797619, 2.672273835256, 2.917406790723,
        3.240437055012, 3.744101270896,
    ),
    7: (
        0.016828169457, 0.050490863963, 0.084172642059, 0.117886282303, 0.151644647910, 0.185460721426,
        0.219347640239, 0.253318733170, 0.287387558425, 0.321567943181, 0.355874025138, 0.390320296360,
        0.424921649778, 0.459693428774, 0.494651480296, 0.529812212018, 0.565192654117, 0.600810526322,
        0.636684310980, 0.672833332970, 0.709277847452, 0.746039136561, 0.783139616338, 0.820602955402,
        0.858454207125, 0.896719957345, 0.935428490053, 0.974609973888, 1.014296672853, 1.054523185264,
        1.095326715799, 1.136747386454, 1.178828593495, 1.221617418968, 1.265165107336, 1.309527620190,
        1.354766285166, 1.400948559186, 1.448148931373, 1.496449997814, 1.545943749374, 1.596733125793,
        1.648933905585, 1.702677023460, 1.758111437747, 1.815407713497, 1.874762548495, 1.936404558718,
        2.000601771741, 2.067671475613, 2.137993378045, 2.212027517527, 2.290339162024, 2.373634269842,
        2.462811433132, 2.559040521523, 2.663886538633, 2.779514257983, 2.909047073611, 3.057246150610,
        3.231933204268, 3.447430271106, 3.734936644365, 4.189694156735,
    ),
    8: (
        0.008446193223, 0.025339383099, 0.042234983804, 0.059134604341, 0.076039856392, 0.092952355401,
        0.109873721652, 0.126805581368, 0.143749567811, 0.160707322402, 0.177680495847, 0.194670749285,
        0.211679755457, 0.228709199885, 0.245760782085, 0.262836216801, 0.279937235263, 0.297065586481,
        0.314223038567, 0.331411380096, 0.348632421504, 0.365887996523, 0.383179963666, 0.400510207761,
        0.417880641527, 0.435293207212, 0.452749878293, 0.470252661224, 0.487803597272, 0.505404764404,
        0.523058279268, 0.540766299241, 0.558531024577, 0.576354700643, 0.594239620249, 0.612188126097,
        0.630202613335, 0.648285532234, 0.666439390998, 0.684666758709, 0.702970268427, 0.721352620441,
        0.739816585698, 0.758365009410, 0.777000814858, 0.795727007410, 0.814546678754, 0.833463011385,
        0.852479283341, 0.871598873228, 0.890825265538, 0.910162056296, 0.929612959051, 0.949181811245,
        0.968872580993, 0.988689374297, 1.008636442730, 1.028718191651, 1.048939188954, 1.069304174443,
        1.089818069851, 1.110485989576, 1.131313252193, 1.152305392819, 1.173468176395, 1.194807611983,
        1.216329968166, 1.238041789662, 1.259949915261, 1.282061497232, 1.304384022325, 1.326925334557,
        1.349693659943, 1.372697633393, 1.395946328011, 1.419449287046, 1.443216558800, 1.467258734837,
        1.491586991860, 1.516213137711, 1.541149661982, 1.566409791799, 1.592007553460, 1.617957840654,
        1.644276490147, 1.670980365934, 1.698087453040, 1.725616962321, 1.753589447873, 1.782026938917,
        1.810953088377, 1.840393340756, 1.870375122435, 1.900928058087, 1.932084217670, 1.963878399358,
        1.996348454913, 2.029535665419, 2.063485177080, 2.098246509060, 2.133874148226, 2.170428249372,
        2.207975464335, 2.246589929736, 2.286354451403, 2.327361934733, 2.369717125274, 2.413538744417,
        2.458962133592, 2.506142560422, 2.555259397388, 2.606521466466, 2.660173965701, 2.716507578584,
        2.775870652706, 2.838685786763, 2.905472903671, 2.976882133707, 3.053742016175, 3.137132531708,
        3.228500210584, 3.329848470006, 3.444071678220, 3.575587972397, 3.731666262229, 3.925637783941,
        4.186595442849, 4.603535612434,
    ),
}


def _centroids(levels: np.ndarray) -> np.ndarray:
    """One Lloyd step on N(0, 1): midpoint thresholds, then each cell's centroid (closed form)."""
    from scipy.stats import norm

    t = np.r_[-np.inf, (levels[1:] + levels[:-1]) / 2, np.inf]
    lo, hi = t[:-1], t[1:]
    # cell probability without cancellation in the upper tail (sf = 1 − Φ)
    mass = np.where(lo > 0, norm.sf(lo) - norm.sf(hi), norm.cdf(hi) - norm.cdf(lo))
    return (norm.pdf(lo) - norm.pdf(hi)) / mass


def lloyd_iterate(levels, iterations: int) -> np.ndarray:
    """`iterations` plain Lloyd steps on N(0, 1) from the given (sorted) levels."""
    c = np.asarray(levels, dtype=np.float64)
    for _ in range(iterations):
        c = _centroids(c)
    return c


def lloyd_max_levels(bits: int, tol: float = 1e-12) -> np.ndarray:
    """All 2^b Lloyd–Max levels of N(0, 1), ascending, recomputed with numpy/scipy.

    Starts from the high-resolution (Panter–Dite) point density φ^{1/3} ∝ N(0, 3), runs 100 Lloyd
    steps, then solves Lloyd's fixed point c = centroids(c) with `scipy.optimize.root` (plain
    iteration converges very slowly at 7–8 bits: ~10^6 steps).  Raises if the fixed point is not met.
    """
    from scipy.optimize import root
    from scipy.stats import norm

    if not isinstance(bits, int) or bits < 1:
        raise ValueError(f"bits={bits!r} must be a positive int")
    n = 2 ** bits
    start = np.sqrt(3.0) * norm.ppf((np.arange(n) + 0.5) / n)
    c = root(lambda v: _centroids(v) - v, lloyd_iterate(start, 100), method="hybr").x
    residual = float(np.max(np.abs(_centroids(c) - c)))
    if residual > tol:
        raise RuntimeError(f"Lloyd–Max at {bits} bits did not converge (max |centroid − level| = {residual:.2e})")
    return c


@functools.lru_cache(maxsize=None)
def signed_levels(bits: int) -> tuple[float, ...]:
    """All 2^b stored Lloyd–Max levels, ascending (the table's positive half mirrored)."""
    try:
        half = LLOYD_MAX_LEVELS[int(bits)]
    except KeyError:
        raise ValueError(f"bits={bits!r} has no Lloyd–Max table; allowed: "
                         f"{', '.join(str(b) for b in LLOYD_MAX_LEVELS)}") from None
    return tuple(-v for v in reversed(half)) + half


__all__ = ["LLOYD_MAX_LEVELS", "lloyd_iterate", "lloyd_max_levels", "signed_levels"]
