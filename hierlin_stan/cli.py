"""The ``hierlin`` command line: demo, simulate, fit, compare, models, sbc, bench, install-cmdstan."""

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

    sim = sub.add_parser("simulate", help="simulate a dataset to CSV or Stan JSON (or, with --formula, CSV/Parquet)")
    sim.add_argument("--out", required=True, help="output file, .csv or .json (with --formula: .csv or .parquet)")
    sim.add_argument("--formula", default=None,
                     help="simulate the general model, e.g. 'y ~ x + (1 + x | g)'; the truth goes to <out>.truth.json")
    sim.add_argument("--truth", action="append", default=[], metavar="NAME=VALUE",
                     help="with --formula: a true value, e.g. --truth 'beta[x]=2' --truth sigma=0.5 --truth 'Omega=0.5'")
    sim.add_argument("--n", type=int, default=None, help="observations (default 100)")
    sim.add_argument("--groups", default=None, help="J (equal groups) or comma-separated group sizes; default one slope per point")
    for name, default in (("a", 2.0), ("mu-b", 2.0), ("sigma-b", 1.0), ("eps", 0.0), ("x-low", 0.0), ("x-high", 10.0)):
        sim.add_argument(f"--{name}", type=float, default=default, help=f"(default {default})")
    sim.add_argument("--seed", type=int, default=None)
    sim.add_argument("--stan", action="store_true", help="simulate with the Stan program (fixed_param) instead of numpy")
    sim.add_argument("--engine", default="auto", help="with --stan: auto, cmdstan or pystan")
    sim.add_argument("--force", action="store_true", help="overwrite an existing file")
    sim.set_defaults(func=cmd_simulate)

    fit = sub.add_parser("fit", help="fit a dataset from CSV, Parquet or Stan JSON (any formula with --formula)")
    fit.add_argument("data", help="a .csv (with a header), .parquet or .json file")
    fit.add_argument("--formula", default=None,
                     help="the model, e.g. 'log_radon ~ floor + (1 + floor | county)' (lme4/brms syntax, one grouping "
                          "factor); without it the notebook's model of --x, --y, --group")
    fit.add_argument("--dropna", action="store_true", help="with --formula: drop rows with missing values (reported)")
    fit.add_argument("--scheduler", default=None, metavar="ADDRESS",
                     help="with --formula: compute the per-group sums on this Dask scheduler (e.g. tcp://host:8786), "
                          "then fit here; DATA may then be Parquet too big for memory: a file, folder or glob "
                          "('data/*.parquet')")
    fit.add_argument("--dask", action="store_true",
                     help="with --formula: as --scheduler, on a LocalCluster of this machine started for the run")
    fit.add_argument("--x", default="x", help="CSV column of x (default x)")
    fit.add_argument("--y", default="y", help="CSV column of y (default y)")
    fit.add_argument("--group", default=None, help="CSV column of integer group labels 1..J (default: one slope per point)")
    fit.add_argument("--parameterization", default="marginal",
                     help="marginal (default), centered or noncentered; with --formula also collapsed")
    fit.add_argument("--out", default=None, help="output folder (default: <data name>_fit)")
    _add_sampling_args(fit)
    fit.set_defaults(func=cmd_fit)

    cmp = sub.add_parser("compare", help="run several samplers on one dataset: table, plots, HTML report")
    cmp.add_argument("data", nargs="?", default=None,
                     help="with --formula: a .csv or .parquet file (default: the notebook's data, simulated)")
    cmp.add_argument("--formula", default=None,
                     help="compare the samplers on this model, e.g. 'y ~ x + (1 + x | g)' (needs DATA)")
    cmp.add_argument("--prior", action="append", default=[], metavar="NAME=DIST",
                     help="with --formula: a prior, e.g. --prior 'beta=normal(0, 10)' --prior 'tau[x]=halfnormal(1)'")
    cmp.add_argument("--dropna", action="store_true", help="with --formula: drop rows with missing values (reported)")
    cmp.add_argument("--samplers", default=None, metavar="A,B,...",
                     help="comma-separated sampler names (default: every one installed); --samplers list names them")
    cmp.add_argument("--preset", default=None, help="notebook: the notebook's Metropolis run (200,000 iterations) next to NUTS")
    cmp.add_argument("--out", default="hierlin_compare", help="output folder (default: hierlin_compare)")
    cmp.add_argument("--force", action="store_true", help="replace an existing output folder")
    cmp.add_argument("--seed", type=int, default=None, help=f"seed of the data and every sampler (default {DEMO_SEED}, as demo)")
    cmp.add_argument("--engine", default="auto", help="Stan engine: auto (default), cmdstan or pystan")
    cmp.add_argument("--quiet", action="store_true", help="no progress bars or progress lines")
    _add_nuts_args(cmp, "of every stan-* sampler run")
    cmp.set_defaults(func=cmd_compare, seed=DEMO_SEED)

    models = sub.add_parser("models", help="which model? fit several formulas to one dataset, compare them by PSIS-LOO")
    models.add_argument("data", help="a .csv or .parquet file")
    models.add_argument("--formula", action="append", default=[], required=True,
                        help="a model, e.g. 'y ~ x + (1 | g)'; give it once per model (at least two)")
    models.add_argument("--name", action="append", default=[],
                        help="a name per --formula, in the same order (default: the formulas themselves)")
    models.add_argument("--by", default="obs", choices=["obs", "group"],
                        help="the LOO of the main table: obs (leave one observation out, log likelihood y; default) "
                             "or group (leave one group out, y_group); the other is shown too when small")
    models.add_argument("--group", default=None,
                        help="grouping column of leave-one-group-out (default: the formulas' grouping factor)")
    models.add_argument("--parameterization", default="marginal",
                        help="of every fit: marginal (default), collapsed, centered or noncentered")
    models.add_argument("--prior", action="append", default=[], metavar="NAME=DISTRIBUTION",
                        help="a prior for every model that has the parameter, e.g. --prior 'sigma=halfnormal(1)' "
                             "(others: data-scaled defaults)")
    models.add_argument("--dropna", action="store_true", help="drop rows with missing values (the same rows for all)")
    models.add_argument("--out", default="hierlin_models", help="output folder (default: hierlin_models)")
    models.add_argument("--force", action="store_true", help="replace an existing output folder")
    models.add_argument("--engine", default="auto", help="auto (default), cmdstan or pystan")
    models.add_argument("--chains", type=int, default=4)
    models.add_argument("--draws", type=int, default=1000, help="kept draws per chain")
    models.add_argument("--warmup", type=int, default=1000, help="warmup iterations per chain")
    models.add_argument("--seed", type=int, default=None, help="random seed of every fit (same seed, same draws)")
    models.add_argument("--quiet", action="store_true", help="no progress bars")
    _add_nuts_args(models, "of every fit")
    models.set_defaults(func=cmd_models)

    sbc = sub.add_parser("sbc", help="simulation-based calibration of a sampler: ranks, p-values, plots, HTML")
    sbc.add_argument("--n-sims", type=int, default=200, help="simulations K (default 200)")
    sbc.add_argument("--sampler", default="stan-marginal",
                     help="stan-marginal (default), stan-collapsed, stan-centered, stan-noncentered, metropolis-marginal, "
                          "metropolis-full; with --formula also metropolis-collapsed")
    sbc.add_argument("--formula", default=None,
                     help="calibrate on this model, e.g. 'y ~ x + (1 + x | g)' (simulated with glm_simulate.stan)")
    sbc.add_argument("--priors", default="weakly_informative", help="simulating priors: weakly_informative (default) or notebook")
    sbc.add_argument("--prior", action="append", default=[], metavar="FIELD=VALUE",
                     help="override one prior field; with --formula a distribution, e.g. --prior 'beta=normal(0, 2)' "
                          "(beta, tau, sigma and Omega default to normal(0, 2), halfnormal(1), halfnormal(1), lkj(2))")
    sbc.add_argument("--fit-priors", default=None, help="fit with other priors than simulated (shows miscalibration)")
    sbc.add_argument("--fit-prior", action="append", default=[], metavar="NAME=DIST",
                     help="with --formula: fit with this prior instead of the simulating one, e.g. "
                          "--fit-prior 'sigma=halfnormal(0.1)' (shows miscalibration)")
    sbc.add_argument("--n", type=int, default=None, help="observations per dataset (default: 8 groups of 5)")
    sbc.add_argument("--groups", default=None, help="J (equal groups) or comma-separated group sizes")
    sbc.add_argument("--chains", type=int, default=None, help="chains per fit (default 4)")
    sbc.add_argument("--draws", type=int, default=None, help="draws per chain (default 500 for NUTS)")
    sbc.add_argument("--warmup", type=int, default=None, help="warmup per chain (default 500 for NUTS)")
    sbc.add_argument("--thin", type=int, default=None, help="keep every thin-th draw (default 1 for NUTS, 5 for Metropolis)")
    sbc.add_argument("--n-ranks", type=int, default=99, help="L, posterior draws each truth is ranked among (default 99)")
    sbc.add_argument("--executor", default="pool", help="pool (default: local processes) or dask")
    sbc.add_argument("--scheduler", default=None, help="with --executor dask: scheduler address (default: a LocalCluster)")
    sbc.add_argument("--n-jobs", type=int, default=2, help="worker processes (default 2)")
    sbc.add_argument("--out", default="hierlin_sbc", help="output folder; rerunning resumes (default: hierlin_sbc)")
    sbc.add_argument("--force", action="store_true", help="discard earlier records in --out made with other settings")
    sbc.add_argument("--seed", type=int, default=0, help="master seed (default 0)")
    sbc.add_argument("--engine", default="auto", help="Stan engine: auto (default), cmdstan or pystan")
    sbc.add_argument("--quiet", action="store_true", help="no progress bar")
    _add_nuts_args(sbc, "of every fit (stan-* samplers)")
    sbc.set_defaults(func=cmd_sbc)

    bench = sub.add_parser("bench", help="benchmark: ESS/s per sampler, seconds and ESS/s vs N (table + log-log plots)")
    bench.add_argument("--quick", action="store_true", help="a few minutes (short runs, small N) instead of the full plan")
    bench.add_argument("--large", action="store_true",
                       help="add one slope per point at N = 1e5 to the program-variant table (pure rows: minutes)")
    bench.add_argument("--out", default="hierlin_bench", help="output folder (default: hierlin_bench)")
    bench.add_argument("--samplers", default=None, help="comma-separated sampler names (default: all available)")
    bench.add_argument("--engine", default="auto", help="Stan engine: auto (default), cmdstan or pystan")
    bench.add_argument("--force", action="store_true", help="replace an existing output folder")
    bench.add_argument("--quiet", action="store_true", help="no progress lines")
    bench.set_defaults(func=cmd_bench)

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
                   help="override one prior field, e.g. --prior eps_scale=5 --prior sigma_b_family=halfnormal; with "
                        "--formula a distribution, e.g. --prior 'beta=normal(0, 10)' --prior 'tau[x]=halfnormal(1)'")
    p.add_argument("--force", action="store_true", help="replace an existing output folder")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    _add_nuts_args(p, "")


def _add_nuts_args(p: argparse.ArgumentParser, whose: str) -> None:
    """Stan's NUTS controls; values are checked by fit() (one-line errors naming the fix)."""
    g = p.add_argument_group(f"Stan NUTS controls {whose}".strip(), "defaults are Stan's")
    g.add_argument("--adapt-delta", default=None, metavar="D",
                   help="target acceptance of step-size adaptation in (0, 1) (default 0.8); raise to 0.95-0.99 "
                        "against divergences")
    g.add_argument("--max-treedepth", default=None, metavar="N", help="largest NUTS tree depth, 1..30 (default 10)")
    g.add_argument("--metric", default=None, metavar="diag|dense",
                   help="adapted inverse metric: diag (default) or dense (CmdStan engine)")
    g.add_argument("--step-size", default=None, metavar="S", help="initial step size, > 0 (default 1; adapted)")
    g.add_argument("--inits", default=None, metavar="R|FILE.json|JSON",
                   help="starting values: a radius R >= 0 (default 2), or a JSON file/text with a dict of values "
                        "(e.g. '{\"a\": 2, \"sigma_b\": 1}') or a list of dicts, one per chain")


# ---------------------------------------------------------------- commands
def cmd_demo(args: argparse.Namespace) -> int:
    """Simulate the notebook's data, fit marginal and centered NUTS, write and judge."""
    import pandas as pd

    from .samplers.stan import fit
    from .model.dataset import simulate
    from .reports.fit_report import write_fit_report
    from .reports.tables import write_table
    from .utils.output import staged_output

    start = time.perf_counter()
    controls = _nuts_controls(args)
    dataset = simulate(seed=args.seed)
    rows = []
    with staged_output(args.out, force=args.force) as folder:
        dataset.to_json(folder / "data.json")
        dataset.to_csv(folder / "data.csv")
        verdicts = []
        for parameterization in ("marginal", "centered"):
            _say(args, f"fitting {parameterization} NUTS ...")
            idata = fit(dataset, parameterization, engine=args.engine, chains=args.chains, draws=args.draws,
                        warmup=args.warmup, seed=args.seed, priors=_priors(args), show_progress=not args.quiet,
                        **controls)
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
    from .model.dataset import simulate
    from .samplers.stan import simulate_stan

    out = Path(args.out)
    if args.formula is not None:
        return _simulate_formula(args, out)
    if args.truth:
        raise ValueError("--truth goes with --formula; the notebook's model takes --a, --mu-b, --sigma-b, --eps")
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
    from .model.dataset import Dataset
    from .samplers.stan import fit
    from .reports.fit_report import write_fit_report
    from .utils.output import staged_output

    path = Path(args.data)
    if args.formula is not None:
        return _fit_formula(args, path)
    for flag, value in (("--dropna", args.dropna), ("--scheduler", args.scheduler), ("--dask", args.dask)):
        if value:
            raise ValueError(f"{flag} goes with --formula")
    if path.suffix == ".json":
        dataset = Dataset.from_json(path)
    elif path.suffix == ".csv":
        dataset = Dataset.from_csv(path, x=args.x, y=args.y, group=args.group)
    else:
        raise ValueError(f"{path}: give a .csv or a .json (Stan JSON) file")
    controls = _nuts_controls(args)
    out = Path(args.out) if args.out else path.with_name(path.stem + "_fit")
    with staged_output(out, force=args.force) as folder:
        idata = fit(dataset, args.parameterization, engine=args.engine, chains=args.chains, draws=args.draws,
                    warmup=args.warmup, seed=args.seed, priors=_priors(args), show_progress=not args.quiet,
                    **controls)
        result = write_fit_report(idata, folder, args.parameterization)
    print(result["verdict"])
    print(f"\nwrote {out}/")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    """Run the chosen samplers on one dataset, write the report folder, print the table."""
    from .workflows.compare import PRESETS, compare
    from .reports.compare_report import display_table, headline, write_comparison
    from .samplers.registry import SAMPLERS, available_samplers, parse_samplers
    from .utils.output import check_output

    start = time.perf_counter()
    general = args.formula is not None
    if general and args.data is None:
        raise ValueError("--formula needs the data: hierlin compare DATA.csv --formula 'y ~ x + (1 + x | g)'")
    if not general:
        if args.data is not None:
            raise ValueError(f"{args.data}: a data file goes with --formula (the notebook's comparison simulates "
                             "its data); add e.g. --formula 'y ~ 1 + x + (0 + x | g)'")
        if args.prior or args.dropna:
            raise ValueError("--prior and --dropna go with --formula")
    names = parse_samplers(args.samplers, formula=general)
    settings = None
    controls = _nuts_controls(args)
    if controls:
        run = names or (PRESETS[args.preset]["samplers"] if args.preset in PRESETS
                        else available_samplers(formula=general))
        stan = [n for n in run if SAMPLERS[n].family == "stan"]
        if not stan:
            raise ValueError(f"{', '.join(_nuts_flags(args))} set(s) Stan's NUTS, but no stan-* sampler is in this "
                             f"run ({', '.join(run)}); add one to --samplers, e.g. stan-marginal")
        settings = {n: dict(controls) for n in stan}
    check_output(args.out, args.force)  # fail now, not after minutes of sampling
    extra: dict[str, Any] = {}
    if general:
        extra = {"dataset": args.data, "formula": args.formula, "priors": _formula_priors(args.prior),
                 "dropna": args.dropna}
    result = compare(samplers=names, seed=args.seed, engine=args.engine, preset=args.preset,
                     settings=settings, show_progress=not args.quiet, **extra)
    out = write_comparison(result, args.out, force=args.force)
    print(display_table(result).to_string())
    print()
    print("\n".join(("[OK] " if ok else "[!!] " if ok is False else "") + text for text, ok in headline(result)))
    print(f"\nwrote {out}/ in {time.perf_counter() - start:.1f} s: open {out / 'report.html'}")
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    """Fit every --formula to DATA, compare them by PSIS-LOO, write the report folder, print the ranking."""
    from .reports import write_report
    from .reports.models_report import display_ranking
    from .utils.output import check_output
    from .workflows.models import compare_models

    start = time.perf_counter()
    if len(args.formula) < 2:
        raise ValueError(f"give at least two models to compare (--formula ... --formula ...); got {len(args.formula)}")
    if args.name and len(args.name) != len(args.formula):
        raise ValueError(f"--name was given {len(args.name)} time(s) for {len(args.formula)} --formula; give one name "
                         "per formula, in the same order, or none")
    names = args.name or args.formula
    if len(set(names)) < len(names):
        raise ValueError(f"model names must differ: {names}")
    controls = _nuts_controls(args)
    check_output(args.out, args.force)  # fail now, not after minutes of sampling
    result = compare_models(args.data, dict(zip(names, args.formula)), by=args.by, group=args.group,
                            parameterization=args.parameterization, priors=_formula_priors(args.prior),
                            engine=args.engine, chains=args.chains, draws=args.draws, warmup=args.warmup,
                            seed=args.seed, dropna=args.dropna, show_progress=not args.quiet, **controls)
    out = write_report(result, args.out, force=args.force)
    print(display_ranking(result).to_string())
    print()
    print("\n".join(("[OK] " if ok else "[!!] " if ok is False else "") + text for text, ok in result.headline()))
    print(f"\nwrote {out}/ in {time.perf_counter() - start:.1f} s: open {out / 'report.html'}")
    return 0


def cmd_sbc(args: argparse.Namespace) -> int:
    """Run (or resume) simulation-based calibration and write its report."""
    import warnings

    from .reports.sbc_report import write_sbc_report
    from .workflows.sbc import diffuse_prior_problems, sbc

    design: dict[str, Any] = {}
    if args.n is not None:
        design["n"] = args.n
    if args.groups is not None:
        design["groups"] = _parse_groups(args.groups)
    settings = {k: getattr(args, k) for k in ("chains", "draws", "warmup", "thin") if getattr(args, k) is not None}
    settings.update(_nuts_controls(args))
    if args.formula is not None:
        if args.priors != "weakly_informative" or args.fit_priors is not None:
            raise ValueError("--priors and --fit-priors name the notebook's presets; with --formula give "
                             "distributions: --prior 'beta=normal(0, 2)', --fit-prior 'sigma=halfnormal(0.1)'")
        priors = _formula_priors(args.prior)
        fit_priors = _formula_priors(args.fit_prior, flag="--fit-prior")
        if priors is not None:  # what is not given keeps its default simulating prior
            from .workflows.sbc import DEFAULT_FORMULA_PRIORS

            priors = {**DEFAULT_FORMULA_PRIORS, **priors}
    else:
        if args.fit_prior:
            raise ValueError("--fit-prior goes with --formula; the notebook's model takes --fit-priors PRESET")
        priors = _priors(args)
        fit_priors = args.fit_priors
        problems = diffuse_prior_problems(priors)
        if problems:  # always shown, as one readable line
            print(f"hierlin: warning: SBC needs proper, moderate priors, but these are diffuse: {'; '.join(problems)}; "
                  "use --priors weakly_informative (or --prior FIELD=VALUE)", file=sys.stderr)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="SBC needs proper")
        result = sbc(args.n_sims, sampler=args.sampler, priors=priors, design=design or None, seed=args.seed,
                     executor=args.executor, scheduler=args.scheduler, n_jobs=args.n_jobs, out=args.out,
                     n_ranks=args.n_ranks, sampler_settings=settings or None, fit_priors=fit_priors,
                     engine=args.engine, overwrite=args.force, show_progress=not args.quiet, formula=args.formula)
    report = write_sbc_report(result, args.out)
    s = result.summary()
    if result.ok:
        print(result.uniformity().to_string(float_format=lambda v: f"{v:.3g}"))
    if s["n_failed"]:
        print(f"{s['n_failed']} simulation(s) failed, e.g. sim {result.failures.index[0]}: {result.failures['error'].iloc[0]}")
    print(f"\n{result.title()}: {'calibrated' if result.calibrated else 'NOT calibrated'}; "
          f"{s['n_failed']} failed, {s['n_ess_limited']} ESS-limited, {s['n_with_divergences']} with divergences")
    print(f"ran {result.n_run} simulation(s) in {result.wall_seconds:.1f} s ({result.executor}, n_jobs={result.n_jobs}); "
          f"wrote {args.out}/: open {report}")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    """Run the benchmark and write its tables and plots."""
    from .reports.bench_report import write_bench
    from .workflows.bench import run_bench
    from .samplers.registry import parse_samplers
    from .utils.output import check_output

    samplers = parse_samplers(args.samplers)
    check_output(args.out, args.force)  # fail now, not after minutes of benchmarking
    result = run_bench(quick=args.quick, large=args.large, samplers=samplers, engine=args.engine,
                       log=(lambda line: None) if args.quiet else None)
    write_bench(result, args.out, force=args.force)
    cols = [c for c in ("label", "sampling_chain_seconds", "min_ess_bulk", "min_ess_bulk_per_s", "error")
            if c in result.samplers]
    print(result.samplers[cols].to_string())
    print()
    print(result.scaling[["design", "N", "J", "fit_seconds", "min_ess_bulk_per_s"]].to_string(index=False))
    if len(result.programs):
        cols = [c for c in ("data", "variant", "ess_per_chain_second", "ess_per_wall_second", "mean_leapfrog",
                            "ms_per_gradient", "divergences", "error", "not_run") if c in result.programs]
        print()
        print(result.programs[cols].to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    print(f"\nwrote {args.out}/ (samplers.md, scaling.md, programs.md, ess_per_sampler.png, scaling.png, "
          "programs.png)")
    return 0


def cmd_install_cmdstan(args: argparse.Namespace) -> int:
    """Install CmdStan via cmdstanpy."""
    from .engines.cmdstan_engine import install

    print(f"installing CmdStan {args.version} with cmdstanpy (downloads from GitHub) ...")
    where = install(args.version)
    print(f"done: {where}. engine='auto' now uses CmdStan.")
    return 0


def _simulate_formula(args: argparse.Namespace, out: Path) -> int:
    """``hierlin simulate --formula``: a CSV/Parquet of the general model plus ``<out>.truth.json``."""
    import json

    from .model.dataset import simulate
    from .samplers.stan import simulate_stan
    from .utils.files import atomic_path, write_text_atomic

    if out.suffix not in (".csv", ".parquet"):
        raise ValueError(f"--out {out}: with --formula use a .csv or .parquet file name")
    if out.exists() and not args.force:
        raise ValueError(f"{out} exists; pass --force to overwrite it")
    truth = _parse_truth(args.truth)
    kw = dict(formula=args.formula, truth=truth, n=args.n, groups=_parse_groups(args.groups), x_low=args.x_low,
              x_high=args.x_high, seed=args.seed)
    frame = simulate_stan(1, engine=args.engine, **kw)[0] if args.stan else simulate(**kw)
    with atomic_path(out) as tmp:
        if out.suffix == ".csv":
            frame.to_csv(tmp, index=False)
        else:
            frame.to_parquet(tmp, index=False)
    side = truth_path(out)
    write_text_atomic(side, json.dumps(frame.attrs["hierlin_truth"], indent=1) + "\n")
    print(f"wrote {len(frame)} rows of {args.formula!r} to {out} (true values in {side})")
    return 0


def _parse_truth(items: Sequence[str]) -> dict[str, Any]:
    """``--truth 'beta[x]=2' --truth sigma=0.5 --truth Omega=0.5`` -> a truth mapping."""
    import re

    truth: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"--truth {item!r}: write NAME=VALUE, e.g. --truth 'beta[x]=2' or --truth sigma=0.5")
        try:
            number = float(value)
        except ValueError:
            raise ValueError(f"--truth {item!r}: {value!r} is not a number") from None
        key = key.strip()
        m = re.match(r"^(beta|tau)\[(.+)\]$", key)
        if m:
            truth.setdefault(m.group(1), {})[m.group(2)] = number
        elif key in ("sigma", "Omega"):
            truth[key] = number
        else:
            raise ValueError(f"--truth {item!r}: name beta[term], tau[term], sigma or Omega (a correlation, 2 terms)")
    return truth


def truth_path(data: Path) -> Path:
    """Where ``hierlin simulate --formula`` writes the true values of ``data``: ``<data>.truth.json``."""
    return data.with_name(data.name + ".truth.json")


def _fit_formula(args: argparse.Namespace, path: Path) -> int:
    """``hierlin fit DATA --formula ...``: the general model, its report folder and verdict."""
    import json

    from .reports.fit_report import write_fit_report
    from .reports.tables import write_table
    from .samplers.stan import fit
    from .samplers.stan_glm import glm_priors
    from .model.glm import design
    from .utils.files import write_text_atomic
    from .utils.output import check_output, staged_output

    if args.priors != "notebook":
        raise ValueError("--priors names the notebook's presets; with --formula give distributions with "
                         "--prior, e.g. --prior 'beta=normal(0, 10)'")
    priors = _formula_priors(args.prior)
    if args.scheduler and args.dask:
        raise ValueError("give --scheduler ADDRESS (an existing Dask cluster) or --dask (a LocalCluster), not both")
    scheduler = args.scheduler or ("local" if args.dask else None)
    out = Path(args.out) if args.out else _default_fit_folder(path)
    check_output(out, args.force)
    d = design(args.data, args.formula, dropna=args.dropna, scheduler=scheduler)
    truth = None
    side = truth_path(path)
    if side.is_file():
        truth = json.loads(side.read_text(encoding="utf-8"))
        _say(args, f"true values from {side} (for the recovery check)")
    if d.dropped_rows:
        _say(args, f"dropped {d.dropped_rows} row(s) with missing values (--dropna)")
    name = args.parameterization
    with staged_output(out, force=args.force) as folder:
        idata = fit(d, args.parameterization, formula=args.formula, engine=args.engine, chains=args.chains,
                    draws=args.draws, warmup=args.warmup, seed=args.seed, priors=priors,
                    show_progress=not args.quiet)
        result = write_fit_report(idata, folder, name, truth=truth)
        prior_table = glm_priors(d, priors).table(d.correlated)
        write_table(prior_table, folder / f"{name}_priors", f"{name}: priors (defaults are data-scaled)")
        write_text_atomic(folder / "design.txt", d.describe() + "\n")
    print(d.describe())
    print()
    print(result["verdict"])
    print(f"\nwrote {out}/")
    return 0


def _default_fit_folder(path: Path) -> Path:
    """``<data name>_fit`` next to the data; for a glob (``data/*.parquet``), next to its folder (``data_fit``)."""
    if not any(ch in str(path) for ch in "*?["):
        return path.with_name(path.stem + "_fit")
    folder = path.parent
    while any(ch in str(folder) for ch in "*?["):
        folder = folder.parent
    name = (folder.resolve().name or "data") + "_fit"
    return folder.with_name(name) if folder.name else Path(name)


def _formula_priors(items: Sequence[str], flag: str = "--prior") -> dict[str, str] | None:
    """``--prior 'beta=normal(0, 10)'`` items -> ``{"beta": "normal(0, 10)"}`` (checked when the fit resolves them)."""
    priors: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not value.strip():
            raise ValueError(f"{flag} {item!r}: write NAME=DISTRIBUTION, e.g. {flag} 'beta=normal(0, 10)' "
                             f"or {flag} 'tau[x]=halfnormal(1)'")
        priors[key.strip()] = value.strip()
    return priors or None


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
        "sampling_chain_seconds": st.get("sampling_chain_seconds"),
        "recovered": "n/a" if rec is None else f"{int(rec['covered'].sum())}/{len(rec)}",
    }


def _priors(args: argparse.Namespace) -> Any:
    """The preset named by --priors with the --prior FIELD=VALUE overrides applied."""
    import dataclasses

    from .model.priors import resolve_priors

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


_NUTS_FLAGS = {"adapt_delta": "--adapt-delta", "max_treedepth": "--max-treedepth", "metric": "--metric",
               "step_size": "--step-size", "inits": "--inits"}


def _nuts_flags(args: argparse.Namespace) -> list[str]:
    return [flag for name, flag in _NUTS_FLAGS.items() if getattr(args, name, None) is not None]


def _nuts_controls(args: argparse.Namespace) -> dict[str, Any]:
    """The NUTS controls given on the command line, converted (fit() checks their values).

    Raises
    ------
    ValueError
        For text that is not a number where one is needed, or an --inits that is
        neither a number nor JSON (a file or the text itself).
    """
    import json

    from .engines.controls import NutsControls

    out: dict[str, Any] = {}
    for name, kind, example in (("adapt_delta", float, "0.95"), ("max_treedepth", int, "12"),
                                ("step_size", float, "0.1")):
        text = getattr(args, name, None)
        if text is None:
            continue
        try:
            out[name] = kind(text)
        except ValueError:
            what = "an integer" if kind is int else "a number"
            raise ValueError(f"{_NUTS_FLAGS[name]} {text!r} is not {what}; e.g. {_NUTS_FLAGS[name]} {example}") from None
    if getattr(args, "metric", None) is not None:
        out["metric"] = args.metric
    text = getattr(args, "inits", None)
    if text is not None:
        try:
            out["inits"] = float(text)
        except ValueError:
            source = text
            if not text.lstrip().startswith(("{", "[")):
                path = Path(text)
                if not path.is_file():
                    raise ValueError(f"--inits {text!r} is neither a number (a radius, e.g. 0.5) nor a JSON file; "
                                     "give e.g. --inits 0.5, --inits inits.json or --inits '{\"a\": 2, \"eps\": 1}'") from None
                source = path.read_text(encoding="utf-8")
            try:
                out["inits"] = json.loads(source)
            except json.JSONDecodeError as err:
                raise ValueError(f"--inits {text!r}: not valid JSON ({err.msg} at line {err.lineno}, column {err.colno}); "
                                 "give a dict of starting values or a list of dicts, one per chain") from None
    NutsControls.make(**out, chains=getattr(args, "chains", None))  # fail now, before any output or sampling
    return out


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
