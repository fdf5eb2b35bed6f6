"""The ``hierlin`` command line: demo, simulate, fit, install-cmdstan."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any, Sequence

DEMO_SEED = 20261124


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``hierlin`` command; return the exit status.

    Mistakes (bad input, a missing engine, an existing output folder) print a
    one-line ``hierlin: error: ...`` and exit 2; ``--debug`` shows the traceback.
    """
    from .utils.signals import install_cli_handlers

    install_cli_handlers()
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt as err:
        from .utils.signals import Terminated

        print("hierlin: interrupted; sampling stopped and no partial output was kept", file=sys.stderr)
        return 143 if isinstance(err, Terminated) else 130
    except Exception as err:  # one line for the user, the traceback with --debug
        if args.debug:
            raise
        from .engines import EngineError

        known = (ValueError, EngineError, OSError)
        kind = "" if isinstance(err, known) else f"{type(err).__name__}: "
        print(f"hierlin: error: {kind}{err}", file=sys.stderr)
        if not isinstance(err, known):
            print("hierlin: this looks like a bug; rerun with --debug and report the traceback", file=sys.stderr)
        return 2


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``hierlin`` (exposed for documentation and tests)."""
    parser = argparse.ArgumentParser(
        prog="hierlin",
        description="Fit, compare and check hierarchical linear regressions with Stan.",
    )
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    demo = sub.add_parser("demo", help="the notebook's data fitted with marginal and centered NUTS")
    demo.add_argument("--out", default="hierlin_demo", help="output folder (default: hierlin_demo)")
    _add_sampling_args(demo)
    demo.set_defaults(func=cmd_demo, seed=DEMO_SEED)

    sim = sub.add_parser("simulate", help="simulate a dataset to CSV or Stan JSON")
    sim.add_argument("--out", required=True, help="output file, .csv or .json")
    sim.add_argument("--n", type=int, default=None, help="observations (default 100)")
    sim.add_argument("--groups", default=None, help="J (equal groups) or comma-separated group sizes; default one slope per point")
    for name, default in (("a", 2.0), ("mu-b", 2.0), ("sigma-b", 1.0), ("eps", 0.0), ("x-low", 0.0), ("x-high", 10.0)):
        sim.add_argument(f"--{name}", type=float, default=default, help=f"(default {default})")
    sim.add_argument("--seed", type=int, default=None)
    sim.add_argument("--stan", action="store_true", help="simulate with the Stan program (fixed_param) instead of numpy")
    sim.add_argument("--engine", default="auto", help="with --stan: auto, cmdstan or pystan")
    sim.add_argument("--force", action="store_true", help="overwrite an existing file")
    sim.set_defaults(func=cmd_simulate)

    fit = sub.add_parser("fit", help="fit a dataset from CSV or Stan JSON")
    fit.add_argument("data", help="a .csv (with a header) or .json file")
    fit.add_argument("--x", default="x", help="CSV column of x (default x)")
    fit.add_argument("--y", default="y", help="CSV column of y (default y)")
    fit.add_argument("--group", default=None, help="CSV column of integer group labels 1..J (default: one slope per point)")
    fit.add_argument("--parameterization", default="marginal", help="marginal (default), centered or noncentered")
    fit.add_argument("--out", default=None, help="output folder (default: <data name>_fit)")
    _add_sampling_args(fit)
    fit.set_defaults(func=cmd_fit)

    inst = sub.add_parser("install-cmdstan", help="install CmdStan with cmdstanpy (needs internet access to GitHub)")
    from .engines.cmdstan_engine import CMDSTAN_VERSION

    inst.add_argument("--version", default=CMDSTAN_VERSION, help=f"CmdStan version (default {CMDSTAN_VERSION}, the Stan of PyStan)")
    inst.set_defaults(func=cmd_install_cmdstan)
    return parser


def _add_sampling_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--engine", default="auto", help="auto (default: CmdStan if installed, else PyStan), cmdstan or pystan")
    p.add_argument("--chains", type=int, default=4)
    p.add_argument("--draws", type=int, default=1000, help="kept draws per chain")
    p.add_argument("--warmup", type=int, default=1000, help="warmup iterations per chain")
    p.add_argument("--seed", type=int, default=None, help="random seed (same seed, same draws)")
    p.add_argument("--priors", default="notebook", help="notebook (default) or weakly_informative")
    p.add_argument("--prior", action="append", default=[], metavar="FIELD=VALUE",
                   help="override one prior field, e.g. --prior eps_scale=5 --prior sigma_b_family=halfnormal")
    p.add_argument("--force", action="store_true", help="replace an existing output folder")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


# ---------------------------------------------------------------- commands
def cmd_demo(args: argparse.Namespace) -> int:
    """Simulate the notebook's data, fit marginal and centered NUTS, write and judge."""
    import pandas as pd

    from . import fit, simulate
    from .report import staged_output, write_fit_report, write_table

    start = time.perf_counter()
    dataset = simulate(seed=args.seed)
    rows = []
    with staged_output(args.out, force=args.force) as folder:
        dataset.to_json(folder / "data.json")
        dataset.to_csv(folder / "data.csv")
        verdicts = []
        for parameterization in ("marginal", "centered"):
            _say(args, f"fitting {parameterization} NUTS ...")
            idata = fit(dataset, parameterization, engine=args.engine, chains=args.chains, draws=args.draws,
                        warmup=args.warmup, seed=args.seed, priors=_priors(args), show_progress=not args.quiet)
            result = write_fit_report(idata, folder, parameterization)
            rows.append(_overview_row(parameterization, idata, result))
            verdicts.append(f"== {parameterization} ==\n{result['verdict']}")
        overview = pd.DataFrame(rows).set_index("parameterization")
        write_table(overview, folder / "overview", "Demo: the notebook's data, NUTS per parameterization")
    print("\n\n".join(verdicts))
    print()
    print(overview.to_string())
    print(f"\nwrote {args.out}/ in {time.perf_counter() - start:.1f} s "
          "(overview.md, *_summary.md, *_recovery.md, *_trace.png, *_ppc_lines.png, *.nc)")
    return 0


def cmd_simulate(args: argparse.Namespace) -> int:
    """Write a simulated dataset."""
    from . import simulate, simulate_stan

    out = Path(args.out)
    if out.suffix not in (".csv", ".json"):
        raise ValueError(f"--out {out}: use a .csv or .json file name")
    if out.is_dir():
        raise ValueError(f"--out {out} is a folder; give a file name ending in .csv or .json")
    if out.exists() and not args.force:
        raise ValueError(f"{out} exists; pass --force to overwrite it")
    groups = _parse_groups(args.groups)
    kw = dict(n=args.n, a=args.a, mu_b=args.mu_b, sigma_b=args.sigma_b, eps=args.eps, groups=groups,
              x_low=args.x_low, x_high=args.x_high, seed=args.seed)
    dataset = simulate_stan(1, engine=args.engine, **kw)[0] if args.stan else simulate(**kw)
    (dataset.to_csv if out.suffix == ".csv" else dataset.to_json)(out)
    print(f"wrote {dataset!r} to {out}")
    return 0


def cmd_fit(args: argparse.Namespace) -> int:
    """Fit a dataset from a file and write the report folder."""
    from . import Dataset, fit
    from .report import staged_output, write_fit_report

    path = Path(args.data)
    if path.suffix == ".json":
        dataset = Dataset.from_json(path)
    elif path.suffix == ".csv":
        dataset = Dataset.from_csv(path, x=args.x, y=args.y, group=args.group)
    else:
        raise ValueError(f"{path}: give a .csv or a .json (Stan JSON) file")
    out = Path(args.out) if args.out else path.with_name(path.stem + "_fit")
    with staged_output(out, force=args.force) as folder:
        idata = fit(dataset, args.parameterization, engine=args.engine, chains=args.chains, draws=args.draws,
                    warmup=args.warmup, seed=args.seed, priors=_priors(args), show_progress=not args.quiet)
        result = write_fit_report(idata, folder, args.parameterization)
    print(result["verdict"])
    print(f"\nwrote {out}/")
    return 0


def cmd_install_cmdstan(args: argparse.Namespace) -> int:
    """Install CmdStan via cmdstanpy."""
    from .engines.cmdstan_engine import install

    print(f"installing CmdStan {args.version} with cmdstanpy (downloads from GitHub) ...")
    where = install(args.version)
    print(f"done: {where}. engine='auto' now uses CmdStan.")
    return 0


# ---------------------------------------------------------------- helpers
def _overview_row(name: str, idata: Any, result: dict[str, Any]) -> dict[str, Any]:
    st = result["stats"]
    rec = result["recovery"]
    return {
        "parameterization": name,
        "engine": st.get("engine"),
        "divergences": st.get("divergences"),
        "max_rhat": st.get("max_rhat"),
        "min_ess_bulk": st.get("min_ess_bulk"),
        "min_ess_bulk_per_s": st.get("min_ess_bulk_per_s"),
        "compile_seconds": st.get("compile_seconds"),
        "sampling_seconds": st.get("sampling_seconds"),
        "recovered": "n/a" if rec is None else f"{int(rec['covered'].sum())}/{len(rec)}",
    }


def _priors(args: argparse.Namespace) -> Any:
    """The preset named by --priors with the --prior FIELD=VALUE overrides applied."""
    import dataclasses

    from .priors import resolve_priors

    base = resolve_priors(args.priors)
    changes: dict[str, Any] = {}
    for item in args.prior:
        field, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"--prior {item!r}: write FIELD=VALUE, e.g. --prior eps_scale=5")
        field = field.strip()
        if field.endswith("_family"):
            changes[field] = value.strip()
        else:
            try:
                changes[field] = float(value)
            except ValueError:
                raise ValueError(f"--prior {item!r}: {value!r} is not a number") from None
    known = {f.name for f in dataclasses.fields(base)}
    unknown = sorted(set(changes) - known)
    if unknown:
        raise ValueError(f"--prior: unknown field(s) {unknown}; valid fields are {sorted(known)}")
    return dataclasses.replace(base, **changes)


def _parse_groups(text: str | None) -> int | list[int] | None:
    if text is None:
        return None
    try:
        parts = [int(p) for p in text.split(",") if p.strip()]
    except ValueError:
        raise ValueError(f"--groups {text!r}: give J (e.g. 10) or comma-separated sizes (e.g. 20,20,30)") from None
    return parts[0] if len(parts) == 1 else parts


def _say(args: argparse.Namespace, text: str) -> None:
    if not getattr(args, "quiet", False):
        print(f"hierlin: {text}", file=sys.stderr)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
