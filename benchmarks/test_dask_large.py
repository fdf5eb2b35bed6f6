"""Data that do not fit in memory: 10^8 rows of partitioned Parquet, summed on a Dask LocalCluster.

The benchmark writes the rows itself, in chunks (never all in memory): ``y ~ x + (1 + x | site)``
with J = 1000 string labels (q = 2, p = 2) and a column the formula does not use, as
100 Parquet files of 10^6 rows. A fresh process then runs what a user runs,

    d = hs.design("data/*.parquet", FORMULA, scheduler="local")   # a LocalCluster of this machine
    idata = hs.fit(d, "marginal", formula=FORMULA)                 # locally, from the sums

and records the time of the sums (with the rate in rows per second, cluster start-up
apart), of the fit, and the peak memory (max RSS) of the client process, the one that
must stay small (target < 2 GiB: the rows never come to it), plus the largest of its
children (a Dask worker or a CmdStan chain).

Run with ``--bench-large`` (minutes; the files, ~2.5 GB, are written once per session).
"""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from .conftest import record, run_python

ROWS = 100_000_000
GROUPS = 1000
FILE_ROWS = 1_000_000
FORMULA = "y ~ x + (1 + x | site)"


def write_parquet_dataset(folder, rows: int = ROWS, groups: int = GROUPS, file_rows: int = FILE_ROWS,
                          seed: int = 4) -> None:
    """Rows of y = 1 + 2 x + u0_g + u1_g x + N(0, 0.5), one file per ``file_rows`` (each written, then freed)."""
    rng = np.random.default_rng(seed)
    u = rng.multivariate_normal([0, 0], [[1.0, 0.25], [0.25, 0.25]], size=groups)
    labels = pa.array([f"site_{k:04d}" for k in range(groups)])
    folder.mkdir(parents=True, exist_ok=True)
    for k, start in enumerate(range(0, rows, file_rows)):
        n = min(file_rows, rows - start)
        g = rng.integers(0, groups, size=n)
        x = rng.normal(size=n)
        y = 1.0 + 2.0 * x + u[g, 0] + u[g, 1] * x + rng.normal(0, 0.5, size=n)
        site = pa.DictionaryArray.from_arrays(pa.array(g.astype(np.int32)), labels)
        table = pa.table({"y": y, "x": x, "site": site, "unused": rng.normal(size=n)})
        pq.write_table(table, folder / f"part-{k:04d}.parquet")


@pytest.fixture(scope="session")
def big_parquet(tmp_path_factory):
    folder = tmp_path_factory.mktemp("dask_big") / "data"
    write_parquet_dataset(folder)
    return folder


FIT = """
import json, resource, time, warnings
import hierlin_stan as hs
warnings.simplefilter("ignore")
start = time.perf_counter()
d = hs.design({glob!r}, {formula!r}, scheduler="local")
sums = time.perf_counter() - start
idata = hs.fit(d, "marginal", formula={formula!r}, seed=1, show_progress=False)
fit = time.perf_counter() - start - sums
st = hs.diagnostics.sampler_stats(idata)
info = d.sums_info
passes = info["sums_schema_seconds"] + info["sums_pass1_seconds"] + info["sums_pass2_seconds"]
print(json.dumps(dict(N=d.N, J=d.J, sums_seconds=sums, fit_seconds=fit, wall_seconds=sums + fit,
    rows_per_second=d.N / sums, rows_per_second_passes=d.N / passes,
    cluster_seconds=info["sums_cluster_seconds"], schema_seconds=info["sums_schema_seconds"],
    pass1_seconds=info["sums_pass1_seconds"], pass2_seconds=info["sums_pass2_seconds"],
    partitions=info["sums_partitions"], workers=info["sums_workers"], scheduler=info["sums_scheduler"],
    sampling_chain_seconds=st["sampling_chain_seconds"], warmup_seconds=st["warmup_seconds"],
    min_ess_bulk=st["min_ess_bulk"], max_rhat=st["max_rhat"], divergences=st["divergences"],
    beta=idata.posterior["beta"].mean(("chain", "draw")).values.tolist(), engine=st["engine"],
    client_peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    largest_child_peak_rss_mb=resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)))
"""


@pytest.mark.large
def test_dask_sums_of_a_hundred_million_parquet_rows(benchmark, big_parquet):
    pytest.importorskip("distributed", reason="needs dask[distributed] (pip install 'hierlin_stan[dask]')")

    def run():
        code = FIT.format(glob=str(big_parquet / "*.parquet"), formula=FORMULA)
        _, out = run_python(code, timeout=7200)
        return json.loads(out.strip().splitlines()[-1])

    result = benchmark.pedantic(run, rounds=1, iterations=1)
    assert result["N"] == ROWS and result["J"] == GROUPS
    assert result["max_rhat"] < 1.05
    assert abs(result["beta"][0] - 1.0) < 0.2 and abs(result["beta"][1] - 2.0) < 0.1
    parquet_mb = sum(f.stat().st_size for f in big_parquet.glob("*.parquet")) / 2**20
    record(benchmark, "dask/parquet-1e8-J1000-q2", parquet_mb=parquet_mb, **result)
    assert result["client_peak_rss_mb"] < 2048, result
