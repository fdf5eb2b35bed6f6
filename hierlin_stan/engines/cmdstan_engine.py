"""CmdStan engine, through cmdstanpy: the primary engine where CmdStan is installed.

Executables are compiled from the flattened program source in the package's
cache (the installed ``.stan`` files may be read-only), in a folder keyed by
the source hash (and the C++ header's, for the fused programs: cmdstanpy does not
rebuild when only a header changed) and the toolchain, built under a cross-process
lock into a scratch folder and renamed into place, so concurrent processes compile
once and never see a half-built model. Every fit writes its CSVs to its own fresh
folder, read and then removed.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from .programs import program_key, program_source, user_header
from ..utils.cache import cache_root, file_lock
from ..utils.console import capture_thread_output
from ..utils.processes import stop_children_on_interrupt
from ..utils.progress import Progress, progress_bar
from .base import ChainError, EngineError, RawDraws, split_columns, stan_failure_reason
from .controls import NutsControls

NAME = "cmdstan"
CMDSTAN_VERSION = "2.35.0"  # pinned for `hierlin install-cmdstan`: the Stan of PyStan 3.10


def _import_cmdstanpy() -> Any:
    """cmdstanpy, imported without tqdm's "IProgress not found" warning.

    cmdstanpy imports ``tqdm.auto``, which warns inside a Jupyter kernel without
    ipywidgets; the package never uses cmdstanpy's bars (see :class:`_ChainConsole`).
    """
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="IProgress not found")
        import cmdstanpy
    return cmdstanpy


def available() -> tuple[bool, str]:
    """Whether cmdstanpy finds a CmdStan installation (``$CMDSTAN`` or ``~/.cmdstan``), and why not."""
    try:
        cmdstanpy = _import_cmdstanpy()
    except Exception as err:  # pragma: no cover - cmdstanpy is a dependency
        return False, f"cmdstanpy is not importable ({err})"
    try:
        path = cmdstanpy.cmdstan_path()
    except (ValueError, RuntimeError) as err:
        return False, f"no CmdStan installation found by cmdstanpy ({' '.join(str(err).split())})"
    return True, f"CmdStan at {path}"


class CmdStanEngine:
    """Run Stan programs with CmdStan executables."""

    name = NAME

    def __init__(self) -> None:
        ok, why = available()
        if not ok:
            raise EngineError(
                f"{NAME}: {why}. Install it with `hierlin install-cmdstan` (needs internet) or set "
                "$CMDSTAN to an installation; meanwhile use engine='pystan', which needs no CmdStan."
            )
        import cmdstanpy

        # get_logger() sets the level to DEBUG the first time it runs: call it, then quieten.
        logger = cmdstanpy.utils.get_logger()
        logger.setLevel(logging.WARNING)
        if not any(isinstance(f, _QuietChainErrors) for f in logger.filters):
            logger.addFilter(_QuietChainErrors())
        self._cmdstanpy = cmdstanpy
        self._path = cmdstanpy.cmdstan_path()
        self._models: dict[str, Any] = {}

    def versions(self) -> dict[str, str]:
        """Versions of cmdstanpy and CmdStan."""
        version = self._cmdstanpy.utils.cmdstan_version()
        return {
            "engine": NAME,
            "cmdstanpy": self._cmdstanpy.__version__,
            "cmdstan": ".".join(map(str, version)) if version else "unknown",
            "stan": ".".join(map(str, version)) if version else "unknown",
        }

    # --------------------------------------------------------------- compile
    def _toolchain_key(self) -> str:
        parts = [self._path, str(self._cmdstanpy.utils.cmdstan_version()), os.environ.get("CXX", ""),
                 shutil.which("g++") or "", shutil.which("clang++") or ""]
        return hashlib.sha256("|".join(parts).encode()).hexdigest()[:12]

    @stop_children_on_interrupt()  # Ctrl-C/SIGTERM: kill make and the compiler
    def compile(self, program: str) -> float:
        """Compile ``program`` once per source hash and toolchain; return seconds spent."""
        import time

        start = time.perf_counter()
        self._model(program)
        return time.perf_counter() - start

    def _model(self, program: str) -> Any:
        if program in self._models:
            return self._models[program]
        source = program_source(program)
        root = cache_root() / "cmdstan" / self._toolchain_key()
        folder = root / f"{program}-{program_key(program)}"
        exe = folder / program
        header = user_header(program)
        # a fused program: stanc --allow-undefined, and its C++ header (a copy kept with the build)
        options = {} if header is None else {"stanc_options": {"allow-undefined": True}}
        with file_lock(root / f"{folder.name}.lock"):
            if not exe.is_file():
                scratch = Path(tempfile.mkdtemp(prefix=f".{program}-", dir=root))
                try:
                    (scratch / f"{program}.stan").write_text(source, encoding="utf-8")
                    try:
                        self._compile_into(scratch, program, header, options)
                    except Exception as err:
                        raise EngineError(
                            f"{NAME}: compiling the {program} program failed: {' '.join(str(err).split())[:3000]}\n"
                            "Check that a C++ compiler and make work (`hierlin install-cmdstan` tests them)."
                        ) from err
                    if folder.exists():
                        shutil.rmtree(folder)
                    os.replace(scratch, folder)
                finally:
                    shutil.rmtree(scratch, ignore_errors=True)
        model = self._cmdstanpy.CmdStanModel(stan_file=str(folder / f"{program}.stan"), exe_file=str(exe), **options)
        self._models[program] = model
        return model

    def _compile_into(self, scratch: Path, program: str, header: Path | None, options: dict[str, Any]) -> None:
        """Compile ``scratch/<program>.stan`` (with a copy of ``header`` next to it, if any).

        A user header is ``-include``d before the model code, which stops GCC from using
        CmdStan's precompiled model header: a fused program then takes ~2x as long to
        compile. Including the model header first, on the command line, lets GCC use it
        again; should a toolchain refuse that (clang has its own PCH flags), compile plainly.
        """
        stan_file = str(scratch / f"{program}.stan")
        if header is None:
            self._cmdstanpy.CmdStanModel(stan_file=stan_file, **options)
            return
        shutil.copyfile(header, scratch / header.name)
        kw = dict(options, user_header=str(scratch / header.name))
        pch = Path(self._path) / "stan" / "src" / "stan" / "model" / "model_header.hpp.gch"
        if pch.is_dir():
            try:
                # CXXFLAGS_TBB: a make variable CmdStan puts into CXXFLAGS and leaves empty
                self._cmdstanpy.CmdStanModel(stan_file=stan_file, cpp_options={
                    "CXXFLAGS_TBB": "-include stan/model/model_header.hpp"}, **kw)
                return
            except Exception:  # noqa: BLE001 - fall back to the plain build, which reports its own error
                pass
        self._cmdstanpy.CmdStanModel(stan_file=stan_file, **kw)

    # ---------------------------------------------------------------- sample
    def sample(
        self,
        program: str,
        data: Mapping[str, Any],
        *,
        chains: int,
        draws: int,
        warmup: int,
        seed: int,
        thin: int = 1,
        show_progress: bool = True,
        controls: NutsControls | None = None,
    ) -> RawDraws:
        """Run adaptive NUTS with ``controls``; see :class:`~hierlin_stan.engines.base.Engine`."""
        controls = controls or NutsControls()
        if isinstance(controls.inits, tuple):
            inits: Any = [_jsonable(d) for d in controls.inits]
            if len(inits) != chains:
                raise ValueError(f"inits has {len(inits)} dicts for chains={chains}; give one dict per chain")
        elif isinstance(controls.inits, dict):
            inits = _jsonable(controls.inits)
        else:
            inits = float(controls.inits)
        return self._run(program, data, show_progress, chains=chains, iter_sampling=draws,
                         iter_warmup=warmup, thin=thin, seed=seed, adapt_delta=controls.adapt_delta,
                         max_treedepth=controls.max_treedepth, metric=f"{controls.metric}_e",
                         step_size=controls.step_size, inits=inits)

    def fixed_param(
        self,
        program: str,
        data: Mapping[str, Any],
        *,
        chains: int,
        draws: int,
        seed: int,
        show_progress: bool = True,
    ) -> RawDraws:
        """Run the fixed_param sampler; see :class:`~hierlin_stan.engines.base.Engine`."""
        return self._run(program, data, show_progress, chains=chains, iter_sampling=draws,
                         seed=seed, fixed_param=True)

    @stop_children_on_interrupt()  # Ctrl-C/SIGTERM: kill the CmdStan processes, running and queued
    def _run(self, program: str, data: Mapping[str, Any], show_progress: bool, **kwargs: Any) -> RawDraws:
        import time

        compile_seconds = self.compile(program)
        model = self._models[program]
        out = Path(tempfile.mkdtemp(prefix=f"hierlin-{program}-"))
        chains = kwargs["chains"]
        console = _ChainConsole(progress_bar(chains * (kwargs.get("iter_warmup", 0) + kwargs["iter_sampling"]),
                                             f"{NAME} {program} ({chains} chains)", show_progress))
        try:
            start = time.perf_counter()
            try:
                # cmdstanpy's own progress is one bar per chain (ANSI codes in a notebook); its console
                # lines, printed from its threads with show_console, feed our one bar instead
                with capture_thread_output(console.line):
                    fit = model.sample(data=_jsonable(data), output_dir=str(out), show_progress=False,
                                       show_console=True, parallel_chains=min(chains, os.cpu_count() or 1),
                                       **kwargs)
            except RuntimeError as err:
                failed = _failed_chains(str(err), out, kwargs["chains"])
                if failed:
                    chain, reason = failed[0]
                    others = [c for c, _ in failed[1:]]
                    if others:
                        head, sep, advice = reason.partition(" -- ")
                        reason = f"{head} (chain(s) {', '.join(map(str, others))} failed too){sep}{advice}"
                    raise ChainError(NAME, chain, reason) from err
                text = " ".join(str(err).split())
                raise EngineError(f"{NAME}: sampling the {program} program failed: {text[:3000]}"
                                  + console.tail_text()) from err
            except ValueError as err:
                raise EngineError(f"{NAME}: the {program} program rejected its data or arguments: {err}") from err
            finally:
                console.close()
            wall = time.perf_counter() - start
            values = np.ascontiguousarray(np.transpose(fit.draws(), (1, 0, 2)))  # (chain, draw, column)
            variables_meta = sorted(fit.metadata.stan_vars.values(), key=lambda v: v.start_idx)
            dims = {v.name: tuple(v.dimensions) for v in variables_meta}
            variables, stats = split_columns(list(fit.column_names), values, dims)
            times = fit.time if not kwargs.get("fixed_param") else []
            adaptation = {}
            if not kwargs.get("fixed_param"):
                adaptation = {"step_size": np.asarray(fit.step_size, dtype=float),
                              # cmdstanpy >= 1.3 names it inv_metric (metric is deprecated)
                              "inv_metric": np.asarray(fit.inv_metric if hasattr(type(fit), "inv_metric")
                                                       else fit.metric, dtype=float)}
        finally:
            shutil.rmtree(out, ignore_errors=True)
        info = {
            **self.versions(),
            "compile_seconds": compile_seconds,
            "warmup_seconds": max((t.get("warmup", np.nan) for t in times), default=float("nan")),
            "sampling_seconds": max((t.get("sampling", np.nan) for t in times), default=float("nan")),
            "sampling_chain_seconds": float(sum(t.get("sampling", np.nan) for t in times)) if times else float("nan"),
            "chain_seconds_total": float(sum(t.get("total", 0.0) for t in times)),
            "wall_seconds": wall,
        }
        return RawDraws(variables, stats, info, adaptation)

    # ----------------------------------------------------------- log density
    def log_density(
        self, program: str, data: Mapping[str, Any], params: Mapping[str, Any], jacobian: bool = True
    ) -> float:
        """Stan's log density at constrained ``params`` (CmdStan's log_prob method)."""
        return float(self.log_density_many(program, data, [params], jacobian)[0])

    def log_density_many(
        self, program: str, data: Mapping[str, Any], params: list[Mapping[str, Any]], jacobian: bool = True
    ) -> np.ndarray:
        """Log density at many constrained points (one CmdStan call each)."""
        self.compile(program)
        model = self._models[program]
        out = []
        for point in params:
            frame = model.log_prob(_jsonable(point), _jsonable(data), jacobian=jacobian, sig_figs=18)
            out.append(float(frame["lp__"].iloc[0]))
        return np.asarray(out)


def install(version: str = CMDSTAN_VERSION, progress: bool = True) -> str:
    """Install CmdStan ``version`` with cmdstanpy (downloads from GitHub); return its path.

    Raises
    ------
    EngineError
        When the download or build fails, saying why and that the PyStan engine
        works meanwhile.
    """
    cmdstanpy = _import_cmdstanpy()

    ok = cmdstanpy.install_cmdstan(version=version, progress=progress, cores=os.cpu_count() or 1)
    if not ok:
        raise EngineError(
            f"installing CmdStan {version} failed: cmdstanpy downloads it from GitHub, so this host needs "
            "access there, and then builds it with make and a C++ compiler (its log above says which "
            "step failed). Meanwhile the PyStan engine "
            "runs the same programs: engine='pystan' (or engine='auto', which falls back to it)."
        )
    ok, where = available()
    return where


class _QuietChainErrors(logging.Filter):
    """Drop cmdstanpy's log lines that point users to objects they never see.

    * "Chain [1] error: code '1' Operation not permitted": ``os.strerror`` of CmdStan's
      exit code, which misleads; the engine raises a :class:`ChainError` with Stan's
      own reason instead.
    * "Non-fatal error during sampling ... re-running with show_console=True" and
      "Some chains may have failed to converge ... Use the diagnose() method": the
      rejections Stan recovers from, and divergences and tree-depth hits, which the
      package's verdict reports (with calls that exist) for both engines alike; the
      PyStan engine prints neither.
    """

    _DROP = re.compile(r"Chain \[\d+\] error: code|Non-fatal error during sampling|"
                       r"Some chains may have failed to converge")

    def filter(self, record: logging.LogRecord) -> bool:
        return not self._DROP.match(str(record.getMessage()))


class _ChainConsole:
    """The console lines of CmdStan's chains: progress feeds one bar, the rest is kept for errors.

    CmdStan prints ``Iteration:  100 / 2000 [  5%]  (Warmup)`` every ``refresh``
    iterations, which cmdstanpy prefixes with ``Chain [k]`` (or CmdStan itself, when
    one process runs every chain). Everything else (Stan's informational messages,
    such as the rejections it recovers from) is kept, last lines only, and shown
    only in the text of an error.
    """

    _PROGRESS = re.compile(r"^(?:Chain \[(\d+)\]\s*)?Iteration:\s*(\d+)\s*/\s*(\d+)")
    _KEEP = 200

    def __init__(self, bar: Progress | None) -> None:
        self.bar = bar
        self.done: dict[int, int] = {}
        self.lines: list[str] = []
        self._lock = threading.Lock()

    def line(self, text: str) -> None:
        """Take one console line (called from cmdstanpy's threads)."""
        text = text.strip()
        match = self._PROGRESS.match(text)
        with self._lock:
            if match is None:
                if text:
                    self.lines.append(text)
                    del self.lines[:-self._KEEP]
                return
            chain = int(match.group(1) or 1)
            self.done[chain] = max(self.done.get(chain, 0), int(match.group(2)))
            done = sum(self.done.values())
        if self.bar is not None:
            self.bar.set(done)

    def tail_text(self, lines: int = 20) -> str:
        """The last console lines, as a paragraph to append to an error message ("" when none)."""
        with self._lock:
            kept = self.lines[-lines:]
        return ("\nCmdStan's last console lines:\n" + "\n".join(kept)) if kept else ""

    def close(self) -> None:
        """End the progress display."""
        if self.bar is not None:
            self.bar.close()


def _failed_chains(message: str, out: Path, chains: int) -> list[tuple[int, str]]:
    """(chain, Stan's reason) of every chain that failed, from the console files in ``out``.

    cmdstanpy's error gives the exit codes (``retcodes=[1, 0, ...]``, one per process)
    but only the path of chain 1's console file; each process writes its console to
    ``<out>/<model>-<time>_<index>-stdout.txt`` (index from 0), which we read.
    """
    match = re.search(r"retcodes=\[([^\]]*)\]", message)
    codes = [int(c) for c in re.findall(r"-?\d+", match.group(1))] if match else []
    consoles = {}
    for path in out.glob("*-stdout.txt"):
        index = re.search(r"_(\d+)-stdout\.txt$", path.name)
        consoles[int(index.group(1)) if index else 0] = path  # no index: one process for every chain
    if len(codes) == 1 and chains > 1:  # one process ran every chain
        failed_indices = [0] if codes[0] != 0 else []
    else:
        failed_indices = [i for i, code in enumerate(codes) if code != 0]
    result = []
    for i in failed_indices:
        path = consoles.get(i)
        console = path.read_text(encoding="utf-8", errors="replace") if path is not None else ""
        reason = stan_failure_reason(console) if console.strip() else f"CmdStan exited with code {codes[i]} and printed nothing"
        result.append((i + 1, reason))
    return result


def _jsonable(data: Mapping[str, Any]) -> dict[str, Any]:
    return {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in data.items()}
