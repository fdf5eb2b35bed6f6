"""The NUTS controls every Stan engine takes: adapt_delta, max_treedepth, metric, step_size, inits.

:class:`NutsControls` holds them, checks them once at the boundary (errors name the
bad value and the fix) and is what both engines receive, so CmdStan and PyStan run
exactly the same settings. Its defaults are Stan's own (adapt_delta 0.8, tree depth
10, diagonal metric, initial step size 1, inits drawn uniformly from (-2, 2) on the
unconstrained scale), and :meth:`NutsControls.describe` gives what was used for
``idata.attrs``.
"""

from __future__ import annotations

import dataclasses
import json
import math
import numbers
from typing import Any, Mapping, Sequence, Union

import numpy as np

#: A radius (Stan's ``init=r``), a dict of constrained starting values (all chains),
#: or a list of such dicts, one per chain.
InitsLike = Union[None, float, Mapping[str, Any], Sequence[Mapping[str, Any]]]

METRICS = ("diag", "dense")
_METRIC_ALIASES = {"diag": "diag", "diag_e": "diag", "dense": "dense", "dense_e": "dense"}
#: Names of the controls, as ``fit`` and the sampler settings take them.
CONTROL_NAMES = ("adapt_delta", "max_treedepth", "metric", "step_size", "inits")
MAX_TREEDEPTH_LIMIT = 30  # 2^30 leapfrog steps per draw: beyond that a typo, not a setting


@dataclasses.dataclass(frozen=True, eq=True)
class NutsControls:
    """Settings of Stan's adaptive NUTS, checked; defaults are Stan's.

    Attributes
    ----------
    adapt_delta : float
        Target acceptance statistic of step-size adaptation, in (0, 1). Higher means
        smaller steps: fewer divergences, more leapfrog steps per draw.
    max_treedepth : int
        Largest tree depth (at most 2^depth leapfrog steps per draw), 1..30.
    metric : {"diag", "dense"}
        Adapted inverse metric: diagonal, or a dense matrix (strongly correlated
        posteriors; CmdStan only, httpstan runs the diagonal metric alone).
    step_size : float
        Initial step size (warm-up adapts it), > 0.
    inits : float, dict or tuple of dicts
        A radius r >= 0: unconstrained starting values uniform on (-r, r) (0: all
        unconstrained values 0); a dict of constrained starting values (parameters
        left out are drawn as with radius 2); or one such dict per chain.
    """

    adapt_delta: float = 0.8
    max_treedepth: int = 10
    metric: str = "diag"
    step_size: float = 1.0
    inits: Any = 2.0

    @classmethod
    def make(
        cls,
        adapt_delta: float | None = None,
        max_treedepth: int | None = None,
        metric: str | None = None,
        step_size: float | None = None,
        inits: InitsLike = None,
        chains: int | None = None,
    ) -> "NutsControls":
        """Check the controls and fill in Stan's defaults for those left as None.

        Parameters
        ----------
        adapt_delta, max_treedepth, metric, step_size, inits
            As the attributes; None keeps Stan's default.
        chains : int, optional
            Number of chains, to check that a list of inits has one dict per chain.

        Raises
        ------
        ValueError
            Naming the bad value and what to give instead.
        """
        default = cls()
        return cls(
            adapt_delta=default.adapt_delta if adapt_delta is None else check_adapt_delta(adapt_delta),
            max_treedepth=default.max_treedepth if max_treedepth is None else check_max_treedepth(max_treedepth),
            metric=default.metric if metric is None else check_metric(metric),
            step_size=default.step_size if step_size is None else check_step_size(step_size),
            inits=default.inits if inits is None else check_inits(inits, chains),
        )

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any], chains: int | None = None) -> "NutsControls":
        """The controls among ``settings`` (other keys are ignored), checked."""
        return cls.make(**{k: settings[k] for k in CONTROL_NAMES if k in settings}, chains=chains)

    def chain_inits(self, chain: int) -> tuple[float, dict[str, Any]]:
        """Radius and constrained starting values of chain ``chain`` (1-based), as Stan takes them."""
        if isinstance(self.inits, tuple):
            return 2.0, dict(self.inits[chain - 1])
        if isinstance(self.inits, dict):
            return 2.0, dict(self.inits)
        return float(self.inits), {}

    def describe(self) -> dict[str, Any]:
        """What was used, for ``idata.attrs``: numbers as such, dict/list inits as JSON text."""
        inits = self.inits
        if isinstance(inits, (dict, tuple)):
            inits = json.dumps(_plain(inits), sort_keys=True)
        return {"adapt_delta": self.adapt_delta, "max_treedepth": self.max_treedepth, "metric": self.metric,
                "step_size": self.step_size, "inits": inits}


# ------------------------------------------------------------------ checks
def _real(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(float(value))


def check_adapt_delta(value: Any) -> float:
    """``value`` as a float in (0, 1), else a ValueError with an example."""
    if not _real(value) or not 0.0 < float(value) < 1.0:
        raise ValueError(f"adapt_delta={value!r} must lie in (0, 1), e.g. 0.95 (Stan's default 0.8; "
                         "higher means smaller steps and fewer divergences)")
    return float(value)


def check_max_treedepth(value: Any) -> int:
    """``value`` as an int in 1..30, else a ValueError with an example."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or not 1 <= value <= MAX_TREEDEPTH_LIMIT:
        raise ValueError(f"max_treedepth={value!r} must be an integer from 1 to {MAX_TREEDEPTH_LIMIT}, e.g. 12 "
                         "(Stan's default 10; each level doubles the leapfrog steps allowed per draw)")
    return int(value)


def check_metric(value: Any) -> str:
    """``"diag"`` or ``"dense"`` (``"diag_e"``/``"dense_e"`` accepted), else a ValueError."""
    if not isinstance(value, str) or value not in _METRIC_ALIASES:
        raise ValueError(f"metric={value!r} is unknown; use 'diag' (Stan's default) or 'dense' "
                         "(a dense inverse metric, for strongly correlated posteriors)")
    return _METRIC_ALIASES[value]


def check_step_size(value: Any) -> float:
    """``value`` as a finite float > 0, else a ValueError with an example."""
    if not _real(value) or not float(value) > 0:
        raise ValueError(f"step_size={value!r} must be a finite number > 0, e.g. 0.1 "
                         "(the initial step size; warm-up adapts it; Stan's default 1)")
    return float(value)


def check_inits(value: Any, chains: int | None = None) -> Any:
    """A radius (float >= 0), a dict of starting values, or a tuple of dicts (one per chain).

    Checks the form only (finite numbers); the names and the support of each
    parameter are checked by the fit, which knows the program.
    """
    if _real(value):
        if float(value) < 0:
            raise ValueError(f"inits={value!r}: a radius must be >= 0, e.g. 0.5 (starting values uniform on "
                             "(-0.5, 0.5) on the unconstrained scale; Stan's default 2)")
        return float(value)
    if isinstance(value, Mapping):
        return _check_init_dict(value, "inits")
    if isinstance(value, Sequence) and not isinstance(value, (str, bytes)) and value \
            and all(isinstance(v, Mapping) for v in value):
        if chains is not None and len(value) != chains:
            raise ValueError(f"inits has {len(value)} dicts for chains={chains}; give one dict per chain, "
                             "or one dict for every chain")
        return tuple(_check_init_dict(v, f"inits[{i}]") for i, v in enumerate(value))
    raise ValueError(f"inits={value!r} is not understood; give a radius (a number >= 0, e.g. 0.5), a dict of "
                     "starting values (e.g. {'a': 2.0, 'sigma_b': 1.0}) or a list of such dicts, one per chain")


def _check_init_dict(value: Mapping[str, Any], where: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, item in value.items():
        if not isinstance(key, str):
            raise ValueError(f"{where} has the key {key!r}; keys are parameter names such as 'a' or 'sigma_b'")
        if _real(item):
            out[key] = float(item)
            continue
        try:
            array = np.asarray(item, dtype=float)
        except (TypeError, ValueError):
            array = None
        if array is None or array.ndim == 0 or not np.all(np.isfinite(array)):
            raise ValueError(f"{where}[{key!r}]={item!r} must be a finite number or an array of finite numbers")
        out[key] = array.tolist()
    return out


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    return value
