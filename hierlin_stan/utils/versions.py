"""The package version, and the versions a result records so it can be rerun."""

from __future__ import annotations

import platform

__version__ = "0.1.0"

__all__ = ["__version__", "environment_versions"]


def environment_versions() -> dict[str, str]:
    """Versions needed to rerun a result: package, Python, platform, numpy, arviz."""
    import numpy as np

    from .az import az

    return {
        "hierlin_stan_version": __version__,
        "python_version": platform.python_version(),
        "platform": platform.platform(),
        "numpy_version": np.__version__,
        "arviz_version": az.__version__,
    }
