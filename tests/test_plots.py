"""Tests of hierlin_stan.reports.plots: shapes, given axes, truth lines, atomic PNG output."""

from __future__ import annotations

import warnings

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from matplotlib.collections import LineCollection  # noqa: E402

with warnings.catch_warnings():
    warnings.simplefilter("ignore", FutureWarning)
    import arviz as az

from hierlin_stan.reports.plots import (  # noqa: E402
    TRUTH_COLOR,
    plot_ess,
    plot_ppc_lines,
    plot_recovery,
    plot_trace,
    save_figure,
)

CHAINS, DRAWS, N = 2, 200, 12
TRUTH = {"a": 2.0, "mu_b": 2.0, "sigma_b": 1.0, "eps": 0.0}
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def make_idata(seed: int = 0, *, divergent: int = 0, nuts: bool = True, attrs: dict | None = None):
    """One slope per point, posterior draws concentrated on each point's own line."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 10, N)
    b_true = rng.normal(2.0, 1.0, N)
    y = 2.0 + b_true * x
    a = 2.0 + 0.05 * rng.normal(size=(CHAINS, DRAWS))
    b = (y - a[..., None]) / x + 0.01 * rng.normal(size=(CHAINS, DRAWS, N))
    post = {
        "a": a,
        "mu_b": 2.0 + 0.1 * rng.normal(size=(CHAINS, DRAWS)),
        "sigma_b": 1.0 + 0.1 * rng.normal(size=(CHAINS, DRAWS)),
        "eps": np.abs(0.02 * rng.normal(size=(CHAINS, DRAWS))),
        "b": b,
    }
    stats = {"lp": rng.normal(size=(CHAINS, DRAWS)), "acceptance_rate": rng.uniform(size=(CHAINS, DRAWS))}
    if nuts:
        diverging = np.zeros((CHAINS, DRAWS), dtype=bool)
        diverging.flat[rng.choice(diverging.size, size=divergent, replace=False)] = True
        stats.update(diverging=diverging, energy=rng.normal(size=(CHAINS, DRAWS)))
    if attrs is None:
        attrs = {"sampler": "nuts" if nuts else "metropolis", "parameterization": "centered",
                 "sampling_seconds": 1.0, **{f"true_{k}": v for k, v in TRUTH.items()}}
    groups = np.arange(100, 100 + N)  # labels are not positions
    return az.from_dict(
        posterior=post,
        sample_stats=stats,
        observed_data={"y": y},
        constant_data={"x": x, "group": groups},
        dims={"b": ["group"], "y": ["obs"], "x": ["obs"], "group": ["obs"]},
        coords={"group": groups},
        attrs=attrs,
    )


@pytest.fixture(scope="module")
def idata():
    return make_idata()


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def assert_png_written(path, folder):
    data = path.read_bytes()
    assert len(data) > 1000 and data.startswith(PNG_MAGIC)
    assert sorted(p.name for p in folder.iterdir()) == [path.name], "temporary file left behind"


def _constant_lines(ax, axis: str):
    """Values of the horizontal ('y') or vertical ('x') straight lines drawn on ax."""
    values = []
    for line in ax.get_lines():
        data = np.asarray(line.get_ydata() if axis == "y" else line.get_xdata(), dtype=float)
        if data.size == 2 and data[0] == data[1]:
            values.append((float(data[0]), line.get_color()))
    return values


# ---------------------------------------------------------------------------- save_figure


def test_save_figure_atomic_and_overwrites(tmp_path):
    fig, ax = plt.subplots()
    ax.plot([0, 1], [0, 1])
    target = tmp_path / "fig.png"
    target.write_bytes(b"old")
    assert save_figure(fig, target) == target
    assert_png_written(target, tmp_path)


def test_save_figure_failure_keeps_old_file_and_no_temp(tmp_path, monkeypatch):
    fig, _ = plt.subplots()
    target = tmp_path / "fig.png"
    target.write_bytes(b"old")

    def broken(fname, **kwargs):
        with open(fname, "wb") as fh:
            fh.write(b"half")
        raise RuntimeError("disk full")

    monkeypatch.setattr(fig, "savefig", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        save_figure(fig, target)
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["fig.png"]


def test_save_figure_creates_missing_folder(tmp_path):
    fig, _ = plt.subplots()
    target = tmp_path / "deep" / "er" / "fig.png"
    save_figure(fig, target)
    assert_png_written(target, target.parent)


# ----------------------------------------------------------------------------- plot_trace


def test_plot_trace_shape_and_truth_lines(idata):
    axes = plot_trace(idata)
    assert isinstance(axes, np.ndarray) and axes.shape == (4, 2)
    for row, name in enumerate(("a", "mu_b", "sigma_b", "eps")):
        horizontal = _constant_lines(axes[row, 1], "y")
        vertical = _constant_lines(axes[row, 0], "x")
        assert (TRUTH[name], TRUTH_COLOR) in horizontal, name
        assert (TRUTH[name], TRUTH_COLOR) in vertical, name
        # One trace line per chain, over all draws.
        traces = [line for line in axes[row, 1].get_lines() if len(line.get_xdata()) == DRAWS]
        assert len(traces) == CHAINS


def test_plot_trace_explicit_truth_overrides_attrs(idata):
    axes = plot_trace(idata, truth={"a": 7.5, "mu_b": 2.0, "sigma_b": 1.0, "eps": 0.0})
    assert (7.5, TRUTH_COLOR) in _constant_lines(axes[0, 1], "y")
    assert (2.0, TRUTH_COLOR) not in _constant_lines(axes[0, 1], "y")


def test_plot_trace_without_truth_draws_no_truth_lines():
    axes = plot_trace(make_idata(attrs={}))
    for ax in axes.ravel():
        assert all(color != TRUTH_COLOR for _, color in _constant_lines(ax, "x") + _constant_lines(ax, "y"))


def test_plot_trace_marks_planted_divergences():
    axes = plot_trace(make_idata(divergent=9))
    marks = [line for line in axes[0, 1].get_lines() if line.get_marker() == "|"]
    assert len(marks) == 1 and len(marks[0].get_xdata()) == 9
    axes = plot_trace(make_idata(divergent=0))
    assert not [line for line in axes[0, 1].get_lines() if line.get_marker() == "|"]


def test_plot_trace_works_for_metropolis():
    axes = plot_trace(make_idata(nuts=False), var_names=("a", "eps"))
    assert axes.shape == (2, 2)


def test_plot_trace_given_axes_and_path(idata, tmp_path):
    fig, given = plt.subplots(2, 2)
    target = tmp_path / "trace.png"
    axes = plot_trace(idata, var_names=("a", "sigma_b"), axes=given, path=target)
    assert all(a is b for a, b in zip(axes.ravel(), given.ravel()))
    assert axes[0, 1].get_lines(), "nothing drawn on the given axes"
    assert_png_written(target, tmp_path)


def test_plot_trace_rejects_wrong_axes_shape(idata):
    _, given = plt.subplots(3, 2)
    with pytest.raises(ValueError, match=r"\(4, 2\)"):
        plot_trace(idata, axes=given)


def test_plot_trace_expands_vector_variable(idata):
    axes = plot_trace(idata, var_names=("a", "b"))
    assert axes.shape == (1 + N, 2)


# ------------------------------------------------------------------------- plot_ppc_lines


def test_plot_ppc_lines_draws_lines_through_chosen_points(idata):
    ax = plot_ppc_lines(idata, n_points=3, n_draws=40, seed=1)
    collections = [c for c in ax.collections if isinstance(c, LineCollection)]
    assert len(collections) == 3
    x = idata.constant_data["x"].values
    y = idata.observed_data["y"].values
    big = [line for line in ax.get_lines() if line.get_markersize() >= 10]
    assert len(big) == 3
    a_draws = idata.posterior["a"].values.ravel()
    for coll, point in zip(collections, big):
        segments = coll.get_segments()
        assert len(segments) == 40
        px, py = point.get_xdata()[0], point.get_ydata()[0]
        i = int(np.flatnonzero((x == px) & (y == py))[0])  # a real observation
        b_draws = idata.posterior["b"].isel(group=i).values.ravel()
        for seg in segments[:5]:
            (x0, y0), (x1, y1) = seg
            slope = (y1 - y0) / (x1 - x0)
            intercept = y0 - slope * x0
            k = int(np.argmin(np.abs(a_draws - intercept)))
            assert a_draws[k] == pytest.approx(intercept)
            assert b_draws[k] == pytest.approx(slope)  # same draw: slope of that point's group
            assert abs(intercept + slope * px - py) < 0.2  # passes near the point
        assert np.allclose(coll.get_colors()[0][:3], matplotlib.colors.to_rgb(point.get_color()))


def test_plot_ppc_lines_seeded_choice(idata):
    def chosen(seed):
        ax = plot_ppc_lines(idata, n_points=4, n_draws=5, seed=seed)
        return [(l.get_xdata()[0]) for l in ax.get_lines() if l.get_markersize() >= 10]

    assert chosen(3) == chosen(3)
    assert chosen(3) != chosen(4)


def test_plot_ppc_lines_given_ax_and_path(idata, tmp_path):
    fig, given = plt.subplots()
    target = tmp_path / "ppc.png"
    ax = plot_ppc_lines(idata, ax=given, path=target)
    assert ax is given
    assert ax.get_xlabel() == "x" and ax.get_ylabel() == "y"
    assert_png_written(target, tmp_path)


def test_plot_ppc_lines_needs_constant_data():
    bare = make_idata()
    del bare.constant_data
    with pytest.raises(ValueError, match="constant_data"):
        plot_ppc_lines(bare)


# -------------------------------------------------------------------------- plot_recovery


def test_plot_recovery_distinguishes_covered_and_missed(idata, tmp_path):
    fig, given = plt.subplots()
    target = tmp_path / "recovery.png"
    truth = {"a": 2.0, "mu_b": 2.0, "sigma_b": 5.0, "eps": 0.02}
    ax = plot_recovery(idata, truth=truth, ax=given, path=target)
    assert ax is given
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert len(labels) == 4  # eps included since its truth is > 0
    notes = [t for t in ax.texts if "truth" in t.get_text()]
    assert len(notes) == 4
    missed = [t for t in notes if "missed" in t.get_text()]
    assert len(missed) == 1 and "truth 5" in missed[0].get_text()
    covered_color = {t.get_color() for t in notes if "missed" not in t.get_text()}
    assert missed[0].get_color() not in covered_color
    means = [l for l in ax.get_lines() if l.get_marker() in ("o", "X")]
    assert sorted(l.get_marker() for l in means) == ["X", "o", "o", "o"]
    assert (0.0, "black") in _constant_lines(ax, "x")  # the truth line
    assert_png_written(target, tmp_path)


def test_plot_recovery_own_figure_and_missing_truth(idata):
    ax = plot_recovery(idata)
    assert len(ax.get_yticklabels()) == 3  # eps truth 0 left out
    with pytest.raises(ValueError, match="truth="):
        plot_recovery(make_idata(attrs={}))


# ------------------------------------------------------------------------------ plot_ess


def test_plot_ess_bars_log_scale_and_path(tmp_path):
    table = pd.DataFrame(
        {"label": ["centered", "marginal", "metropolis", "failed"],
         "min_ess_bulk_per_s": [50.0, 10_000.0, 0.2, np.nan]}
    )
    target = tmp_path / "ess.png"
    ax = plot_ess(table, path=target)
    assert ax.get_xscale() == "log"
    assert [t.get_text() for t in ax.get_yticklabels()] == list(table["label"])
    bars = ax.patches
    assert len(bars) == 3
    right_ends = sorted(b.get_x() + b.get_width() for b in bars)
    np.testing.assert_allclose(right_ends, [0.2, 50.0, 10_000.0])
    assert any(t.get_text() == "n/a" for t in ax.texts)
    assert_png_written(target, tmp_path)


def test_plot_ess_given_ax_and_bad_table():
    fig, given = plt.subplots()
    assert plot_ess(pd.DataFrame({"label": ["x"], "min_ess_bulk_per_s": [3.0]}), ax=given) is given
    with pytest.raises(ValueError, match="min_ess_bulk_per_s"):
        plot_ess(pd.DataFrame({"label": ["x"], "ess": [3.0]}))
