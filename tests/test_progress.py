"""One progress display per long step; engines' console chatter captured, never printed.

Fast tests of the pieces (where a display goes, its text and rate, the capture of
threads' and child processes' output, the parsing of CmdStan's console), then real
fits on each engine whose every byte of stdout/stderr is checked. The displays in a
real Jupyter kernel are checked by tests/test_notebook.py.
"""

from __future__ import annotations

import re
import subprocess
import sys
import threading

import pytest

import hierlin_stan as hs
from hierlin_stan.engines.cmdstan_engine import _ChainConsole
from hierlin_stan.utils import progress
from hierlin_stan.utils.console import capture_fd_output, capture_thread_output

ANSI = re.compile(r"\x1b")
RATE = re.compile(r"([\d.,]+)\s*it/s")


class _Handle:
    """Stands in for IPython's display handle: records every update."""

    def __init__(self, shown: list[str]) -> None:
        self.shown = shown

    def update(self, data: dict, raw: bool = False) -> None:
        self.shown.append(data["text/plain"])


@pytest.fixture
def line_display(monkeypatch):
    """The notebook's plain line (no ipywidgets), its display calls recorded."""
    import IPython.display

    shown: list[str] = []

    def display(data, raw=False, display_id=False):
        assert raw and display_id is True, "the line must be one raw text output with a display id"
        shown.append(data["text/plain"])
        return _Handle(shown)

    monkeypatch.setattr(IPython.display, "display", display)
    monkeypatch.setattr(progress, "in_notebook", lambda: True)
    monkeypatch.setattr(progress, "_widgets_available", lambda: False)
    return shown


# ------------------------------------------------------------ where it goes
def test_display_mode_follows_the_environment(monkeypatch):
    class Tty:
        def isatty(self):
            return True

    monkeypatch.delenv("HIERLIN_PROGRESS", raising=False)
    monkeypatch.setattr(progress, "in_notebook", lambda: False)
    assert progress.display_mode() is None  # pytest's stderr is no terminal: logs and pipes stay clean
    assert progress.progress_bar(10, "x") is None
    monkeypatch.setenv("HIERLIN_PROGRESS", "1")
    assert progress.display_mode() == "terminal"
    monkeypatch.delenv("HIERLIN_PROGRESS")
    monkeypatch.setattr(sys, "stderr", Tty())
    assert progress.display_mode() == "terminal"
    monkeypatch.setattr(progress, "in_notebook", lambda: True)
    monkeypatch.setattr(progress, "_widgets_available", lambda: True)
    assert progress.display_mode() == "widget"
    monkeypatch.setattr(progress, "_widgets_available", lambda: False)
    assert progress.display_mode() == "line"
    assert progress.progress_bar(10, "x", enabled=False) is None  # show_progress=False / --quiet: nothing


def test_not_a_notebook_outside_a_kernel():
    assert not progress.in_notebook()  # pytest imports no ipykernel shell


def test_widgets_missing_means_no_widget(monkeypatch):
    monkeypatch.setitem(sys.modules, "ipywidgets", None)  # `import ipywidgets` fails
    assert not progress._widgets_available()


# ------------------------------------------------------------ the plain line
def test_plain_line_is_one_output_updated_in_place(line_display):
    bar = progress.progress_bar(8000, "pystan marginal (4 chains)")
    assert isinstance(bar, progress._LineProgress)
    bar.start -= 2.0  # as if sampling had run for 2 s
    bar.set(4000)
    bar.set(3000)  # never backwards
    assert bar.n == 4000
    bar.update(4000)
    bar.close()
    bar.close()  # idempotent
    final = line_display[-1]
    assert final.startswith("pystan marginal (4 chains): 100% 8000/8000 it, done in 2.")
    rate = float(RATE.search(final).group(1).replace(",", ""))
    assert 3000 < rate < 4100  # 8000 iterations in ~2 s: iterations per second of the step
    assert not any(ANSI.search(t) or "\r" in t or "\n" in t for t in line_display)
    assert len(line_display) <= 4  # throttled: the first text, maybe one update, the final one


def test_plain_line_says_when_a_step_stopped_short(line_display):
    bar = progress.progress_bar(100, "cmdstan centered (4 chains)", unit="it")
    bar.set(40)
    bar.close()
    assert "40/100 it, stopped in" in line_display[-1]


def test_unit_can_be_set_after_making_the_display(line_display):
    bar = progress.progress_bar(5, "SBC")
    bar.unit = "sim"  # as workflows.sbc does
    bar.update(5)
    bar.close()
    assert "5/5 sim" in line_display[-1] and "sim/s" in line_display[-1]


def test_terminal_bar_rate_is_iterations_per_second(monkeypatch, capsys):
    monkeypatch.setenv("HIERLIN_PROGRESS", "1")
    monkeypatch.setattr(progress, "in_notebook", lambda: False)
    bar = progress.progress_bar(1000, "metropolis marginal (4 chains)")
    assert isinstance(bar, progress._TqdmProgress)
    for _ in range(10):
        bar.update(100)
    bar.close()
    err = capsys.readouterr().err
    assert "metropolis marginal (4 chains)" in err and not ANSI.search(err)


def test_say_goes_to_stdout_in_a_notebook_stderr_elsewhere(monkeypatch, capsys):
    progress.say("hello terminal")
    monkeypatch.setattr(progress, "in_notebook", lambda: True)
    progress.say("hello notebook")
    got = capsys.readouterr()
    assert got.err == "hello terminal\n" and got.out == "hello notebook\n"


# ------------------------------------------------------------ capturing output
def test_thread_output_goes_to_the_callback_and_the_callers_output_stays(capsys):
    lines: list[str] = []

    def chain() -> None:
        print("Chain [1] Iteration: 100 / 200 [ 50%]  (Warmup)")
        print("Chain [1] Exception: normal_lpdf: Scale parameter is 0", end="")

    with capture_thread_output(lines.append):
        print("the caller's own line")
        worker = threading.Thread(target=chain)
        worker.start()
        worker.join()
    assert sys.stdout is not None and not hasattr(sys.stdout, "new_threads")  # put back
    assert lines == ["Chain [1] Iteration: 100 / 200 [ 50%]  (Warmup)",
                     "Chain [1] Exception: normal_lpdf: Scale parameter is 0"]  # the unfinished line too
    assert capsys.readouterr().out == "the caller's own line\n"


def test_overlapping_captures_leave_the_real_stdout_behind():
    real = sys.stdout
    first = capture_thread_output(lambda line: None)
    second = capture_thread_output(lambda line: None)
    first.__enter__()
    second.__enter__()
    first.__exit__(None, None, None)  # ends while the second still runs: sys.stdout is the second's
    assert sys.stdout is not real
    second.__exit__(None, None, None)
    assert sys.stdout is real


def test_child_process_output_is_captured_at_the_file_descriptors(capfd):
    with capture_fd_output() as captured:
        subprocess.run([sys.executable, "-c", "import sys; print('g++ says hi'); "
                        "sys.stderr.write('warning: unused variable\\n')"], check=True)
    assert "g++ says hi" in captured.text and "warning: unused variable" in captured.text
    assert "unused variable" in captured.tail(1)
    out, err = capfd.readouterr()
    assert out == "" and err == ""
    print("after")  # the descriptors are back
    assert capfd.readouterr().out == "after\n"


def test_cmdstan_console_feeds_one_bar_and_keeps_the_rest(line_display):
    bar = progress.progress_bar(8000, "cmdstan centered (4 chains)")
    console = _ChainConsole(bar)
    lines = ["method = sample (Default)"]
    for chain in (1, 2, 3, 4):
        lines += [f"Chain [{chain}] Iteration:    1 / 2000 [  0%]  (Warmup)",
                  f"Chain [{chain}] Informational Message: The current Metropolis proposal is about to be rejected",
                  f"Chain [{chain}] Exception: normal_lpdf: Scale parameter is 0, but must be positive!",
                  f"Chain [{chain}] Iteration: 1000 / 2000 [ 50%]  (Warmup)"]
    lines += ["Chain [3] Iteration: 2000 / 2000 [100%]  (Sampling)", "Iteration: 1500 / 2000 [ 75%]  (Sampling)"]
    threads = [threading.Thread(target=console.line, args=(line,)) for line in lines]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert console.done == {1: 1500, 2: 1000, 3: 2000, 4: 1000}  # a line without prefix is chain 1's
    assert bar.n == 5500
    console.close()
    assert "Scale parameter is 0" in console.tail_text() and "Iteration" not in console.tail_text()
    assert _ChainConsole(None).tail_text() == ""


# ------------------------------------------------------------ real fits
@pytest.mark.slow
def test_fit_shows_one_bar_and_no_engine_chatter(engine_name, monkeypatch, capfd):
    """The centered program on the notebook's data makes Stan print rejections; none may reach the user."""
    data = hs.simulate(seed=1)
    hs.fit(data, "centered", engine=engine_name, seed=1, draws=300, warmup=300, show_progress=False)
    out, err = capfd.readouterr()
    assert out == "" and err == "", f"show_progress=False printed: {(out + err)[:2000]}"

    monkeypatch.setenv("HIERLIN_PROGRESS", "1")  # the terminal bar, though stderr is captured here
    hs.fit(data, "centered", engine=engine_name, seed=1, draws=300, warmup=300)
    out, err = capfd.readouterr()
    assert out == "", f"stdout got: {out[:2000]}"
    desc = f"{engine_name} centered (4 chains)"
    shown = [part for part in re.split(r"[\r\n]", err) if part.strip()]
    assert shown and all(part.startswith(desc) for part in shown), f"not only our one bar: {shown[:20]}"
    assert not ANSI.search(err)
    rates = [float(r.replace(",", "")) for r in RATE.findall(err)]
    assert rates and max(rates) < 1e6, f"absurd rates: {rates}"  # 2,400 iterations take far more than 2.4 ms
