"""No process outlives a Jupyter kernel that fitted a model: a real ipykernel, real engines.

Shutting the kernel down the way "Restart kernel" or closing a notebook does used to leave
one ~225 MB process per restart after a PyStan fit: httpstan's first chain worker, forked
while the package's interrupt handler was installed, ran that handler on the kernel's
SIGTERM and hung in it.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("ipykernel", reason="the kernel tests need ipykernel (in the dev extra)")
jupyter_client = pytest.importorskip("jupyter_client", reason="the kernel tests need jupyter_client (in the dev extra)")

from tests.process_helpers import describe, descendants, in_group, kill_all, survivors  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def kernel(tmp_path):
    """A started ipykernel on this interpreter (its own kernelspec) and a client; killed with all it left."""
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import KernelManager

    spec_dir = tmp_path / "kernels" / "hierlin-test"
    spec_dir.mkdir(parents=True)
    (spec_dir / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "hierlin_stan tests", "language": "python",
        "env": {"PYTHONPATH": str(ROOT)},
    }))
    km = KernelManager(kernel_name="hierlin-test",
                       kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(tmp_path / "kernels")]))
    km.start_kernel(cwd=str(tmp_path))
    kc = km.client()
    kc.start_channels()
    left: list = []
    try:
        kc.wait_for_ready(timeout=120)
        yield km, kc, left
    finally:
        kc.stop_channels()
        if km.is_alive():
            km.shutdown_kernel(now=True)
        kill_all(left)


def _run_cell(kc, code: str, timeout: float = 600) -> str:
    """Execute ``code`` in the kernel; return its printed output; fail with the kernel's traceback."""
    out: list[str] = []

    def hook(msg: dict) -> None:
        if msg["msg_type"] == "stream":
            out.append(msg["content"]["text"])
        elif msg["msg_type"] == "error":
            out.append("\n".join(msg["content"]["traceback"]))

    reply = kc.execute_interactive(code, timeout=timeout, output_hook=hook)
    assert reply["content"]["status"] == "ok", "".join(out)[-3000:]
    return "".join(out)


@pytest.mark.slow
def test_kernel_shutdown_after_a_fit_leaves_no_process(kernel, engine_name):
    from hierlin_stan.engines import get_engine

    get_engine(engine_name, verbose=False).compile("marginal")  # the kernel shares this session's cache
    km, kc, left = kernel
    pid = int(_run_cell(kc, "import os; print(os.getpid())").strip())
    printed = _run_cell(kc, (
        "import hierlin_stan as hs\n"
        f"idata = hs.fit(hs.simulate(), 'marginal', seed=1, engine={engine_name!r}, show_progress=False)\n"
        "print(idata.attrs['engine'])\n"
    ))
    assert printed.strip().splitlines()[-1] == engine_name
    before = descendants(pid)
    if engine_name == "pystan":  # httpstan keeps its chain workers between fits: what used to outlive the kernel
        assert before, "expected httpstan's chain workers in the kernel"
    left += before

    start = time.monotonic()
    km.shutdown_kernel(now=False)  # what "Restart kernel" and closing a notebook do
    seconds = time.monotonic() - start

    watched = {p.pid: p for p in before + in_group(pid)}  # orphans keep the kernel's process group
    alive = survivors(watched.values(), timeout=20)
    left += alive
    assert not alive, "processes outlived the kernel:\n" + "\n".join(describe(alive))
    assert not km.is_alive()
    assert seconds < 15, f"kernel shutdown took {seconds:.1f} s"


@pytest.mark.slow
def test_kernel_shutdown_during_a_fit_leaves_no_process(kernel, engine_name):
    """Restarting the kernel while chains run: they stop with it."""
    from hierlin_stan.engines import get_engine
    from tests.process_helpers import wait_for

    get_engine(engine_name, verbose=False).compile("centered")
    km, kc, left = kernel
    pid = int(_run_cell(kc, "import os; print(os.getpid())").strip())
    kc.execute("import hierlin_stan as hs\n"
               f"hs.fit(hs.simulate(seed=1), 'centered', engine={engine_name!r}, draws=400000, seed=1, "
               "show_progress=False)\n")
    running = wait_for(lambda: [p for p in descendants(pid) if engine_name == "pystan" or p.name() == "centered"],
                       300, "chains to run in the kernel")
    time.sleep(2)
    before = descendants(pid)
    left += before
    assert running

    km.shutdown_kernel(now=False)

    watched = {p.pid: p for p in before + in_group(pid)}
    alive = survivors(watched.values(), timeout=20)
    left += alive
    assert not alive, "processes outlived the kernel:\n" + "\n".join(describe(alive))
    assert not km.is_alive()


@pytest.mark.slow
def test_killed_kernel_leaves_no_chain_worker(kernel):
    """A kernel that dies at once (SIGKILL, the OOM killer) cannot stop httpstan's workers: they leave by themselves."""
    import signal

    km, kc, left = kernel
    pid = int(_run_cell(kc, "import os; print(os.getpid())").strip())
    _run_cell(kc, "import hierlin_stan as hs\n"
                  "hs.fit(hs.simulate(), 'marginal', seed=1, engine='pystan', show_progress=False)\n")
    before = descendants(pid)
    left += before
    assert before, "expected httpstan's chain workers in the kernel"

    os.kill(pid, signal.SIGKILL)  # only the kernel: nothing signals its process group

    alive = survivors(before, timeout=15)
    assert not alive, "processes outlived the kernel:\n" + "\n".join(describe(alive))
