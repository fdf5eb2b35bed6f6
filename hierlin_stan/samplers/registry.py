"""The samplers the package can run, by name, and how to run one.

Samplers are named ``<family>-<variant>``:

* ``stan-collapsed``, ``stan-marginal``, ``stan-centered``, ``stan-noncentered``: Stan NUTS (CmdStan
  or PyStan; on CmdStan the notebook model's collapsed and marginal programs run with the fused
  C++ gradient).
* ``metropolis-marginal``, ``metropolis-full`` (and, for formulas, ``metropolis-collapsed``):
  the package's numpy adaptive random-walk Metropolis on the marginal posterior, or on the
  full one (every group effect, as the notebook sampled every slope).
* ``pymc-nuts-centered``, ``pymc-nuts-marginal``, ``pymc-metropolis-centered``,
  ``nutpie-marginal``, ``nutpie-centered``: PyMC (the ``pymc`` extra; nutpie when installed).
* ``bambi`` (formulas only): bambi's default model and sampler with our priors.

One name, two kinds of model, chosen by whether a formula is given: without one a
sampler runs the notebook's model (names a, mu_b, sigma_b, eps, b; the Stan programs
``centered``, ``marginal``, ... and :class:`~hierlin_stan.samplers.logdensity.Target`);
with ``formula=...`` the same sampler runs that formula's model (names beta, tau, sigma,
Omega, u; the programs ``glm_*``, :class:`~hierlin_stan.samplers.glm_logdensity.GLMTarget`,
:mod:`~hierlin_stan.samplers.pymc_glm`). :attr:`SamplerSpec.models` says which kinds a
sampler runs. Every workflow (compare, SBC, bench) looks samplers up here and runs them
with :func:`run_sampler`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
import warnings
from typing import TYPE_CHECKING, Any, Iterator, Mapping, Sequence

from ..engines.controls import CONTROL_NAMES, NutsControls

if TYPE_CHECKING:  # pragma: no cover
    from ..utils.az import az

__all__ = ["SamplerSpec", "SAMPLERS", "REFERENCE", "available_samplers", "check_samplers", "check_settings",
           "parse_samplers", "run_sampler"]


@dataclasses.dataclass(frozen=True)
class SamplerSpec:
    """How to run one sampler: its family, parameterization, default settings and the models it runs.

    ``models``: ``"notebook"`` (the notebook's model, a Dataset) and/or ``"formula"``
    (any formula, :func:`hierlin_stan.design`).
    """

    name: str
    label: str
    family: str  # "stan", "metropolis", "pymc", "bambi"
    parameterization: str
    method: str = "nuts"
    chains: int = 4
    draws: int = 1000
    warmup: int = 1000
    thin: int = 1
    models: tuple[str, ...] = ("notebook", "formula")


SAMPLERS: dict[str, SamplerSpec] = {
    s.name: s
    for s in (
        SamplerSpec("stan-collapsed", "Stan NUTS, collapsed", "stan", "collapsed"),
        SamplerSpec("stan-marginal", "Stan NUTS, marginal", "stan", "marginal"),
        SamplerSpec("stan-centered", "Stan NUTS, centered", "stan", "centered"),
        SamplerSpec("stan-noncentered", "Stan NUTS, non-centered", "stan", "noncentered"),
        SamplerSpec("metropolis-marginal", "Metropolis (numpy), marginal", "metropolis", "marginal",
                    "metropolis", 4, 20_000, 5_000, 5),
        SamplerSpec("metropolis-full", "Metropolis (numpy), full posterior", "metropolis", "full",
                    "metropolis", 4, 20_000, 20_000, 10),
        SamplerSpec("metropolis-collapsed", "Metropolis (numpy), collapsed", "metropolis", "collapsed",
                    "metropolis", 4, 20_000, 5_000, 5, models=("formula",)),
        SamplerSpec("pymc-nuts-centered", "PyMC NUTS, centered", "pymc", "centered"),
        SamplerSpec("pymc-nuts-marginal", "PyMC NUTS, marginal", "pymc", "marginal"),
        SamplerSpec("pymc-metropolis-centered", "PyMC Metropolis, centered", "pymc", "centered",
                    "metropolis", 4, 20_000, 20_000, 10),
        SamplerSpec("nutpie-marginal", "nutpie NUTS, marginal", "pymc", "marginal", "nutpie"),
        SamplerSpec("nutpie-centered", "nutpie NUTS, centered", "pymc", "centered", "nutpie"),
        SamplerSpec("bambi", "bambi (PyMC NUTS, non-centered)", "bambi", "noncentered", models=("formula",)),
    )
}
REFERENCE = "stan-marginal"
DEFAULT_SAMPLERS = ("stan-collapsed", "stan-marginal", "stan-centered", "stan-noncentered", "metropolis-marginal", "metropolis-full")
#: The default set for a formula: every parameterization of the general programs.
DEFAULT_FORMULA_SAMPLERS = ("stan-marginal", "stan-collapsed", "stan-centered", "stan-noncentered",
                            "metropolis-marginal", "metropolis-collapsed", "metropolis-full")
PYMC_SAMPLERS = ("pymc-nuts-centered", "pymc-nuts-marginal", "pymc-metropolis-centered")
NUTPIE_SAMPLERS = ("nutpie-marginal",)
BAMBI_SAMPLERS = ("bambi",)


def _model_kind(formula: bool) -> str:
    return "formula" if formula else "notebook"


def available_samplers(formula: bool = False) -> tuple[str, ...]:
    """Default sampler set on this machine: Stan and Metropolis always, PyMC/nutpie (and, for a formula, bambi)
    when installed.

    Parameters
    ----------
    formula : bool
        The set for a formula's model (adds ``metropolis-collapsed``
        and ``bambi``) rather than the notebook's.
    """
    names = list(DEFAULT_FORMULA_SAMPLERS if formula else DEFAULT_SAMPLERS)
    try:
        from .pymc_backend import nutpie_available, pymc_available

        if pymc_available()[0]:
            names += PYMC_SAMPLERS
            if nutpie_available()[0]:
                names += NUTPIE_SAMPLERS
            if formula:
                from .bambi_backend import bambi_available

                if bambi_available()[0]:
                    names += BAMBI_SAMPLERS
    except ImportError:  # pragma: no cover - modules always present
        pass
    return tuple(names)


def check_samplers(names: Sequence[str], formula: bool = False) -> list[str]:
    """Validate sampler names (a sequence, or one comma-separated string); raise a ValueError listing the choices.

    With ``formula=False`` (the notebook's model) a formula-only sampler is refused,
    saying that it needs a formula.
    """
    if isinstance(names, str):
        names = [part.strip() for part in names.split(",") if part.strip()]
    names = list(names)
    if not names:
        raise ValueError(f"no samplers given; choose from {sorted(SAMPLERS)}")
    unknown = [n for n in names if n not in SAMPLERS]
    if unknown:
        raise ValueError(f"unknown sampler(s) {unknown}; choose from {sorted(SAMPLERS)}")
    if len(set(names)) != len(names):
        raise ValueError(f"sampler list {names} repeats a name")
    kind = _model_kind(formula)
    wrong = [n for n in names if kind not in SAMPLERS[n].models]
    if wrong:
        raise ValueError(f"sampler(s) {wrong} run formulas only: give formula=... (CLI: --formula), e.g. "
                         "formula='y ~ x + (1 + x | g)', or drop them")
    return names


# Arguments that run_sampler sets itself: not settings.
_SET_BY_RUN = {"dataset", "data", "design", "formula", "dropna", "parameterization", "target", "sampler", "engine",
               "seed", "priors", "show_progress"}


def settings_accepted(spec: SamplerSpec, formula: bool = False) -> list[str]:
    """The setting names sampler ``spec`` takes (its function's keyword arguments) for the given kind of model."""
    if spec.family == "stan":
        from .stan import fit as function
    elif spec.family == "metropolis":
        from .metropolis import metropolis as function
    elif spec.family == "bambi":
        from .bambi_backend import fit_bambi as function
    elif formula:
        from .pymc_glm import fit_pymc_formula as function
    else:
        from .pymc_backend import fit_pymc as function
    names = [n for n in inspect.signature(function).parameters if n not in _SET_BY_RUN]
    if spec.family in ("pymc", "bambi"):
        names.append("thin")  # thinned after sampling by run_sampler
    if spec.family == "pymc" and formula:
        names = [n for n in names if n != "keep_u"] + ["keep_b"]  # the name every sampler takes
    return sorted(names)


def check_settings(spec: SamplerSpec, settings: Mapping[str, Any], formula: bool = False) -> dict[str, Any]:
    """Check settings of sampler ``spec`` before anything runs; return them as a dict.

    Raises
    ------
    ValueError
        For a setting the sampler does not take (naming those it does), a NUTS
        control given to a sampler that is not Stan's NUTS, or a bad NUTS control.
    """
    if not isinstance(settings, Mapping):
        raise ValueError(f"settings for {spec.name} must be a mapping such as {{'draws': 2000}}; got {settings!r}")
    accepted = settings_accepted(spec, formula)
    unknown = sorted(set(settings) - set(accepted))
    if unknown:
        controls = [k for k in unknown if k in CONTROL_NAMES]
        hint = (f"; {', '.join(controls)} set(s) Stan's NUTS: give it to a stan-* sampler" if controls else "")
        raise ValueError(f"settings for {spec.name}: unknown key(s) {unknown}; it takes {accepted}{hint}")
    if spec.family == "stan":
        NutsControls.from_settings(settings, chains=settings.get("chains", spec.chains))
    return dict(settings)


def run_sampler(
    spec: SamplerSpec,
    dataset: Any,
    seed: int,
    priors: Any = None,
    engine: str = "auto",
    show_progress: bool = True,
    formula: str | None = None,
    design: Any = None,
    **settings: Any,
) -> "az.InferenceData":
    """Run one sampler with its default settings updated by ``settings``.

    Parameters
    ----------
    spec : SamplerSpec
    dataset : Dataset, DataFrame, path or Design
        The notebook's Dataset, or (with ``formula``) the data of the formula.
    seed : int
    priors : optional
        The notebook's priors (a preset, mapping or Priors) or, with ``formula``, the
        formula's (a mapping or GLMPriors).
    engine : {"auto", "cmdstan", "pystan"}
        Stan engine of the stan-* samplers.
    show_progress : bool
    formula : str, optional
        Run the sampler on this formula's model (see the module docstring).
    design : Design, optional
        The design of ``dataset`` and ``formula`` when already built (compare builds it
        once for every sampler).
    **settings
        Sampler settings (chains, draws, warmup, thin, NUTS controls, ...).

    Raises
    ------
    ValueError
        For a sampler that does not run this kind of model, or bad settings.
    """
    kind = _model_kind(formula is not None)
    if kind not in spec.models:
        raise ValueError(f"{spec.name} runs formulas only: give formula=..., e.g. 'y ~ x + (1 + x | g)'")
    kw = {"chains": spec.chains, "draws": spec.draws, "warmup": spec.warmup, "thin": spec.thin, **settings}
    if formula is not None:
        from ..model.glm import design as make_design

        d = design if design is not None else make_design(dataset, formula)
        return _run_formula(spec, dataset, d, formula, seed, priors, engine, show_progress, kw)
    if spec.family == "stan":
        from .stan import fit

        return fit(dataset, spec.parameterization, engine=engine, seed=seed, priors=priors,
                   show_progress=show_progress, **kw)
    if spec.family == "metropolis":
        from .metropolis import metropolis

        return metropolis(dataset, target=spec.parameterization, seed=seed, priors=priors,
                          show_progress=show_progress, **kw)
    from .pymc_backend import fit_pymc

    thin = _pop_thin(kw)
    with _quiet_blas():
        idata = fit_pymc(dataset, spec.parameterization, sampler=spec.method, seed=seed, priors=priors,
                         show_progress=show_progress, **kw)
    return _thinned(idata, thin)


def _run_formula(spec: SamplerSpec, data: Any, d: Any, formula: str, seed: int, priors: Any, engine: str,
                 show_progress: bool, kw: dict[str, Any]) -> "az.InferenceData":
    """:func:`run_sampler` for a formula's model, on the design ``d``."""
    if spec.family == "stan":
        from .stan import fit

        return fit(d, spec.parameterization, formula=formula, engine=engine, seed=seed, priors=priors,
                   show_progress=show_progress, **kw)
    if spec.family == "metropolis":
        from .metropolis import metropolis

        return metropolis(d, target=spec.parameterization, formula=formula, seed=seed, priors=priors,
                          show_progress=show_progress, **kw)
    thin = _pop_thin(kw)
    keep = kw.pop("keep_b", None)
    with _quiet_blas():
        if spec.family == "bambi":
            from .bambi_backend import fit_bambi

            idata = fit_bambi(data, formula, seed=seed, priors=priors, show_progress=show_progress, design=d, **kw)
        else:
            from .pymc_glm import fit_pymc_formula

            idata = fit_pymc_formula(d, formula, spec.parameterization, sampler=spec.method, seed=seed,
                                     priors=priors, show_progress=show_progress, keep_u=keep, **kw)
    return _thinned(idata, thin)


def _pop_thin(kw: dict[str, Any]) -> int:
    thin = kw.pop("thin")
    if isinstance(thin, bool) or not isinstance(thin, int) or thin < 1:
        raise ValueError(f"thin={thin!r} must be a positive integer")
    return int(thin)


@contextlib.contextmanager
def _quiet_blas() -> Iterator[None]:
    """PyTensor from pip warns that it found no optimised BLAS: noise in a comparison's output."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*BLAS.*", category=UserWarning)
        yield


def _thinned(idata: "az.InferenceData", thin: int) -> "az.InferenceData":
    """PyMC keeps every draw: thin afterwards, as the other samplers do while sampling."""
    if thin > 1:
        idata = idata.sel(draw=slice(None, None, thin))
        idata.attrs["thin"] = thin
    return idata


def parse_samplers(text: str | None, formula: bool = False) -> list[str] | None:
    """Sampler names from a comma-separated string (the CLI's ``--samplers``); None for the default set.

    ``formula``: the names are for a formula's model (formula-only samplers allowed).

    Raises
    ------
    ValueError
        For ``list``, an empty list or an unknown name: one line listing every
        choice and the ones installed here.
    """
    if text is None:
        return None
    names = [part.strip() for part in text.split(",") if part.strip()]

    def choices() -> str:
        return (f"choose from {', '.join(SAMPLERS)} (installed here: {', '.join(available_samplers())}; "
                f"for a formula: {', '.join(available_samplers(formula=True))})")

    if not names or names == ["list"]:
        raise ValueError(f"--samplers {text!r}: give comma-separated sampler names; {choices()}")
    unknown = [n for n in names if n not in SAMPLERS]
    if unknown:
        raise ValueError(f"--samplers: unknown sampler(s) {', '.join(unknown)}; {choices()}")
    return check_samplers(names, formula=formula)
