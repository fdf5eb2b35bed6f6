"""Per-group sums on Dask: the same sums and posterior as in memory, one clear error per bad input.

Every test runs on a real ``distributed`` LocalCluster (two worker threads, reachable over
TCP: fast to start); the CLI test starts the LocalCluster of ``--dask`` (worker
processes) as a user would.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import hierlin_stan as hs
from hierlin_stan.model.design import DataError
from hierlin_stan.model.glm import design

dd = pytest.importorskip("dask.dataframe", reason="the Dask path needs dask[distributed] (in the dev extra)")
distributed = pytest.importorskip("distributed", reason="the Dask path needs dask[distributed] (in the dev extra)")

ROOT = Path(__file__).resolve().parents[1]
FORMULA = "y ~ x + kind + (1 + x | g)"
N_ROWS = 3000
PARTITIONS = 6
#: Priors given in full, so both paths fit the same posterior (the data-scaled defaults take the
#: sd of y from the rows when a design keeps them, and from the sums otherwise: round-off apart).
PRIORS = {"beta": "normal(0, 5)", "tau": "halfnormal(2)", "sigma": "halfnormal(2)", "Omega": "lkj(2)"}


@pytest.fixture(scope="module")
def client():
    """A LocalCluster of two worker threads on TCP (starts in well under a second; other clients can connect)."""
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False, protocol="tcp://",
                                       dashboard_address=None)
    with distributed.Client(cluster) as c:
        yield c
    cluster.close()


def grouped_rows(seed: int = 0, n: int = N_ROWS, n_groups: int = 40) -> pd.DataFrame:
    """Rows of y = 1 + 2x + [kind = b] + u0_g + u1_g x + noise, groups in random order (spread over partitions)."""
    rng = np.random.default_rng(seed)
    g = rng.integers(0, n_groups, size=n)
    labels = np.array([f"site_{k:03d}" for k in rng.permutation(n_groups)])
    x = rng.normal(size=n)
    kind = rng.choice(["a", "b", "c"], size=n)
    u = rng.multivariate_normal([0, 0], [[1.0, 0.3], [0.3, 0.5]], size=n_groups)
    y = 1.0 + 2.0 * x + (kind == "b") + u[g, 0] + u[g, 1] * x + rng.normal(0, 0.5, size=n)
    return pd.DataFrame({"y": y, "x": x, "kind": kind, "g": labels[g], "unused": "not a number"})


def write_parts(frame: pd.DataFrame, folder: Path, n_files: int) -> list[Path]:
    """``frame`` as ``n_files`` Parquet files of consecutive rows."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for k, part in enumerate(np.array_split(np.arange(len(frame)), n_files)):
        path = folder / f"part-{k}.parquet"
        frame.iloc[part].reset_index(drop=True).to_parquet(path, index=False)
        paths.append(path)
    return paths


def from_frames(frames: list[pd.DataFrame]):
    """A Dask DataFrame whose partitions are exactly ``frames`` (even when they disagree with each other)."""
    import dask

    return dd.from_delayed([dask.delayed(f) for f in frames], meta=frames[0].iloc[:0], verify_meta=False)


def assert_same_stats(a, b, rtol=1e-9):
    """Every sum, block and residual statistic of two designs agrees within ``rtol`` of its largest entry."""
    sa, sb = a.stats, b.stats
    pairs = {
        "n": (sa.sums.n, sb.sums.n), "ztz": (sa.sums.ztz, sb.sums.ztz), "ztx": (sa.sums.ztx, sb.sums.ztx),
        "zty": (sa.sums.zty, sb.sums.zty), "xtx": (sa.sums.xtx, sb.sums.xtx), "xty": (sa.sums.xty, sb.sums.xty),
        "yty": (sa.sums.yty, sb.sums.yty), "x_sum": (sa.sums.x_sum, sb.sums.x_sum), "e_star": (sa.e_star, sb.e_star),
        "F": (sa.blocks.f, sb.blocks.f), "M": (sa.blocks.m, sb.blocks.m), "C2": (sa.residual.c2, sb.residual.c2),
        "beta_star": (sa.residual.beta_star, sb.residual.beta_star), "rss_min": (sa.residual.rss_min, sb.residual.rss_min),
    }
    for name, (x, y) in pairs.items():
        x, y = np.asarray(x, float), np.asarray(y, float)
        scale = max(float(np.max(np.abs(x))), 1e-300)
        assert float(np.max(np.abs(x - y))) <= rtol * scale, name


# ----------------------------------------------------------------- same sums
@pytest.mark.parametrize("labels", ["strings", "sparse integers"])
def test_dask_frame_gives_the_in_memory_sums(client, labels):
    df = grouped_rows()
    if labels == "sparse integers":
        df["g"] = df["g"].str[5:].astype(int) * 1000 + 27
    rows_per_part = N_ROWS // PARTITIONS
    ddf = dd.from_pandas(df, npartitions=PARTITIONS, sort=False)
    assert list(ddf.map_partitions(len).compute()) == [rows_per_part] * PARTITIONS
    # every group has rows in several partitions
    part_of_row = np.repeat(np.arange(PARTITIONS), rows_per_part)
    assert pd.Series(part_of_row).groupby(df["g"].to_numpy()).nunique().min() >= 3
    on_dask = design(ddf, FORMULA)
    in_memory = design(df, FORMULA, chunk_rows=rows_per_part)  # its chunks are the partitions
    assert list(on_dask.group_labels) == list(in_memory.group_labels)  # sorted, as in memory
    assert on_dask.group_labels.dtype == in_memory.group_labels.dtype
    assert on_dask.term_names == in_memory.term_names == ["Intercept", "x", "kind[b]", "kind[c]"]
    assert on_dask.rows is None and on_dask.N == N_ROWS
    assert_same_stats(on_dask, in_memory)
    # pass 1 adds the same numbers in the same order: bitwise equal
    for name in ("n", "ztz", "ztx", "zty", "xtx", "xty", "yty", "y_sum"):
        assert np.array_equal(getattr(on_dask.stats.sums, name), getattr(in_memory.stats.sums, name)), name
    info = on_dask.sums_info
    assert info["sums_backend"] == "dask" and info["sums_partitions"] == PARTITIONS and info["sums_rows"] == N_ROWS
    assert info["sums_workers"] == 2 and info["sums_scheduler"] == client.scheduler.address
    assert 0 < info["sums_schema_seconds"] < info["sums_seconds"]
    assert "per-group sums computed with Dask: 6 partitions, 3000 rows" in on_dask.describe()


def test_parquet_glob_reads_only_the_formula_columns_and_matches(client, tmp_path):
    df = grouped_rows(seed=1)
    write_parts(df, tmp_path / "data", 5)
    # an unused column that differs between files (text here, numbers there) does not matter: it is never read
    odd = pd.read_parquet(tmp_path / "data" / "part-4.parquet")
    odd["unused"] = 1.5
    odd.to_parquet(tmp_path / "data" / "part-4.parquet", index=False)
    in_memory = design(df, FORMULA)
    address = client.scheduler.address
    for source, scheduler in ((str(tmp_path / "data" / "*.parquet"), client), (tmp_path / "data", address)):
        on_dask = design(source, FORMULA, scheduler=scheduler)
        assert list(on_dask.group_labels) == list(in_memory.group_labels)
        assert_same_stats(on_dask, in_memory)
        assert on_dask.source == str(source) and on_dask.sums_info["sums_partitions"] >= 5
        assert on_dask.sums_info["sums_scheduler"] == address
    assert len(client.scheduler_info()["workers"]) == 2  # the Client made for the address is gone, the cluster stays
    # hs.fit takes the same scheduler= (here it stops at the parameterization, after the sums)
    with pytest.raises(ValueError, match=r"'noncentered' needs the rows in this process, and the sums of .*\*\.parquet"):
        hs.fit(str(tmp_path / "data" / "*.parquet"), "noncentered", formula=FORMULA, scheduler=client,
               show_progress=False)
    with pytest.raises(DataError, match="is a glob pattern.*scheduler='local'.*--dask"):
        design(str(tmp_path / "data" / "*.parquet"), FORMULA)


def test_one_partition_gives_bitwise_equal_statistics(client):
    df = grouped_rows(seed=2, n=800)
    on_dask = design(dd.from_pandas(df, npartitions=1), FORMULA)
    in_memory = design(df, FORMULA)
    assert_same_stats(on_dask, in_memory, rtol=0.0)


# ----------------------------------------------------------------- bad input, one clear error each
def test_a_column_missing_from_some_parquet_files_is_named(client, tmp_path):
    paths = write_parts(grouped_rows(), tmp_path / "data", 4)
    pd.read_parquet(paths[2]).drop(columns="x").to_parquet(paths[2], index=False)
    with pytest.raises(DataError, match=r"column 'x' is missing from 1 of 4 Parquet files \(e.g. .*part-2.parquet\)"):
        design(str(tmp_path / "data" / "*.parquet"), FORMULA, scheduler=client)


def test_a_column_missing_from_some_partitions_is_named(client):
    df = grouped_rows()
    parts = [df.iloc[:1000], df.iloc[1000:2000].drop(columns="kind"), df.iloc[2000:]]
    with pytest.raises(DataError, match=r"column 'kind' is missing from 1 of 3 partitions \(1; partition 1 has 'y', "
                                        r"'x', 'g'\); the formula needs it in every partition"):
        design(from_frames(parts), FORMULA)


@pytest.mark.parametrize("where", ["partition", "file"])
def test_a_non_numeric_partition_is_named(client, tmp_path, where):
    df = grouped_rows()
    parts = [df.iloc[:1000].copy(), df.iloc[1000:2000].copy(), df.iloc[2000:].copy()]
    parts[1]["x"] = parts[1]["x"].map(lambda v: f"{v:.3f}")
    parts[1].iloc[5, parts[1].columns.get_loc("x")] = "five"
    if where == "partition":
        data, scheduler = from_frames(parts), None
        message = (r"column 'x' holds different kinds of values: number \(float64\) in partitions 0, 2; "
                   r"text \(.*\) in partition 1, e.g. '.*'\. Every partition must hold one kind")
    else:
        for k, part in enumerate(parts):
            part.to_parquet(tmp_path / f"part-{k}.parquet", index=False)
        data, scheduler = str(tmp_path / "*.parquet"), client
        message = r"column 'x' holds different kinds of values: number \(double\) in 2 files .*; text \(.*\) in 1 file"
    with pytest.raises(DataError, match=message):
        design(data, FORMULA, scheduler=scheduler)
    # the response: named as the in-memory path names it
    parts = [df.iloc[:1500].copy(), df.iloc[1500:].copy()]
    parts[1]["y"] = parts[1]["y"].astype(str)
    parts[1].iloc[3, 0] = "n/a"
    with pytest.raises(DataError, match=r"the response 'y' is not numeric in partition 1 \(dtype .*, e.g. 'n/a'\)"):
        design(from_frames(parts), FORMULA)


def test_missing_values_are_counted_by_column_or_dropped(client):
    df = grouped_rows()
    df.loc[[3, 1700, 2900], "x"] = np.nan
    df.loc[[1700, 2500], "g"] = None
    ddf = dd.from_pandas(df, npartitions=PARTITIONS, sort=False)
    with pytest.raises(DataError) as info:
        design(ddf, FORMULA)
    msg = str(info.value)
    assert "4 row(s) have missing values in the columns the formula uses: 'x' (3), 'g' (2)" in msg
    assert "the first is row 3 (partition 0)" in msg and "dropna=True" in msg
    with pytest.warns(UserWarning, match="dropped 4 row"):
        on_dask = design(ddf, FORMULA, dropna=True)
    with pytest.warns(UserWarning, match="dropped 4 row"):
        in_memory = design(df, FORMULA, dropna=True)
    assert on_dask.dropped_rows == 4 and on_dask.N == N_ROWS - 4
    assert list(on_dask.group_labels) == list(in_memory.group_labels)
    assert_same_stats(on_dask, in_memory)


def test_group_labels_whose_type_differs_between_partitions_are_named(client, tmp_path):
    df = grouped_rows()
    parts = [df.iloc[:1000].copy(), df.iloc[1000:2000].copy(), df.iloc[2000:].copy()]
    parts[2]["g"] = parts[2]["g"].str[5:].astype(int)
    with pytest.raises(DataError, match=r"the grouping column 'g' holds labels of different types: text \(.*\) in "
                                        r"partitions 0-1, e.g. 'site_\d+'; number \(int64\) in partition 2\. "
                                        r"Group labels must have one type in every partition"):
        design(from_frames(parts), FORMULA)
    for k, part in enumerate(parts):
        part.to_parquet(tmp_path / f"part-{k}.parquet", index=False)
    with pytest.raises(DataError, match=r"the grouping column 'g' holds labels of different types: text \(.*\) in 2 "
                                        r"files .*; number \(int64\) in 1 file"):
        design(tmp_path, FORMULA, scheduler=client)
    # whole numbers stored as floats in one partition are the same integer labels (as in memory)
    ints = df.assign(g=df["g"].str[5:].astype(int))
    parts = [ints.iloc[:1500], ints.iloc[1500:].assign(g=lambda f: f["g"].astype(float))]
    assert list(design(from_frames(parts), FORMULA).group_labels) == list(design(ints, FORMULA).group_labels)


def test_formula_errors_are_the_in_memory_ones(client):
    df = grouped_rows()
    ddf = dd.from_pandas(df, npartitions=3)
    with pytest.raises(DataError, match="uses column 'xx', which the data do not have; did you mean 'x'"):
        design(ddf, "y ~ xx + (1 | g)")
    with pytest.raises(DataError, match="'x2' = 2\\*x"):
        design(dd.from_pandas(df.assign(x2=2 * df["x"]), npartitions=3), "y ~ x + x2 + (1 | g)")
    with pytest.raises(DataError, match="kind has a single level"):
        design(dd.from_pandas(df.assign(kind="a"), npartitions=3), FORMULA)
    with pytest.raises(DataError, match=r"log\(x\) is not finite .* \(partition \d\)"):
        design(ddf, "y ~ log(x) + (1 | g)")
    with pytest.raises(ValueError, match="'centered' needs the rows in this process.*use 'marginal' or 'collapsed'"):
        hs.fit(ddf, "centered", formula=FORMULA, show_progress=False)
    with pytest.raises(ValueError, match="scheduler=.* is not understood"):
        design(ddf, FORMULA, scheduler=3)
    with pytest.raises(ValueError, match="scheduler= goes with formula="):
        hs.fit(hs.simulate(), scheduler="local", show_progress=False)
    with pytest.raises(DataError, match="a pandas DataFrame is already in this process"):
        design(df, FORMULA, scheduler=client)
    with pytest.raises(DataError, match=r"a Dask DataFrame cannot be read into memory here.*\.compute\(\)"):
        hs.compare_models(ddf, {"pooled": "y ~ x", "both": FORMULA}, show_progress=False)


@pytest.mark.slow  # a fresh interpreter imports the package: seconds
def test_package_imports_without_dask_and_says_how_to_get_it(tmp_path):
    code = textwrap.dedent(f"""
        import sys
        for name in ("dask", "distributed"):
            sys.modules[name] = None  # as if not installed
        import hierlin_stan as hs
        try:
            hs.design({str(tmp_path)!r}, "y ~ x + (1 | g)", scheduler="local")
        except ImportError as err:
            print(type(err).__name__, isinstance(err, ValueError), err)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("DaskMissingError True ")
    assert 'pip install "hierlin_stan[dask]"' in out.stdout


# ----------------------------------------------------------------- the posterior
@pytest.mark.slow
def test_dask_fit_gives_the_in_memory_posterior(client):
    df = grouped_rows(seed=5, n=2000, n_groups=30)
    kw = dict(formula=FORMULA, priors=PRIORS, seed=11, show_progress=False)
    in_memory = hs.fit(df, "marginal", **kw)
    on_dask = hs.fit(dd.from_pandas(df, npartitions=5, sort=False), "marginal", **kw)
    table = hs.cross_check(in_memory, on_dask)
    assert table.attrs["passed"], table
    assert hs.diagnostics.sampler_stats(on_dask)["max_rhat"] < 1.02
    attrs = on_dask.attrs
    assert attrs["sums_backend"] == "dask" and attrs["sums_partitions"] == 5 and attrs["sums_rows"] == 2000
    assert attrs["sums_scheduler"] == client.scheduler.address and attrs["sums_seconds"] > 0
    assert list(on_dask.posterior["u"]["group"].values) == list(in_memory.posterior["u"]["group"].values)
    # one partition: the statistics are bitwise those of the in-memory path, so the same seed gives the same draws
    one = hs.fit(dd.from_pandas(df, npartitions=1), "marginal", **kw)
    for name in ("beta", "sigma", "tau", "Omega", "u"):
        assert np.array_equal(one.posterior[name].values, in_memory.posterior[name].values), name


@pytest.mark.slow
def test_cli_fits_a_parquet_glob_on_a_local_cluster(tmp_path):
    df = grouped_rows(seed=6, n=2000, n_groups=30)
    write_parts(df, tmp_path / "data", 4)
    out = tmp_path / "fit"
    cmd = [sys.executable, "-m", "hierlin_stan", "fit", str(tmp_path / "data" / "*.parquet"), "--formula", FORMULA,
           "--dask", "--out", str(out), "--seed", "2", "--quiet", "--draws", "300", "--warmup", "300"]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "per-group sums computed with Dask: 4 partitions, 2000 rows" in run.stdout
    assert "LocalCluster tcp://" in run.stdout
    idata = hs.utils.az.az.from_netcdf(next(out.glob("*.nc")))
    assert idata.attrs["sums_backend"] == "dask" and idata.attrs["sums_rows"] == 2000



def test_cli_dask_mistakes_are_one_line(tmp_path, capsys):
    from hierlin_stan.cli import main

    glob = str(tmp_path / "*.parquet")
    assert main(["fit", glob, "--formula", FORMULA, "--dask", "--scheduler", "tcp://localhost:1"]) == 2
    assert "give --scheduler ADDRESS (an existing Dask cluster) or --dask (a LocalCluster), not both" in capsys.readouterr().err
    assert main(["fit", glob, "--formula", FORMULA]) == 2
    assert "is a glob pattern" in capsys.readouterr().err
    assert main(["fit", glob, "--dask"]) == 2
    assert "--dask goes with --formula" in capsys.readouterr().err
    assert main(["fit", glob, "--formula", FORMULA, "--scheduler", "tcp://127.0.0.1:1"]) == 2
    assert f"hierlin: error: no files match {glob}" in capsys.readouterr().err


def test_an_unreachable_scheduler_is_named(tmp_path, monkeypatch):
    from hierlin_stan.model import dask_sums

    monkeypatch.setattr(dask_sums, "CONNECT_TIMEOUT", "1s")
    write_parts(grouped_rows(), tmp_path, 2)
    with pytest.raises(ValueError, match="cannot reach the Dask scheduler at 'tcp://127.0.0.1:1'.*scheduler='local'"):
        design(tmp_path, FORMULA, scheduler="tcp://127.0.0.1:1")
