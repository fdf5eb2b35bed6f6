"""Convert a Stan engine's draws into the package's one InferenceData shape.

Every sampler (CmdStan, PyStan, Metropolis, PyMC) produces the same names and
dims, so every diagnostic and plot works on any of them unchanged:

* posterior: ``a``, ``mu_b``, ``sigma_b``, ``eps`` (chain, draw); ``b`` (chain,
  draw, group); ``y_rep`` (chain, draw, obs) when asked; ``z`` for non-centered.
* sample_stats: ``lp``, ``diverging``, ``energy``, ``tree_depth``, ``step_size``,
  ``n_steps``, ``acceptance_rate``.
* observed_data ``y`` and constant_data ``x``, ``group`` (obs).
* attrs: sampler, engine, versions, settings, timings, and ``true_*`` values.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from ..utils.az import az
from ..model.dataset import Dataset
from ..engines.base import RawDraws

STAT_NAMES = {
    "lp__": "lp",
    "accept_stat__": "acceptance_rate",
    "stepsize__": "step_size",
    "treedepth__": "tree_depth",
    "n_leapfrog__": "n_steps",
    "divergent__": "diverging",
    "energy__": "energy",
}
VAR_DIMS = {"b": ["group"], "z": ["group"], "y_rep": ["obs"]}


def to_inference_data(
    raw: RawDraws, dataset: Dataset | None, attrs: Mapping[str, Any]
) -> "az.InferenceData":
    """Build InferenceData from engine draws.

    Parameters
    ----------
    raw : RawDraws
        What the engine returned.
    dataset : Dataset, optional
        Adds observed/constant data and the true values.
    attrs : mapping
        Settings to record (sampler, parameterization, seed, ...).
    """
    posterior = {k: v for k, v in raw.variables.items() if v.size}
    stats = {}
    for stan_name, name in STAT_NAMES.items():
        if stan_name in raw.sample_stats:
            value = raw.sample_stats[stan_name]
            if name == "diverging":
                value = value.astype(bool)
            elif name in ("tree_depth", "n_steps"):
                value = value.astype(np.int64)
            stats[name] = value
    return build_inference_data(posterior, stats, dataset, {**raw.info, **attrs})


def build_inference_data(
    posterior: Mapping[str, np.ndarray],
    sample_stats: Mapping[str, np.ndarray],
    dataset: Dataset | None,
    attrs: Mapping[str, Any],
) -> "az.InferenceData":
    """Assemble the package's InferenceData shape from arrays (shared by all samplers)."""
    j = None
    coords: dict[str, Any] = {}
    if dataset is not None:
        j = dataset.n_groups
        coords = {"group": _coord(dataset.group_coords), "obs": np.arange(dataset.n)}
    elif "b" in posterior:
        coords["group"] = np.arange(1, posterior["b"].shape[-1] + 1)
    dims = {k: v for k, v in VAR_DIMS.items() if k in posterior}
    observed = constant = None
    if dataset is not None:
        observed = {"y": dataset.y}
        constant = {"x": dataset.x, "group": _coord(dataset.group_coords)[dataset.group - 1]}
        dims.update({"y": ["obs"], "x": ["obs"], "group": ["obs"]})
    cleaned = clean_attrs(attrs)
    if dataset is not None and dataset.truth is not None:
        cleaned.update({f"true_{k}": float(v) for k, v in dataset.truth.items()})
    idata = az.from_dict(
        posterior=dict(posterior),
        sample_stats=dict(sample_stats) or None,
        observed_data=observed,
        constant_data=constant,
        coords=coords,
        dims=dims,
        attrs=cleaned,
    )
    if dataset is not None and dataset.true_b is not None:
        # Its own dim: constant_data's variable ``group`` (obs) owns that name.
        idata.constant_data["true_b"] = ("group_id", dataset.true_b)
        idata.constant_data = idata.constant_data.assign_coords(group_id=_coord(dataset.group_coords))
    return idata


def _coord(labels: np.ndarray) -> np.ndarray:
    """Group names as an xarray coordinate: integers stay integers, anything else becomes text."""
    arr = np.asarray(labels)
    if arr.dtype.kind in "iu" or arr.dtype.kind == "U":
        return arr
    return np.asarray([str(v) for v in arr])


def clean_attrs(attrs: Mapping[str, Any]) -> dict[str, Any]:
    """Attributes InferenceData can store in NetCDF (None dropped, numpy scalars unwrapped, the rest as text)."""
    return {k: _attr(v) for k, v in attrs.items() if v is not None}


def _attr(value: Any) -> Any:
    """netCDF-safe attribute value."""
    if isinstance(value, (bool, np.bool_)):
        return int(value)
    if isinstance(value, (np.integer, np.floating)):
        return value.item()
    if isinstance(value, (int, float, str)):
        return value
    return str(value)
