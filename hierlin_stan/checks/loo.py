"""PSIS-LOO through ArviZ for formula fits: which likelihood, Pareto-k diagnostics, and a verdict.

A formula fit carries two log likelihoods (:mod:`hierlin_stan.samplers.log_likelihood`):
``y`` per observation given the group effects, and ``y_group`` per group with them
integrated out. :data:`BY` names them: LOO ``by="obs"`` leaves one observation out,
``by="group"`` one whole group (how well a model predicts a new group).

PSIS-LOO is an importance-sampling estimate; the Pareto shape k of each unit's weights
says whether it can be trusted (Vehtari, Gelman & Gabry 2017; Vehtari et al. 2024): k at
most ArviZ's ``good_k`` = min(1 - 1/log10(S), 0.7) is fine, above it the estimate for that
unit is unreliable, above 1 it is not even finite-variance. :func:`pareto_k_diagnostics`
counts them and says what to do.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from typing import Any, Mapping

import numpy as np
import pandas as pd

from ..utils.az import az

__all__ = ["BY", "UNITS", "ParetoK", "relative_efficiency", "loo", "pareto_k_diagnostics", "compare_loo",
           "difference_verdict", "pareto_advice", "ELPD_SMALL", "DSE_RATIO"]

#: LOO by what -> the log_likelihood variable it reads.
BY = {"obs": "y", "group": "y_group"}
#: LOO by what -> what one unit is called (plural).
UNITS = {"obs": "observations", "group": "groups"}
#: Differences of elpd below this are small whatever their SE (Sivula, Magnusson & Vehtari 2022).
ELPD_SMALL = 4.0
#: A larger difference is clear when it exceeds this many standard errors of the difference.
DSE_RATIO = 2.0


def _check_by(by: str) -> str:
    if by not in BY:
        raise ValueError(f"by={by!r} is not a LOO unit; use 'obs' (leave one observation out, log likelihood 'y') "
                         "or 'group' (leave one group out, 'y_group')")
    return by


def relative_efficiency(idata: "az.InferenceData") -> float:
    """Mean relative efficiency (ESS / draws) of the posterior, as ArviZ's loo takes it.

    ArviZ averages the ESS of every posterior value; a constant one (the unit diagonal of
    Omega) has an undefined ESS that would make the average NaN, so those are skipped.
    """
    post = idata.posterior
    n_samples = int(post.sizes["chain"]) * int(post.sizes["draw"])
    if int(post.sizes["chain"]) == 1:
        return 1.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        ess = az.ess(post, method="mean")
        values = np.hstack([np.asarray(ess[v].values, float).ravel() for v in ess.data_vars])
    values = values[np.isfinite(values)]
    return float(values.mean() / n_samples) if values.size else 1.0


def loo(idata: "az.InferenceData", by: str = "obs") -> Any:
    """PSIS-LOO of a formula fit (``arviz.loo``, pointwise) on the likelihood ``by`` names.

    Parameters
    ----------
    idata : arviz.InferenceData
        With a ``log_likelihood`` group (formula fits write one).
    by : {"obs", "group"}
        ``obs``: log likelihood ``y``, leave one observation out; ``group``: ``y_group``,
        leave one group out.

    Returns
    -------
    arviz.ELPDData
        ``elpd_loo``, ``se``, ``p_loo``, ``loo_i``, ``pareto_k``, ``good_k``, ...

    Raises
    ------
    ValueError
        When the fit has no such log likelihood, saying how to write it.
    """
    name = BY[_check_by(by)]
    if "log_likelihood" not in idata.groups() or name not in idata.log_likelihood:
        have = list(idata.log_likelihood.data_vars) if "log_likelihood" in idata.groups() else []
        raise ValueError(f"LOO by={by!r} reads the log likelihood {name!r}, which this fit does not have "
                         f"(it has {have or 'none'}); fit with log_likelihood={name!r}, or add it with "
                         "hierlin_stan.samplers.log_likelihood.add_log_likelihood(idata, design, "
                         f"{name!r})")
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Estimated shape parameter of Pareto")  # we report k ourselves
        return az.loo(idata, pointwise=True, var_name=name, reff=relative_efficiency(idata))


@dataclasses.dataclass
class ParetoK:
    """Pareto-k diagnostics of one LOO.

    Attributes
    ----------
    by : str
        ``obs`` or ``group``.
    good_k : float
        ArviZ's threshold for the number of draws, min(1 - 1/log10(S), 0.7).
    n : int
        Units (observations or groups).
    good, bad, very_bad : int
        Units with k <= good_k, good_k < k <= 1, k > 1.
    max_k : float
    worst : list of (label, k)
        The units above good_k, worst first (at most 10).
    """

    by: str
    good_k: float
    n: int
    good: int
    bad: int
    very_bad: int
    max_k: float
    worst: list[tuple[str, float]]

    @property
    def ok(self) -> bool:
        """Every k at most good_k."""
        return self.bad + self.very_bad == 0

    @property
    def high(self) -> int:
        """Units above good_k."""
        return self.bad + self.very_bad

    def summary(self) -> str:
        """E.g. ``k > 0.70 for 3 of 240 observations (max 0.93)``."""
        if self.ok:
            return f"all k <= {self.good_k:.3g} ({self.n} {UNITS[self.by]}, max {self.max_k:.2f})"
        very = f", {self.very_bad} above 1" if self.very_bad else ""
        return f"k > {self.good_k:.3g} for {self.high} of {self.n} {UNITS[self.by]}{very} (max {self.max_k:.2f})"

    def advice(self) -> str:
        """What to do about high k (empty when every k is fine)."""
        if self.ok:
            return ""
        where = ", ".join(f"{label} ({k:.2f})" for label, k in self.worst[:5])
        more = "" if self.high <= 5 else f" and {self.high - 5} more"
        text = f"{self.summary()}: PSIS-LOO is unreliable for {where}{more}. " + pareto_advice(self.by)
        if self.good_k < 0.7 and self.very_bad == 0 and self.max_k <= 0.7:
            text += f" With more draws the threshold rises to 0.7 (it is {self.good_k:.3g} for this many draws)."
        return text


def pareto_advice(by: str) -> str:
    """What to do when Pareto k are high, for LOO by ``obs`` or ``group``."""
    if _check_by(by) == "obs":
        return ("In a hierarchical model this usually means an observation weighs heavily on its own group's "
                "effects (small groups, an unusual point): use leave-one-group-out (by='group'), whose likelihood "
                "integrates the group effects out, or refit without those observations (exact LOO, K-fold) or use "
                "moment matching; a more robust model (e.g. Student-t errors) may also help.")
    return ("The posterior changes a lot when such a group is left out (a large or unusual group): refit without it "
            "(exact leave-one-group-out, or K-fold by group) to check the comparison.")


def pareto_k_diagnostics(elpd: Any, by: str = "obs") -> ParetoK:
    """Count the Pareto k of one LOO (:func:`loo`) by ArviZ's bins and name the worst units."""
    _check_by(by)
    k = elpd.pareto_k
    values = np.asarray(k.values, float).ravel()
    dim = k.dims[0] if k.dims else None
    labels = [str(v) for v in k[dim].values] if dim is not None and dim in k.coords else [str(i) for i in range(values.size)]
    if by == "obs":
        labels = [f"#{v}" for v in labels]
    good_k = float(getattr(elpd, "good_k", 0.7))
    high = np.flatnonzero(values > good_k)
    order = high[np.argsort(-values[high])][:10]
    return ParetoK(by, good_k, int(values.size), int((values <= good_k).sum()),
                   int(((values > good_k) & (values <= 1.0)).sum()), int((values > 1.0).sum()),
                   float(np.nanmax(values)) if values.size else float("nan"),
                   [(labels[i], float(values[i])) for i in order])


def compare_loo(loos: Mapping[str, Any], seed: int | None = 0) -> pd.DataFrame:
    """``arviz.compare`` of precomputed LOOs with stacking weights, best first.

    Columns (ArviZ's): ``rank``, ``elpd_loo``, ``p_loo``, ``elpd_diff`` (to the best),
    ``weight`` (stacking), ``se``, ``dse`` (SE of the difference), ``warning``, ``scale``.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        warnings.filterwarnings("ignore", message="The inplace keyword")  # inside ArviZ, pandas >= 3.1
        table = az.compare(dict(loos), ic="loo", method="stacking", seed=seed)
    table.index.name = "model"
    return table


def difference_verdict(elpd_diff: float, dse: float) -> str:
    """``clearly worse`` when the elpd difference to the best is > 4 and > 2 SE, else ``indistinguishable``."""
    if not math.isfinite(elpd_diff) or elpd_diff == 0.0:
        return "best"
    if elpd_diff > ELPD_SMALL and (not math.isfinite(dse) or elpd_diff > DSE_RATIO * dse):
        return "clearly worse"
    return "indistinguishable"
