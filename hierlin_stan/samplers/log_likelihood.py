"""The ``log_likelihood`` group of a formula fit, for LOO and model comparison.

Two variables, computed in numpy after sampling from the posterior draws and the design
(:mod:`hierlin_stan.model.glm_loglik`):

* ``y`` (chain, draw, obs): log normal(y_i | X_i beta + Z_i u_g, sigma), per observation
  given the group effects. ``az.loo(idata, var_name="y")`` is leave-one-observation-out.
  Needs the rows (kept while small) and the draws of u.
* ``y_group`` (chain, draw, group): log p(y_j | beta, Sigma, sigma), per group with its
  effects integrated out. ``az.loo(idata, var_name="y_group")`` is leave-one-group-out.
  Computed from the per-group sums whatever N is; it is a function of the parameters,
  so any parameterization's draws give it (marginal and collapsed fits included).

Both hold draws x units numbers. Unless asked (``log_likelihood=True`` or a name) a
variable is written only while it holds at most :data:`MAX_LOGLIK_VALUES` numbers;
above that a warning gives the size and the way to ask for it.
"""

from __future__ import annotations

import warnings
from typing import Any, Iterable

import numpy as np

from ..model.glm import Design
from ..model.glm_loglik import (Grouping, covariance_draws, group_loglik, group_residuals, model_grouping,
                                pointwise_loglik)
from ..utils.az import az
from .inference_data import _coord

__all__ = ["LOGLIK_VARIABLES", "MAX_LOGLIK_VALUES", "add_log_likelihood", "log_likelihood_choice"]

#: The variables of the log_likelihood group and what each one means.
LOGLIK_VARIABLES = {
    "y": "per observation, given the group effects u (PSIS-LOO: leave-one-observation-out)",
    "y_group": "per group, the group effects integrated out (PSIS-LOO: leave-one-group-out)",
}
#: Write a log-likelihood variable by default while it holds at most this many numbers (40 MB).
MAX_LOGLIK_VALUES = 5_000_000


def log_likelihood_choice(which: Any) -> tuple[set[str], bool]:
    """The variables asked for and whether the size limit applies.

    ``None``/``"auto"``: both where possible, within :data:`MAX_LOGLIK_VALUES`; ``True``:
    both where possible, any size; ``False``: none; ``"y"``, ``"y_group"`` or a list of them:
    those, any size (an error when impossible).

    Raises
    ------
    ValueError
        For anything else, naming the choices.
    """
    if which is None or (isinstance(which, str) and which == "auto"):
        return set(LOGLIK_VARIABLES), True
    if which is True:
        return set(LOGLIK_VARIABLES), False
    if which is False:
        return set(), False
    names = [which] if isinstance(which, str) else list(which) if isinstance(which, Iterable) else None
    if names is None or not names or any(n not in LOGLIK_VARIABLES for n in names):
        raise ValueError(f"log_likelihood={which!r} is not understood; give None/'auto' (default), True, False, "
                         f"'y' (per observation), 'y_group' (per group) or a list of them")
    return set(names), False


def _draws(idata: "az.InferenceData", name: str, tail: tuple[int, ...]) -> np.ndarray:
    values = np.asarray(idata.posterior[name].values, float)
    return values.reshape((-1,) + tail)


def add_log_likelihood(idata: "az.InferenceData", d: Design, which: Any = None, grouping: Grouping | None = None,
                       stacklevel: int = 2) -> list[str]:
    """Compute and add the ``log_likelihood`` group of a formula fit (in place).

    Parameters
    ----------
    idata : arviz.InferenceData
        A formula fit of ``d`` (posterior ``beta``, ``sigma``, ``tau``, ``Omega``, ``u``).
    d : Design
        The design it was fitted to.
    which : None, "auto", bool, str or list of str
        See :func:`log_likelihood_choice`.
    grouping : Grouping, optional
        The groups of ``y_group``: by default the model's own; a model without group
        terms takes any grouping of its rows (so that it can join a leave-one-group-out
        comparison), and without one writes no ``y_group``.
    stacklevel : int
        Of the size warning.

    Returns
    -------
    list of str
        The variables written (also described in ``idata.attrs["log_likelihood"]``).

    Raises
    ------
    ValueError
        When a variable asked for by name cannot be computed (no rows kept, no draws of
        u, no grouping), saying what would make it possible.
    """
    import xarray as xr

    wanted, limited = log_likelihood_choice(which)
    explicit = which not in (None, True, "auto")
    post = idata.posterior
    n_chains, n_draws = int(post.sizes["chain"]), int(post.sizes["draw"])
    n_samples = n_chains * n_draws
    _, p, q = d.stats.shape
    variables: dict[str, xr.DataArray] = {}
    notes: list[str] = []

    def too_big(name: str, units: int, what: str) -> bool:
        values = n_samples * units
        if limited and values > MAX_LOGLIK_VALUES:
            warnings.warn(
                f"not writing the log likelihood {name!r} ({n_samples} draws x {units} {what} = {values:.3g} numbers, "
                f"{values * 8 / 1e6:.0f} MB, above {MAX_LOGLIK_VALUES:.0e}); pass log_likelihood={name!r} to write it"
                + (", or use 'y_group' (one number per group) for leave-one-group-out" if name == "y" else ""),
                stacklevel=stacklevel + 1)
            return True
        return False

    if "y" in wanted:
        why = None
        if d.rows is None and d.frame is None:
            why = "the design keeps no rows (built from sums)"
        elif q and "u" not in post:
            why = "the fit kept no draws of the group effects u (fit with keep_u=True)"
        if why is not None:
            if explicit:
                raise ValueError(f"log_likelihood 'y' (per observation) cannot be computed: {why}; "
                                 "'y_group' (per group) needs neither")
        elif not too_big("y", d.N, "observations"):
            u = _draws(idata, "u", (d.J, q)) if q else None
            ll = pointwise_loglik(d, _draws(idata, "beta", (p,)), _draws(idata, "sigma", ()), u)
            variables["y"] = xr.DataArray(ll.reshape(n_chains, n_draws, d.N), dims=("chain", "draw", "obs"),
                                          coords={"chain": post["chain"].values, "draw": post["draw"].values,
                                                  "obs": np.arange(d.N)})
            notes.append("y: " + LOGLIK_VARIABLES["y"])
    if "y_group" in wanted:
        if d.rows is None and d.frame is None:
            # each group's residual quadratic needs one pass over the rows, which a design
            # summarised elsewhere (Dask) does not keep
            if explicit:
                raise ValueError("log_likelihood 'y_group' (per group) cannot be computed: the design keeps no "
                                 "rows (its sums were computed elsewhere); fit data that fit in memory for LOO")
        elif grouping is None and q == 0:
            if explicit:
                raise ValueError(f"log_likelihood 'y_group' (per group): {d.formula.canonical!r} has no grouping "
                                 "factor; compare it through hs.compare_models(..., by='group'), which groups its "
                                 "rows as the other models do")
        else:
            groups = grouping if grouping is not None else model_grouping(d)
            if not too_big("y_group", groups.n_groups, "groups"):
                sigma_u = None
                if q:
                    omega = _draws(idata, "Omega", (q, q)) if "Omega" in post else None
                    sigma_u = covariance_draws(_draws(idata, "tau", (q,)), omega)
                ll = group_loglik(d, _draws(idata, "beta", (p,)), _draws(idata, "sigma", ()), sigma_u,
                                  group_residuals(d, groups))
                variables["y_group"] = xr.DataArray(
                    ll.reshape(n_chains, n_draws, groups.n_groups), dims=("chain", "draw", "group"),
                    coords={"chain": post["chain"].values, "draw": post["draw"].values,
                            "group": _coord(groups.labels)})
                notes.append(f"y_group: {LOGLIK_VARIABLES['y_group']}, groups of {groups.factor!r}")
    if not variables:
        return []
    ds = xr.Dataset(variables, attrs={"log_likelihood": "; ".join(notes)})
    if "log_likelihood" in idata.groups():
        keep = [v for v in idata.log_likelihood.data_vars if v not in variables]
        ds = xr.merge([idata.log_likelihood[keep], ds]) if keep else ds
        idata.log_likelihood = ds
    else:
        idata.add_groups({"log_likelihood": ds})
    idata.attrs["log_likelihood"] = "; ".join(notes)
    return list(variables)
