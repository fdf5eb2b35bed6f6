"""hierlin_stan: fit, compare and check hierarchical linear regressions with Stan.

The model: y_i = a + b_{g[i]} x_i + e_i, e_i ~ N(0, eps), b_j ~ N(mu_b, sigma_b).
"""

__version__ = "0.1.0"

from .compare import compare  # noqa: E402
from .crosscheck import cross_check  # noqa: E402
from .data import Dataset, simulate  # noqa: E402
from .engines import ENGINES, ChainError, EngineError, get_engine  # noqa: E402
from .fitting import fit, simulate_stan  # noqa: E402
from .logdensity import Target  # noqa: E402
from .metropolis import metropolis  # noqa: E402
from .priors import Priors  # noqa: E402
from .programs import PARAMETERIZATIONS  # noqa: E402
from .sbc import sbc  # noqa: E402

__all__ = [
    "ENGINES",
    "PARAMETERIZATIONS",
    "ChainError",
    "Dataset",
    "EngineError",
    "Priors",
    "Target",
    "compare",
    "cross_check",
    "fit",
    "get_engine",
    "metropolis",
    "sbc",
    "simulate",
    "simulate_stan",
    "__version__",
]
