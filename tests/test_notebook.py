"""The package in a real Jupyter kernel (nbclient + ipykernel): the example notebook runs clean.

``examples/notebook.ipynb`` is executed cell by cell; any error cell fails the test.
Its outputs must hold the verdicts (as coloured HTML), the figures and the comparison,
and no output may contain an ANSI escape or anything on stderr. A second, generated
notebook checks the plain-line progress of a kernel without ipywidgets on each engine.
"""

from __future__ import annotations

import importlib.util
import json
import re
import sys
import time
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat", reason="the notebook tests need nbformat (in the dev extra)")
nbclient = pytest.importorskip("nbclient", reason="the notebook tests need nbclient (in the dev extra)")
pytest.importorskip("ipykernel", reason="the notebook tests need ipykernel (in the dev extra)")

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "examples" / "notebook.ipynb"


def _strings(value) -> list[str]:
    """Every string inside an output (texts, MIME data, nested lists)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


def _text(output, mime: str) -> str:
    data = output.get("data", {}).get(mime, "")
    return "".join(data) if isinstance(data, list) else data


def execute(nb, tmp_path: Path):
    """Run ``nb`` in a fresh kernel of this interpreter (the package from this checkout); fail on any error cell."""
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import KernelManager

    spec_dir = tmp_path / "kernels" / "hierlin-nb"
    spec_dir.mkdir(parents=True)
    (spec_dir / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "hierlin_stan notebook tests", "language": "python",
        "env": {"PYTHONPATH": str(ROOT)},
    }))
    km = KernelManager(kernel_name="hierlin-nb", kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(spec_dir.parent)]))
    client = nbclient.NotebookClient(nb, km=km, timeout=300, allow_errors=False,
                                     resources={"metadata": {"path": str(tmp_path)}})
    try:
        client.execute()
    except nbclient.exceptions.CellExecutionError as err:
        pytest.fail(f"a notebook cell failed:\n{str(err)[-4000:]}")
    finally:  # nbclient leaves a kernel it was given running
        if km.has_kernel:
            km.shutdown_kernel(now=True)
    return nb


def _check_clean(nb) -> None:
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            assert output["output_type"] != "error", output
            text = "\n".join(_strings(output))
            assert "\x1b" not in text, f"ANSI escape in the output of {cell.source!r}: {text[:500]!r}"
            assert not (output["output_type"] == "stream" and output["name"] == "stderr"), (
                f"stderr in the output of {cell.source!r}: {output['text'][:2000]}")
            assert "IProgress" not in text and "TqdmWarning" not in text


@pytest.mark.slow
def test_example_notebook_runs_and_shows_verdicts_figures_and_comparison(tmp_path):
    from hierlin_stan.engines import get_engine

    engine = get_engine("auto", verbose=False)
    for program in ("centered", "marginal"):  # the kernel shares this session's cache: time the notebook, not gcc
        engine.compile(program)
    nb = nbformat.read(NOTEBOOK, as_version=4)
    assert not any(cell.get("outputs") for cell in nb.cells if cell.cell_type == "code"), "commit it without outputs"
    start = time.monotonic()
    execute(nb, tmp_path)
    seconds = time.monotonic() - start
    print(f"\nexamples/notebook.ipynb ran in {seconds:.1f} s on {engine.name}")
    _check_clean(nb)

    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    outputs = [output for cell in code for output in cell.outputs]
    html = [_text(o, "text/html") for o in outputs if "text/html" in o.get("data", {})]
    verdicts = [h for h in html if "hierlin-verdict" in h]
    assert len(verdicts) == 2, "expected the centered and the marginal verdict as HTML"
    centered, marginal = verdicts
    assert "[PROBLEM]" in centered and "divergent transitions" in centered and "#b3261e" in centered  # in red
    assert "all checks passed" in marginal and "[PROBLEM]" not in marginal and "[WARNING]" not in marginal
    figures = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(figures) >= 3, f"expected two traces and the posterior-predictive lines, got {len(figures)} figures"
    comparison = [h for h in html if "hierlin-comparison" in h]
    assert len(comparison) == 1
    assert "Trustworthy: Stan NUTS, marginal" in comparison[0] and "data:image/png;base64," in comparison[0]
    assert re.search(r"Not trustworthy: Metropolis \(numpy\), full posterior", comparison[0])
    # one progress display per long step: a bar per fit (2) and per sampler of the comparison (3)
    if importlib.util.find_spec("ipywidgets") is not None:
        bars = [o for o in outputs if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
    else:
        print("ipywidgets is not installed: the plain-line progress is checked instead of the widgets")
        bars = [o for o in outputs if re.match(r".+ \(4 chains\): 100% ", _text(o, "text/plain"))]
    assert len(bars) == 5, [_text(o, "text/plain") for o in bars]


@pytest.mark.slow
def test_plain_line_progress_without_ipywidgets(tmp_path):
    """No ipywidgets in the kernel: one plain line per fit, updated in place, with a rate of sampling."""
    from hierlin_stan.engines.cmdstan_engine import available

    engines = ["pystan"] + (["cmdstan"] if available()[0] else [])
    if len(engines) == 1:
        print("CmdStan not found: the plain-line progress is checked on PyStan only")
    for name in engines:
        from hierlin_stan.engines import get_engine

        get_engine(name, verbose=False).compile("marginal")
    cells = ["import sys\nsys.modules['ipywidgets'] = None  # as if it were not installed\nimport hierlin_stan as hs\n"
             "data = hs.simulate(seed=2)"]
    cells += [f"hs.fit(data, 'marginal', engine={name!r}, seed=1);" for name in engines]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    execute(nb, tmp_path)
    _check_clean(nb)
    for name, cell in zip(engines, nb.cells[1:]):
        lines = [_text(o, "text/plain") for o in cell.outputs]
        assert len(lines) == 1 and cell.outputs[0]["output_type"] == "display_data", lines
        match = re.fullmatch(rf"{name} {'marginal_fused' if name == 'cmdstan' else 'marginal'} \(4 chains\): 100% 8000/8000 it, done in ([\d.]+) s \(([\d,.]+) it/s\)",
                             lines[0])
        assert match, lines[0]
        seconds, rate = float(match.group(1)), float(match.group(2).replace(",", ""))
        assert abs(8000 / rate - seconds) <= 0.051  # iterations per second of sampling (seconds shown to 0.1)
        assert rate < 1e6
