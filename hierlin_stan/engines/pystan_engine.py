"""PyStan 3 (httpstan) engine: stanc3, Stan math and NUTS from the PyPI wheels.

Runs the same flattened ``.stan`` sources as the CmdStan engine. We drive
httpstan's REST interface ourselves (rather than ``stan.Model.sample``) so that
progress is a tqdm bar, a failed chain is named, per-chain warmup and sampling
times are kept, Ctrl-C is not swallowed, and finished fits are deleted from
httpstan's cache (which otherwise keeps every seeded fit on disk and replays it
instead of sampling again).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import threading
import time
from typing import Any, Mapping

import numpy as np

from .programs import is_fused, program_hash, program_source
from ..utils.cache import cache_root, file_lock, working_directory
from ..utils.console import capture_fd_output
from ..utils.progress import progress_bar
from ..utils.processes import stop_children_on_interrupt
from .base import INIT_ADVICE, ChainError, EngineError, RawDraws, split_columns
from .controls import NutsControls

NAME = "pystan"
_ELAPSED = re.compile(r"([0-9.eE+-]+) seconds \((Warm-up|Sampling)\)")
_ITERATION = re.compile(r"Iteration:\s+(\d+)\s+/\s+(\d+)")


def available() -> tuple[bool, str]:
    """Whether PyStan can be imported here, and why not."""
    try:
        import httpstan  # noqa: F401
        import stan  # noqa: F401
    except Exception as err:  # pragma: no cover - depends on the host
        return False, f"PyStan is not importable ({err}); pip install pystan"
    return True, "PyStan (httpstan) is installed"


class PyStanEngine:
    """Run Stan programs through httpstan, in-process."""

    name = NAME

    def __init__(self) -> None:
        ok, why = available()
        if not ok:
            raise EngineError(why)
        self._built: set[str] = set()
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ info
    def versions(self) -> dict[str, str]:
        """Versions of pystan, httpstan and the Stan they ship."""
        import httpstan
        import stan

        return {
            "engine": NAME,
            "pystan": getattr(stan, "__version__", "unknown"),
            "httpstan": httpstan.__version__,
            "stan": _STAN_OF_HTTPSTAN.get(httpstan.__version__.rsplit(".", 1)[0], "unknown"),
        }

    # --------------------------------------------------------------- compile
    def compile(self, program: str) -> float:
        """Build program ``program`` (cached by httpstan on its source hash); return seconds."""
        return _run(self._compile_async(program))

    async def _compile_async(self, program: str) -> float:
        from stan.common import HttpstanClient

        async with HttpstanClient() as client:
            return await self._build(client, program)

    async def _build(self, client: Any, program: str) -> float:
        if is_fused(program):
            raise EngineError(f"{NAME}: the {program} program needs a C++ header, which httpstan cannot compile; "
                              f"run its pure twin {program.removesuffix('_fused')!r} (fused=False), or use "
                              "engine='cmdstan'")
        source = program_source(program)
        start = time.perf_counter()
        key = program_hash(source)
        if key in self._built:
            return 0.0
        # One build per source across processes; httpstan's compiler leaves a
        # build/ folder in the current directory, so build inside our cache.
        scratch = cache_root() / "httpstan-build"
        with file_lock(cache_root() / "locks" / f"pystan-{key}.lock"), working_directory(scratch):
            was_built = _is_built(source)
            # the compiler's warnings go straight to the process's stdout/stderr (a notebook shows
            # them as a wall of red text): keep them, and show them only if the build fails
            with capture_fd_output() if not was_built else contextlib.nullcontext() as compiler:
                resp = await client.post("/models", json={"program_code": source})
            if resp.status == 201 and not was_built:
                log_compile_event(NAME, program, key, time.perf_counter() - start)
        if resp.status != 201:
            message = _clean(resp.json().get("message", ""))
            output = ""
            if compiler is not None and compiler.text.strip():
                output = f"\nCompiler output (last lines):\n{compiler.tail()}"
            if "CompileError" in message or "DistutilsExecError" in message or "LinkError" in message:
                raise EngineError(
                    f"{NAME}: the C++ compiler failed building the {program} program: {message}\n"
                    "Install a working C++ compiler (Debian/Ubuntu: apt-get install g++; check $CC/$CXX)." + output
                )
            raise EngineError(f"{NAME}: stanc rejected the {program} program: {message}")
        self._built.add(key)
        return time.perf_counter() - start

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
        """Run adaptive NUTS with ``controls``; see :class:`~hierlin_stan.engines.base.Engine`.

        httpstan runs Stan's ``hmc_nuts_diag_e_adapt`` service (its only NUTS): the
        controls map to its arguments ``delta``, ``max_depth``, ``stepsize``,
        ``init_radius`` and ``init`` (per chain). It has no dense-metric service, so
        ``metric="dense"`` raises an :class:`EngineError` pointing to CmdStan.
        """
        controls = controls or NutsControls()
        if controls.metric != "diag":
            raise EngineError(
                f"{NAME}: metric={controls.metric!r} is not available: httpstan runs only Stan's diagonal-metric "
                "NUTS (hmc_nuts_diag_e_adapt). Use engine='cmdstan' (CmdStan: `hierlin install-cmdstan`) for "
                "a dense metric, or metric='diag'."
            )
        if isinstance(controls.inits, tuple) and len(controls.inits) != chains:
            raise ValueError(f"inits has {len(controls.inits)} dicts for chains={chains}; give one dict per chain")
        args = {
            "function": "stan::services::sample::hmc_nuts_diag_e_adapt",
            "num_samples": draws,
            "num_warmup": warmup,
            "num_thin": thin,
            "delta": controls.adapt_delta,
            "max_depth": controls.max_treedepth,
            "stepsize": controls.step_size,
        }
        per_chain = {}
        for chain in range(1, chains + 1):
            radius, values = controls.chain_inits(chain)
            per_chain[chain] = {"init_radius": radius, "init": _jsonable(values)}
        return _run(self._run_async(program, data, chains, seed, args, show_progress,
                                    draws // thin + (draws % thin > 0), per_chain))

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
        args = {"function": "stan::services::sample::fixed_param", "num_samples": draws}
        return _run(self._run_async(program, data, chains, seed, args, show_progress, draws))

    async def _run_async(
        self,
        program: str,
        data: Mapping[str, Any],
        chains: int,
        seed: int,
        args: dict[str, Any],
        show_progress: bool,
        kept: int,
        per_chain: Mapping[int, Mapping[str, Any]] | None = None,
    ) -> RawDraws:
        from stan.common import HttpstanClient
        from stan.fit import Fit

        data = _jsonable(data)
        async with HttpstanClient() as client:
            compile_seconds = await self._build(client, program)
            model = f"models/{program_hash_name(program)}"
            params = await self._params(client, model, program, data)
            wall = time.perf_counter()
            operations = []
            for chain in range(1, chains + 1):
                payload = dict(args, chain=chain, data=data, random_seed=seed, **(per_chain or {}).get(chain, {}))
                resp = await client.post(f"/{model}/fits", json=payload)
                if resp.status != 201:
                    raise ChainError(NAME, chain, _clean(resp.json().get("message", str(resp.status))))
                operations.append(resp.json())
            iterations = args.get("num_warmup", 0) + args["num_samples"]
            outputs = await self._wait(client, operations, chains, show_progress, program, iterations)
            wall = time.perf_counter() - wall

        names = list(params)
        dims = {n: tuple(d) for n, d in params.items()}
        constrained = _constrained_names(dims)
        fit = Fit(tuple(outputs), chains, tuple(names), tuple(constrained), tuple(dims[n] for n in names),
                  args.get("num_warmup", 0), args["num_samples"], args.get("num_thin", 1), False)
        columns = list(fit.sample_and_sampler_param_names) + constrained
        values = np.ascontiguousarray(np.transpose(fit._draws, (2, 1, 0)))  # (chain, draw, column)
        if values.shape[1] != kept:
            raise EngineError(f"{NAME}: expected {kept} draws per chain, got {values.shape[1]}")
        variables, stats = split_columns(columns, values, dims)
        warm, samp = _elapsed(outputs)
        info = {
            **self.versions(),
            "compile_seconds": compile_seconds,
            "warmup_seconds": max(warm) if warm else float("nan"),
            "sampling_seconds": max(samp) if samp else float("nan"),
            "sampling_chain_seconds": float(sum(samp)) if samp else float("nan"),
            "chain_seconds_total": float(sum(warm) + sum(samp)),
            "wall_seconds": wall,
        }
        adaptation = _adaptation(outputs) if args["function"].endswith("_adapt") else {}
        return RawDraws(variables, stats, info, adaptation)

    async def _params(self, client: Any, model: str, program: str, data: Mapping[str, Any]) -> dict[str, list[int]]:
        resp = await client.post(f"/{model}/params", json={"data": data})
        if resp.status != 200:
            raise EngineError(f"{NAME}: the {program} program rejected its data: {_clean(resp.json().get('message', ''))}")
        return {p["name"]: list(p["dims"]) for p in resp.json()["params"]}

    async def _wait(self, client: Any, operations: list[dict], chains: int, show_progress: bool, program: str,
                    iterations: int) -> list[bytes]:
        done_iters: dict[int, int] = {}
        # made as sampling starts, so that its rate is iterations per second of sampling
        bar = progress_bar(iterations * chains, f"{NAME} {program} ({chains} chains)", show_progress)
        try:
            while not all(op["done"] for op in operations):
                for chain, op in enumerate(operations, start=1):
                    if op["done"]:
                        if "name" in (op.get("result") or {}):  # finished (a failed chain stays where it stopped)
                            done_iters[chain] = iterations
                        continue
                    resp = await client.get(f"/{op['name']}")
                    op.update(resp.json())
                    found = _ITERATION.findall(op.get("metadata", {}).get("progress", "") or "")
                    if found:
                        done_iters[chain] = int(found[-1][0])
                if bar is not None:
                    bar.set(sum(done_iters.values()))
                await asyncio.sleep(0.05)
            if bar is not None:
                bar.set(sum(iterations if "name" in (op.get("result") or {}) else done_iters.get(chain, 0)
                            for chain, op in enumerate(operations, start=1)))
        finally:
            if bar is not None:
                bar.close()
        outputs = []
        for chain, op in enumerate(operations, start=1):
            result = op["result"]
            if "name" not in result:
                message = _clean(result.get("message", "unknown error"))
                if "Initialization failed" in message or "initializ" in message.lower():
                    # httpstan's message ends with the start of a rejection it did not finish
                    message = re.sub(r"(\s*Rejecting initial value:)+\s*$", "", message)
                    message += " -- " + INIT_ADVICE
                raise ChainError(NAME, chain, message)
            resp = await client.get(f"/{result['name']}")
            if resp.status != 200:
                raise ChainError(NAME, chain, _clean(resp.json().get("message", "")))
            outputs.append(resp.content)
            await client.delete(f"/{result['name']}")
        return outputs

    # ----------------------------------------------------------- log density
    def log_density(
        self, program: str, data: Mapping[str, Any], params: Mapping[str, Any], jacobian: bool = True
    ) -> float:
        """Stan's log density at constrained ``params`` (unconstrained with httpstan, then evaluated)."""
        return float(self.log_density_many(program, data, [params], jacobian)[0])

    def log_density_many(
        self, program: str, data: Mapping[str, Any], params: list[Mapping[str, Any]], jacobian: bool = True
    ) -> np.ndarray:
        """Log density at many constrained points, in one server session."""
        return _run(self._log_density_async(program, _jsonable(data), params, jacobian))

    async def _log_density_async(self, program: str, data: dict, points: list[Mapping[str, Any]], jacobian: bool) -> np.ndarray:
        from stan.common import HttpstanClient

        out = []
        async with HttpstanClient() as client:
            await self._build(client, program)
            model = f"models/{program_hash_name(program)}"
            for point in points:
                resp = await client.post(f"/{model}/transform_inits", json={"data": data, "constrained_parameters": _jsonable(point)})
                if resp.status != 200:
                    raise EngineError(f"{NAME}: cannot unconstrain {dict(point)}: {_clean(resp.json().get('message', ''))}")
                upars = resp.json()["params_r_unconstrained"]
                resp = await client.post(
                    f"/{model}/log_prob",
                    json={"data": data, "unconstrained_parameters": upars, "adjust_transform": jacobian},
                )
                if resp.status != 200:
                    raise EngineError(f"{NAME}: log_prob failed: {_clean(resp.json().get('message', ''))}")
                out.append(resp.json()["log_prob"])
        return np.asarray(out, dtype=float)


# Stan version shipped inside each httpstan minor release.
_STAN_OF_HTTPSTAN = {"4.13": "2.35", "4.12": "2.33", "4.11": "2.33", "4.10": "2.32"}


def _is_built(source: str) -> bool:
    """Whether httpstan's cache already holds the compiled extension of ``source``."""
    import httpstan.cache
    import httpstan.models

    folder = httpstan.cache.model_directory(httpstan.models.calculate_model_name(source))
    return folder.is_dir() and any(folder.glob("stan_services_*.so"))


def log_compile_event(engine: str, program: str, key: str, seconds: float) -> None:
    """Append one line per real compilation to ``<cache>/compile-events.log``."""
    import os

    path = cache_root() / "compile-events.log"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(f"{engine} {program} {key} pid={os.getpid()} seconds={seconds:.1f}\n")


# The process whose httpstan chain pool this is (None: no engine call yet). A child
# made by fork holds a copy of its parent's pool: processes that are not its own,
# no manager thread, locks perhaps held at the fork. It must neither stop that copy
# (it would hang on the lock) nor sample with it (it would wait forever).
_POOL_OWNER: int | None = None


def _own_pool() -> None:
    """Make httpstan's chain pool this process's own; a copy inherited by fork is replaced.

    httpstan's own pool, made at its import, is replaced too while it has not
    started, so that every chain worker is one of :func:`_new_pool`'s.
    """
    import os

    import httpstan.services_stub as stub

    global _POOL_OWNER
    if _POOL_OWNER == os.getpid():
        return
    if _POOL_OWNER is not None or not getattr(stub.executor, "_processes", None):
        stub.executor = _new_pool(stub)
    _POOL_OWNER = os.getpid()
    _exit_cleanly_in_child_process()


def _new_pool(stub: Any) -> Any:
    """httpstan's chain pool (forked workers that ignore SIGINT) whose workers exit with this process."""
    import concurrent.futures
    import multiprocessing as mp
    import os

    return concurrent.futures.ProcessPoolExecutor(mp_context=mp.get_context("fork"), initializer=_init_chain_worker,
                                                  initargs=(stub.init_worker, os.getpid()))


def _init_chain_worker(init_worker: Any, parent: int) -> None:
    """In a chain worker: httpstan's initializer, and exit once ``parent`` is gone.

    A worker waits for work on a pipe that its siblings also hold open, so when the
    parent dies without shutting the pool down (SIGKILL, the OOM killer, a crashed
    kernel) nothing would ever end it.
    """
    init_worker()
    threading.Thread(target=_exit_without, args=(parent,), name="hierlin-exit-with-parent", daemon=True).start()


def _exit_without(parent: int, poll: float = 1.0) -> None:
    import os

    while os.getppid() == parent:
        time.sleep(poll)
    os._exit(1)


def _stop_workers() -> None:
    """Terminate httpstan's sampling processes (they ignore SIGINT) and renew its pool.

    Does nothing in a process whose pool is not its own (e.g. httpstan's own forked
    chain workers, should a signal handler ever run there).
    """
    import os

    if _POOL_OWNER != os.getpid():
        return
    import httpstan.services_stub as stub

    executor = stub.executor
    for process in list(getattr(executor, "_processes", {}).values()):
        if process.is_alive():
            process.kill()  # SIGKILL: the workers run C++ code
    for process in list(getattr(executor, "_processes", {}).values()):
        process.join(timeout=5)
    executor.shutdown(wait=False, cancel_futures=True)
    stub.executor = _new_pool(stub)


def _exit_cleanly_in_child_process() -> None:
    """In a multiprocessing child (pool or Dask worker), shut httpstan's chain pool down at exit.

    Such a child joins its own children when it exits, *before* the interpreter's
    atexit hooks would shut httpstan's chain pool down, so it would wait forever.
    A finalizer with a priority runs first and shuts that pool down. Registered
    when the process first uses its pool: a forked child may hold an engine made
    by its parent, so engine construction is not the moment.
    """
    import multiprocessing
    from multiprocessing.util import Finalize

    if multiprocessing.parent_process() is None:
        return

    def shutdown_httpstan() -> None:
        import os
        import sys

        stub = sys.modules.get("httpstan.services_stub")
        if stub is not None and _POOL_OWNER == os.getpid():  # never a pool copied from a parent
            stub.executor.shutdown(wait=True, cancel_futures=True)

    Finalize(None, shutdown_httpstan, exitpriority=100)


def program_hash_name(program: str) -> str:
    """httpstan's model id for one of our programs (its hash of the source)."""
    import httpstan.models

    return httpstan.models.calculate_model_name(program_source(program)).split("/")[1]


def _constrained_names(dims: Mapping[str, tuple[int, ...]]) -> list[str]:
    names = []
    for name, shape in dims.items():
        if not shape:
            names.append(name)
            continue
        for idx in np.ndindex(*reversed(shape)):
            names.append(name + "." + ".".join(str(i + 1) for i in reversed(idx)))
    return names


def _elapsed(outputs: list[bytes]) -> tuple[list[float], list[float]]:
    """Per-chain warmup and sampling seconds from Stan's 'Elapsed Time' messages.

    Stan writes them to several streams; the first of each kind per chain counts.
    """
    warm, samp = [], []
    for out in outputs:
        found: dict[str, float] = {}
        for match in _ELAPSED.finditer(out.decode("utf-8", "replace")):
            found.setdefault(match.group(2), float(match.group(1)))
        if "Warm-up" in found:
            warm.append(found["Warm-up"])
        if "Sampling" in found:
            samp.append(found["Sampling"])
    return warm, samp


def _adaptation(outputs: list[bytes]) -> dict[str, np.ndarray]:
    """Adapted step size and diagonal inverse metric per chain, from Stan's sample-writer messages.

    Stan writes "Adaptation terminated", "Step size = 0.07", "Diagonal elements of
    inverse mass matrix:", "0.12, 3.4" as messages of topic ``sample``.
    """
    import json

    steps, metrics = [], []
    for out in outputs:
        step, metric, expect_metric = None, None, False
        for line in out.decode("utf-8", "replace").splitlines():
            if '"topic":"sample"' not in line.replace(" ", "") or '"values":["' not in line.replace(" ", ""):
                continue
            try:
                values = json.loads(line)["values"]
            except (ValueError, KeyError):
                continue
            text = values[0] if values and isinstance(values[0], str) else ""
            if expect_metric:
                try:
                    metric = [float(v) for v in text.split(",")]
                except ValueError:
                    metric = None
                expect_metric = False
            elif text.startswith("Step size ="):
                step = float(text.split("=", 1)[1])
            elif text.startswith("Diagonal elements of inverse mass matrix"):
                expect_metric = True
        steps.append(step)
        metrics.append(metric)
    if any(s is None for s in steps) or any(m is None for m in metrics):
        return {}
    return {"step_size": np.asarray(steps, dtype=float), "inv_metric": np.asarray(metrics, dtype=float)}


def _jsonable(data: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, np.ndarray):
            out[key] = value.tolist()
        elif isinstance(value, np.generic):
            out[key] = value.item()
        else:
            out[key] = value
    return out


def _clean(message: str) -> str:
    text = str(message).split(", traceback:")[0]
    match = re.search(r"""(?:ValueError|RuntimeError)\(['"](.*)['"]\)""", text, re.S)
    if match:
        text = match.group(1).encode().decode("unicode_escape", "replace")
    return " ".join(text.split())[:2000]


_INTERRUPTED = threading.Event()


def _interrupt() -> None:
    _INTERRUPTED.set()
    _stop_workers()


async def _quiet_on_interrupt(coro: Any) -> Any:
    """Run ``coro`` with an exception handler that stays silent after an interrupt.

    Killing the sampling processes makes httpstan's pending callbacks fail
    while the loop shuts down; the user asked for the stop, so no tracebacks.
    """
    loop = asyncio.get_running_loop()

    def handler(loop: asyncio.AbstractEventLoop, context: dict) -> None:
        if not _INTERRUPTED.is_set():
            loop.default_exception_handler(context)

    loop.set_exception_handler(handler)
    return await coro


def _run(coro: Any) -> Any:
    """Run a coroutine, also from inside Jupyter's running event loop.

    Ctrl-C or SIGTERM terminates the sampling processes (and a running compiler)
    and propagates (see :func:`~hierlin_stan.utils.processes.stop_children_on_interrupt`).
    """
    _INTERRUPTED.clear()
    _own_pool()
    # also the compiler, run by httpstan from a thread; its thread pools live on, so no watching
    with stop_children_on_interrupt(_interrupt, watch_threads=False):
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(_quiet_on_interrupt(coro))
        import nest_asyncio

        nest_asyncio.apply()
        return asyncio.get_event_loop().run_until_complete(coro)
