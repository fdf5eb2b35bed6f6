"""Run several samplers on one dataset and judge them by the same numbers.

Samplers are looked up by name in :mod:`hierlin_stan.samplers.registry`.

:func:`compare` returns a :class:`Comparison`: every fit, one table row per
sampler (compile and sampling seconds kept apart, min bulk/tail-ESS over a, mu_b,
sigma_b, eps, ESS per sampling second, max R-hat, divergences, recovery), a
cross-check of every posterior against the reference (Stan marginal NUTS), and
:func:`hierlin_stan.write_report` writes CSV, Markdown and a self-contained HTML report.
"""

from __future__ import annotations

import dataclasses
import functools
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

import pandas as pd

from ..model.dataset import Dataset, simulate
from ..checks.diagnostics import recovery, sampler_stats
from ..model.priors import PriorsLike, resolve_priors
from ..samplers.registry import (
    REFERENCE,
    SAMPLERS,
    SamplerSpec,
    available_samplers,
    check_samplers,
    check_settings,
    run_sampler,
)
from ..utils.display import RichDisplay
from ..utils.progress import say
from ..utils.seeds import resolve_seed

if TYPE_CHECKING:  # pragma: no cover
    from ..utils.az import az


# The notebook's run: Metropolis on the full posterior, 200,000 iterations with the
# first half discarded (here per chain, 4 chains so that R-hat can speak; kept draws
# thinned by 10 to bound memory), next to Stan's NUTS.
PRESETS: dict[str, dict[str, Any]] = {
    "notebook": {
        "samplers": ("stan-marginal", "stan-centered", "metropolis-full"),
        "overrides": {"metropolis-full": {"draws": 100_000, "warmup": 100_000, "thin": 10}},
    },
}


@dataclasses.dataclass(repr=False)
class Comparison(RichDisplay):
    """Fits of several samplers on one dataset, and their common yardsticks.

    In Jupyter it displays as the report's verdict, its table (green rows trustworthy,
    red not) and ESS/s bars (:mod:`hierlin_stan.reports.display`).
    """

    dataset: Dataset
    fits: dict[str, "az.InferenceData"]
    specs: dict[str, SamplerSpec]
    failures: dict[str, str]
    seed: int
    priors: str

    def __repr__(self) -> str:
        failed = f", {len(self.failures)} failed ({', '.join(self.failures)})" if self.failures else ""
        return (f"Comparison({len(self.fits)} sampler(s) on N = {self.dataset.n}: {', '.join(self.fits) or 'none'}"
                f"{failed}; seed {self.seed})")

    @functools.cached_property
    def table(self) -> pd.DataFrame:
        """One row per sampler: timings, ESS, ESS/s, R-hat, divergences, recovery (computed once)."""
        rows = []
        for name, idata in self.fits.items():
            st = sampler_stats(idata)
            try:
                rec = recovery(idata)
                covered = f"{int(rec['covered'].sum())}/{len(rec)}"
            except ValueError:
                covered = "n/a"
            rows.append({
                "sampler": name,
                "label": self.specs[name].label,
                "parameterization": self.specs[name].parameterization,
                "chains x draws": f"{st['n_chains']} x {st['n_draws']}",
                "compile_seconds": st.get("compile_seconds"),
                "sampling_chain_seconds": st.get("sampling_chain_seconds"),
                "min_ess_bulk": st.get("min_ess_bulk"),
                "min_ess_tail": st.get("min_ess_tail"),
                "min_ess_bulk_per_s": st.get("min_ess_bulk_per_s"),
                "max_rhat": st.get("max_rhat"),
                "divergences": st.get("divergences"),
                "recovered_90": covered,
            })
        for name, error in self.failures.items():
            rows.append({"sampler": name, "label": self.specs[name].label + " (FAILED)",
                         "parameterization": self.specs[name].parameterization, "error": error})
        return pd.DataFrame(rows).set_index("sampler")

    def speedup(self, fast: str = REFERENCE, slow: str = "metropolis-full") -> float:
        """ESS per second of ``fast`` over that of ``slow`` (NaN if either is missing)."""
        t = self.table
        if fast not in t.index or slow not in t.index:
            return float("nan")
        return float(t.loc[fast, "min_ess_bulk_per_s"] / t.loc[slow, "min_ess_bulk_per_s"])

    def cross_checks(self, reference: str = REFERENCE, threshold: float = 4.0) -> pd.DataFrame:
        """z of every sampler's means against the reference's (combined MCSE), per parameter."""
        from ..checks.crosscheck import cross_check

        if reference not in self.fits:
            return pd.DataFrame()
        rows = {}
        for name, idata in self.fits.items():
            if name == reference:
                continue
            table = cross_check(self.fits[reference], idata, threshold=threshold)
            row = {f"z_{p}": table.loc[p, "z"] for p in table.index}
            row["passed"] = bool(table.attrs["passed"])
            rows[name] = row
        frame = pd.DataFrame.from_dict(rows, orient="index")
        frame.index.name = f"vs {reference}"
        frame.attrs["threshold"] = threshold
        return frame


def compare(
    dataset: Dataset | None = None,
    samplers: Sequence[str] | None = None,
    seed: int | None = 0,
    priors: PriorsLike = None,
    engine: str = "auto",
    preset: str | None = None,
    settings: Mapping[str, Mapping[str, Any]] | None = None,
    show_progress: bool = True,
    log: Callable[[str], None] | None = None,
) -> Comparison:
    """Run a set of samplers on one dataset.

    Parameters
    ----------
    dataset : Dataset, optional
        Default: the notebook's data (:func:`hierlin_stan.simulate` with ``seed``).
    samplers : sequence of str, optional
        Names from :data:`SAMPLERS`; default :func:`available_samplers`.
    seed : int
        Seed of the data (when simulated) and of every sampler.
    priors : optional
        As for :func:`hierlin_stan.fit`; the same for every sampler.
    engine : {"auto", "cmdstan", "pystan"}
        Stan engine.
    preset : {"notebook"}, optional
        ``"notebook"``: the notebook's Metropolis run (full posterior, 200,000
        iterations, first half discarded) next to Stan NUTS.
    settings : mapping, optional
        Per-sampler overrides, e.g. ``{"metropolis-full": {"draws": 50_000}}`` or the
        NUTS controls of a Stan sampler, ``{"stan-marginal": {"adapt_delta": 0.95,
        "metric": "dense"}}`` (see :func:`hierlin_stan.fit`). Checked before anything
        runs: an unknown key or a bad value raises a ValueError.
    show_progress : bool
        Progress bars.
    log : callable, optional
        Receives one line per sampler as it starts (default: stderr when showing progress).

    Returns
    -------
    Comparison
        A sampler that fails is recorded in ``failures`` with its error; the others still run.
    """
    overrides: dict[str, dict[str, Any]] = {}
    if preset is not None:
        if preset not in PRESETS:
            raise ValueError(f"preset={preset!r} is unknown; use one of {sorted(PRESETS)}")
        samplers = PRESETS[preset]["samplers"] if samplers is None else samplers
        overrides = {k: dict(v) for k, v in PRESETS[preset]["overrides"].items()}
    names = check_samplers(available_samplers() if samplers is None else samplers)
    for name, extra in (settings or {}).items():
        check_samplers([name])
        if name not in names:
            raise ValueError(f"settings given for {name!r}, which is not among the samplers run {names}; "
                             "add it to samplers or drop its settings")
        overrides.setdefault(name, {}).update(check_settings(SAMPLERS[name], extra))
    seed = resolve_seed(seed)
    prior = resolve_priors(priors)
    if dataset is None:
        dataset = simulate(seed=seed)
    if log is None:
        log = (lambda line: say(f"hierlin: {line}")) if show_progress else (lambda line: None)
    fits: dict[str, Any] = {}
    failures: dict[str, str] = {}
    for name in names:
        spec = SAMPLERS[name]
        log(f"running {spec.label} ...")
        try:
            fits[name] = run_sampler(spec, dataset, seed, prior, engine, show_progress, **overrides.get(name, {}))
        except Exception as err:  # noqa: BLE001 - one sampler failing must not lose the others' fits
            failures[name] = f"{type(err).__name__}: {err}"
            log(f"{name} failed: {failures[name]}")
    return Comparison(dataset, fits, {n: SAMPLERS[n] for n in names}, failures, seed, prior.describe())
