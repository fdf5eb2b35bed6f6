"""The samplers the package can run, by name, and how to run one.

Samplers are named ``<family>-<variant>``:

* ``stan-collapsed``, ``stan-marginal``, ``stan-centered``, ``stan-noncentered``: Stan NUTS (CmdStan
  or PyStan; on CmdStan the collapsed and marginal programs run with the fused C++ gradient).
* ``metropolis-marginal``, ``metropolis-full``: the package's numpy adaptive
  random-walk Metropolis on the marginal posterior, or on the full one (all b, as
  the notebook did).
* ``pymc-nuts-centered``, ``pymc-nuts-marginal``, ``pymc-metropolis-centered``,
  ``nutpie-marginal``, ``nutpie-centered``: PyMC (the ``pymc`` extra; nutpie when installed).

Every workflow (compare, SBC, bench) looks samplers up here.
"""

from __future__ import annotations

import dataclasses
import inspect
import warnings
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from ..engines.controls import CONTROL_NAMES, NutsControls
from ..model.dataset import Dataset
from ..model.priors import PriorsLike

if TYPE_CHECKING:  # pragma: no cover
    from ..utils.az import az

__all__ = ["SamplerSpec", "SAMPLERS", "REFERENCE", "available_samplers", "check_samplers", "check_settings",
           "parse_samplers", "run_sampler"]


@dataclasses.dataclass(frozen=True)
class SamplerSpec:
    """How to run one sampler: its family, parameterization and default settings."""

    name: str
    label: str
    family: str  # "stan", "metropolis", "pymc"
    parameterization: str
    method: str = "nuts"
    chains: int = 4
    draws: int = 1000
    warmup: int = 1000
    thin: int = 1


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
        SamplerSpec("pymc-nuts-centered", "PyMC NUTS, centered", "pymc", "centered"),
        SamplerSpec("pymc-nuts-marginal", "PyMC NUTS, marginal", "pymc", "marginal"),
        SamplerSpec("pymc-metropolis-centered", "PyMC Metropolis, centered", "pymc", "centered",
                    "metropolis", 4, 20_000, 20_000, 10),
        SamplerSpec("nutpie-marginal", "nutpie NUTS, marginal", "pymc", "marginal", "nutpie"),
        SamplerSpec("nutpie-centered", "nutpie NUTS, centered", "pymc", "centered", "nutpie"),
    )
}
REFERENCE = "stan-marginal"
DEFAULT_SAMPLERS = ("stan-collapsed", "stan-marginal", "stan-centered", "stan-noncentered", "metropolis-marginal", "metropolis-full")
PYMC_SAMPLERS = ("pymc-nuts-centered", "pymc-nuts-marginal", "pymc-metropolis-centered")
NUTPIE_SAMPLERS = ("nutpie-marginal",)

def available_samplers() -> tuple[str, ...]:
    """Default sampler set on this machine: Stan and Metropolis always, PyMC/nutpie when installed."""
    names = list(DEFAULT_SAMPLERS)
    try:
        from .pymc_backend import nutpie_available, pymc_available

        if pymc_available()[0]:
            names += PYMC_SAMPLERS
            if nutpie_available()[0]:
                names += NUTPIE_SAMPLERS
    except ImportError:  # pragma: no cover - module always present
        pass
    return tuple(names)


def check_samplers(names: Sequence[str]) -> list[str]:
    """Validate sampler names (a sequence, or one comma-separated string); raise a ValueError listing the choices."""
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
    return names


# Arguments that run_sampler sets itself: not settings.
_SET_BY_RUN = {"dataset", "parameterization", "target", "sampler", "engine", "seed", "priors", "show_progress"}


def settings_accepted(spec: SamplerSpec) -> list[str]:
    """The setting names sampler ``spec`` takes (its function's keyword arguments)."""
    if spec.family == "stan":
        from .stan import fit as function
    elif spec.family == "metropolis":
        from .metropolis import metropolis as function
    else:
        from .pymc_backend import fit_pymc as function
    names = [n for n in inspect.signature(function).parameters if n not in _SET_BY_RUN]
    if spec.family == "pymc":
        names.append("thin")  # thinned after sampling by run_sampler
    return sorted(names)


def check_settings(spec: SamplerSpec, settings: Mapping[str, Any]) -> dict[str, Any]:
    """Check settings of sampler ``spec`` before anything runs; return them as a dict.

    Raises
    ------
    ValueError
        For a setting the sampler does not take (naming those it does), a NUTS
        control given to a sampler that is not Stan's NUTS, or a bad NUTS control.
    """
    if not isinstance(settings, Mapping):
        raise ValueError(f"settings for {spec.name} must be a mapping such as {{'draws': 2000}}; got {settings!r}")
    accepted = settings_accepted(spec)
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
    dataset: Dataset,
    seed: int,
    priors: PriorsLike = None,
    engine: str = "auto",
    show_progress: bool = True,
    **settings: Any,
) -> "az.InferenceData":
    """Run one sampler with its default settings updated by ``settings``."""
    kw = {"chains": spec.chains, "draws": spec.draws, "warmup": spec.warmup, "thin": spec.thin, **settings}
    if spec.family == "stan":
        from .stan import fit

        return fit(dataset, spec.parameterization, engine=engine, seed=seed, priors=priors,
                   show_progress=show_progress, **kw)
    if spec.family == "metropolis":
        from .metropolis import metropolis

        return metropolis(dataset, target=spec.parameterization, seed=seed, priors=priors,
                          show_progress=show_progress, **kw)
    from .pymc_backend import fit_pymc

    thin = int(kw.pop("thin"))
    if thin < 1:
        raise ValueError(f"thin={thin} must be a positive integer")
    with warnings.catch_warnings():
        # PyTensor from pip warns that it found no optimised BLAS: noise in a comparison's output.
        warnings.filterwarnings("ignore", message=".*BLAS.*", category=UserWarning)
        idata = fit_pymc(dataset, spec.parameterization, sampler=spec.method, seed=seed, priors=priors,
                         show_progress=show_progress, **kw)
    if thin > 1:  # PyMC keeps every draw: thin afterwards, as the other samplers do while sampling
        idata = idata.sel(draw=slice(None, None, thin))
        idata.attrs["thin"] = thin
    return idata


def parse_samplers(text: str | None) -> list[str] | None:
    """Sampler names from a comma-separated string (the CLI's ``--samplers``); None for the default set.

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
        return f"choose from {', '.join(SAMPLERS)} (installed here: {', '.join(available_samplers())})"

    if not names or names == ["list"]:
        raise ValueError(f"--samplers {text!r}: give comma-separated sampler names; {choices()}")
    unknown = [n for n in names if n not in SAMPLERS]
    if unknown:
        raise ValueError(f"--samplers: unknown sampler(s) {', '.join(unknown)}; {choices()}")
    return check_samplers(names)
