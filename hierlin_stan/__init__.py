"""hierlin_stan: fit, compare and check hierarchical linear regressions with Stan.

The notebook's model: y_i = a + b_{g[i]} x_i + e_i, e_i ~ N(0, eps), b_j ~ N(mu_b, sigma_b).

Rooms, lowest first (a module imports only from rooms below its own):

* ``utils``: files, caches, locks, seeds, signals, progress, versions.
* ``model``: what the model is: data, priors, simulation.
* ``engines``: the Stan programs and the engines that run them (CmdStan, PyStan).
* ``samplers``: every sampler (Stan, numpy Metropolis, PyMC, nutpie) -> one InferenceData shape.
* ``checks``: diagnostics, recovery, cross-checks, calibration statistics.
* ``workflows``: compare, SBC, bench: several fits and their yardsticks.
* ``reports``: plots, tables and HTML written from results.
* ``cli``: the ``hierlin`` command.
"""

from .utils.versions import __version__

from .checks import diagnostics
from .checks.crosscheck import cross_check
from .engines import ENGINES, ChainError, EngineError, get_engine
from .engines.programs import PARAMETERIZATIONS
from .model.dataset import Dataset, simulate
from .model.glm import Design, design
from .model.priors import Priors
from .reports import plots, write_report
from .samplers.logdensity import Target
from .samplers.metropolis import metropolis
from .samplers.stan import fit, simulate_stan
from .workflows.compare import compare
from .workflows.models import ModelComparison, compare_models
from .workflows.sbc import sbc

__all__ = [
    "ENGINES",
    "PARAMETERIZATIONS",
    "ChainError",
    "Dataset",
    "Design",
    "EngineError",
    "ModelComparison",
    "Priors",
    "Target",
    "compare",
    "compare_models",
    "cross_check",
    "design",
    "diagnostics",
    "fit",
    "get_engine",
    "metropolis",
    "plots",
    "sbc",
    "simulate",
    "simulate_stan",
    "write_report",
    "__version__",
]
