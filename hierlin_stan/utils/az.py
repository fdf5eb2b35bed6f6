"""Import ArviZ once, without its refactor FutureWarning on every import."""

import warnings

with warnings.catch_warnings():
    warnings.simplefilter("ignore", FutureWarning)
    import arviz as az  # noqa: F401

__all__ = ["az"]
