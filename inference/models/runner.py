"""Running one model on one study in isolation (issue 16).

A model that raises, runs out of memory or exceeds ``inference.model_time_limit_s``
must not take the study down: its failure becomes a ``ModelRun`` status in the
result and the study completes with the other models. Two runners:

- ``ThreadRunner`` runs the model in the node's process, in a worker thread. A
  raise or a ``MemoryError`` is caught; past the time limit the run is reported
  ``timeout``, but Python cannot stop a thread, so the computation finishes in
  the background. For light, in-house code (``chest_quant``).
- ``ProcessRunner`` runs the model in its own worker process (``spawn``; loaded
  once, at start-up). Past the time limit the worker is killed and restarted on
  the next study; on CPU its data segment is capped at ``model_memory_mb``
  (``RLIMIT_DATA``: allocations beyond it fail with ``MemoryError``), on CUDA
  its share of the GPU's memory is. A worker the kernel kills (OOM killer) is
  reported ``out_of_memory``. For learned models.

An ``InferenceError`` other than ``ModelError`` means the *input* is bad (e.g.
not a chest CT): it is re-raised, so the pipeline reports the study's failure
as before.
"""

from __future__ import annotations

import abc
import contextvars
import importlib
import logging
import multiprocessing
import multiprocessing.connection
import signal
import threading
import time
import traceback
from typing import TYPE_CHECKING, Any

from inference.errors import InferenceError, ModelError
from inference.types import ModelOutput, ModelRun, ModelStatus, RunStatus
from series_selector.types import HUVolume

if TYPE_CHECKING:
    from ctnode.settings import Settings
    from inference.models.base import Model

logger = logging.getLogger(__name__)

_DETAIL_CHARS = 300
_OOM_TEXT = ("out of memory", "can't allocate memory", "cannot allocate memory")


def select_device(setting: str) -> str:
    """``auto`` → ``cuda`` when torch sees a GPU, else ``cpu``; anything else as given."""
    if setting != "auto":
        return setting
    try:
        import torch
    except ImportError:
        return "cpu"
    return "cuda" if torch.cuda.is_available() else "cpu"


def load_model_class(spec: str) -> type[Model]:
    """``"package.module:Class"`` → the class (the registry's notation)."""
    module_name, _, class_name = spec.partition(":")
    cls: type[Model] = getattr(importlib.import_module(module_name), class_name)
    return cls


def is_out_of_memory(exc: BaseException) -> bool:
    """MemoryError, torch's OutOfMemoryError, or an allocator's 'can't allocate' error."""
    if isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryError":
        return True
    return isinstance(exc, RuntimeError) and any(t in str(exc).lower() for t in _OOM_TEXT)


def _short(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:_DETAIL_CHARS]


def _failed_run(name: str, exc: BaseException, seconds: float) -> ModelRun:
    """A model fault as a run status; input errors are re-raised (see module doc)."""
    if isinstance(exc, InferenceError) and not isinstance(exc, ModelError):
        raise exc
    status = RunStatus.OUT_OF_MEMORY if is_out_of_memory(exc) else RunStatus.ERROR
    logger.error("model %s failed (%s) after %.1f s", name, status.value, seconds,
                 exc_info=(type(exc), exc, exc.__traceback__))
    return ModelRun(name, status, seconds, _short(exc))


class ModelRunner(abc.ABC):
    """One model behind a fault boundary: ``run`` never raises for the model's own faults."""

    @property
    @abc.abstractmethod
    def status(self) -> ModelStatus:
        """The model's status (name, version, weights installed, findings)."""

    @property
    @abc.abstractmethod
    def feature_version(self) -> str:
        """The model's ``feature_version`` (cache key of ``ctnode features``)."""

    @abc.abstractmethod
    def run(self, volume: HUVolume) -> tuple[ModelOutput | None, ModelRun]:
        """The output (None when the run failed) and how the run ended."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release the worker (process or model)."""


class ThreadRunner(ModelRunner):
    """Runs the model in this process, in a thread that the time limit waits for."""

    def __init__(self, model: Model, time_limit_s: float) -> None:
        self.model = model
        self.time_limit_s = time_limit_s

    @property
    def status(self) -> ModelStatus:
        return self.model.status

    @property
    def feature_version(self) -> str:
        return self.model.feature_version

    def run(self, volume: HUVolume) -> tuple[ModelOutput | None, ModelRun]:
        name = self.status.name
        box: dict[str, Any] = {}

        def target() -> None:
            try:
                box["out"] = self.model.predict(volume)
            except BaseException as exc:  # noqa: BLE001 - reported as the run's status
                box["exc"] = exc

        ctx = contextvars.copy_context()  # keeps request/job IDs in the model's log lines
        thread = threading.Thread(target=ctx.run, args=(target,), daemon=True,
                                  name=f"model-{name}")
        t0 = time.perf_counter()
        thread.start()
        thread.join(self.time_limit_s)
        seconds = time.perf_counter() - t0
        if thread.is_alive():
            logger.warning("model %s exceeded its time limit of %.0f s; it runs in this "
                           "process and finishes in the background", name, self.time_limit_s)
            return None, ModelRun(
                name, RunStatus.TIMEOUT, seconds,
                f"exceeded the time limit of {self.time_limit_s:g} s (in-process: it could not "
                "be stopped; inference.model_isolation=process kills it)")
        if "exc" in box:
            return None, _failed_run(name, box["exc"], seconds)
        return box["out"], ModelRun(name, RunStatus.OK, seconds)

    def close(self) -> None:
        self.model.close()


def _apply_memory_cap(memory_mb: float, device: str) -> str:
    """Cap this (worker) process's memory; returns what was capped, for the log."""
    if device.startswith("cuda"):
        import torch

        index = int(device.partition(":")[2] or 0)
        total = torch.cuda.get_device_properties(index).total_memory
        fraction = min(1.0, memory_mb * 2**20 / total)
        torch.cuda.set_per_process_memory_fraction(fraction, index)
        return f"GPU {index}: {fraction:.0%} of {total / 2**30:.0f} GiB"
    import resource

    limit = int(memory_mb * 2**20)
    resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))
    return f"RLIMIT_DATA {memory_mb:.0f} MB"


def _worker_main(spec: str, settings: Settings, conn: multiprocessing.connection.Connection,
                 memory_mb: float, device: str) -> None:
    """The worker process: load the model once, then answer ("predict", volume) messages."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the node shuts its workers down
    try:
        from ctnode.logging_setup import configure_logging

        configure_logging(settings)
        capped = _apply_memory_cap(memory_mb, device)
        model = load_model_class(spec).from_settings(settings)
        logger.info("model worker %s ready (%s)", model.status.name, capped)
    except BaseException as exc:  # noqa: BLE001 - the parent reports it
        conn.send(("load_error", _short(exc), traceback.format_exc()))
        return
    conn.send(("ready", model.status, model.feature_version))
    while True:
        try:
            kind, volume = conn.recv()
        except (EOFError, OSError):
            return
        if kind == "close":
            return
        try:
            out = model.predict(volume)
            conn.send(("ok", out))
        except InferenceError as exc:
            conn.send(("inference_error", type(exc).__module__, type(exc).__qualname__,
                       str(exc), exc.code))
        except BaseException as exc:  # noqa: BLE001 - reported as the run's status
            answer = ("oom" if is_out_of_memory(exc) else "error", _short(exc),
                      traceback.format_exc())
            del exc  # free what the failed call held before answering
            conn.send(answer)


def _rebuild_inference_error(module: str, qualname: str, message: str, code: str
                             ) -> InferenceError:
    try:
        cls = getattr(importlib.import_module(module), qualname)
        if isinstance(cls, type) and issubclass(cls, InferenceError):
            return cls(message, code=code)
    except (ImportError, AttributeError):
        pass
    return InferenceError(message, code=code)


class ProcessRunner(ModelRunner):
    """Runs the model in its own worker process (see module doc)."""

    def __init__(self, spec: str, settings: Settings, *, time_limit_s: float,
                 memory_mb: float, device: str) -> None:
        self.spec = spec
        self.settings = settings
        self.time_limit_s = time_limit_s
        self.memory_mb = memory_mb
        self.device = device
        self._ctx = multiprocessing.get_context("spawn")
        self._lock = threading.Lock()
        self._proc: Any = None
        self._conn: multiprocessing.connection.Connection | None = None
        self._status: ModelStatus | None = None
        self._feature_version = ""
        self._start()

    @property
    def status(self) -> ModelStatus:
        assert self._status is not None  # set by _start, which __init__ ran
        return self._status

    @property
    def feature_version(self) -> str:
        return self._feature_version

    @property
    def pid(self) -> int | None:
        """The worker's process ID (None while none runs)."""
        return None if self._proc is None else int(self._proc.pid)

    def _start(self) -> None:
        parent, child = self._ctx.Pipe()
        proc = self._ctx.Process(
            target=_worker_main, args=(self.spec, self.settings, child, self.memory_mb,
                                       self.device),
            daemon=True, name=f"model-{self.spec.rpartition(':')[2]}")
        proc.start()
        child.close()
        self._proc, self._conn = proc, parent
        # Loading weights is not the study's time; a generous bound only catches a hang.
        if not parent.poll(max(self.time_limit_s, 300.0)):
            self._kill()
            raise ModelError(f"model {self.spec} did not load within "
                             f"{max(self.time_limit_s, 300.0):g} s")
        try:
            msg = parent.recv()
        except EOFError:
            code = self._kill()
            raise ModelError(f"model {self.spec} worker exited while loading "
                             f"(exit code {code})") from None
        if msg[0] != "ready":
            self._kill()
            logger.error("model %s failed to load:\n%s", self.spec, msg[2])
            raise ModelError(f"model {self.spec} failed to load: {msg[1]}")
        self._status, self._feature_version = msg[1], msg[2]

    def _kill(self) -> int | None:
        """Stop the worker now; returns its exit code."""
        proc, conn = self._proc, self._conn
        self._proc = self._conn = None
        if conn is not None:
            conn.close()
        if proc is None:
            return None
        if proc.is_alive():
            proc.kill()
        proc.join(10)
        code: int | None = proc.exitcode
        return code

    def run(self, volume: HUVolume) -> tuple[ModelOutput | None, ModelRun]:
        name = self.status.name
        with self._lock:
            t0 = time.perf_counter()
            try:
                if self._proc is None or not self._proc.is_alive():
                    self._kill()
                    self._start()
                assert self._conn is not None
                self._conn.send(("predict", volume))
                ready = self._conn.poll(self.time_limit_s)
            except ModelError as exc:
                return None, _failed_run(name, exc, time.perf_counter() - t0)
            except (BrokenPipeError, OSError, EOFError):
                ready = True  # the worker died: recv below tells how
            seconds = time.perf_counter() - t0
            if not ready:
                self._kill()
                logger.warning("model %s exceeded its time limit of %.0f s: worker killed",
                               name, self.time_limit_s)
                return None, ModelRun(name, RunStatus.TIMEOUT, seconds,
                                      f"exceeded the time limit of {self.time_limit_s:g} s; "
                                      "its worker was stopped")
            try:
                assert self._conn is not None
                msg = self._conn.recv()
            except (EOFError, OSError):
                code = self._kill()
                status = (RunStatus.OUT_OF_MEMORY if code == -signal.SIGKILL
                          else RunStatus.ERROR)
                logger.error("model %s worker died (exit code %s)", name, code)
                return None, ModelRun(name, status, time.perf_counter() - t0,
                                      f"its worker process died (exit code {code}"
                                      + ("; killed, most likely for memory)"
                                         if status is RunStatus.OUT_OF_MEMORY else ")"))
        seconds = time.perf_counter() - t0
        kind = msg[0]
        if kind == "ok":
            return msg[1], ModelRun(name, RunStatus.OK, seconds)
        if kind == "inference_error":
            raise _rebuild_inference_error(*msg[1:])
        status = RunStatus.OUT_OF_MEMORY if kind == "oom" else RunStatus.ERROR
        logger.error("model %s failed (%s) after %.1f s:\n%s", name, status.value, seconds,
                     msg[2])
        return None, ModelRun(name, status, seconds, msg[1])

    def close(self) -> None:
        with self._lock:
            if self._conn is not None and self._proc is not None and self._proc.is_alive():
                try:
                    self._conn.send(("close", None))
                    self._proc.join(5)
                except (BrokenPipeError, OSError):
                    pass
            self._kill()


def make_runner(spec: str, model_cls: type[Model], settings: Settings) -> ModelRunner:
    """The runner that ``inference.model_isolation`` asks for (see module doc)."""
    inf = settings.inference
    mode = inf.model_isolation
    if mode == "auto":
        mode = model_cls.isolation
    if mode == "process" and not model_cls.weights_present(settings):
        mode = "thread"  # issue 17: it never runs (not installed), so no worker process
    if mode == "process":
        return ProcessRunner(spec, settings, time_limit_s=inf.model_time_limit_s,
                             memory_mb=inf.model_memory_mb,
                             device=select_device(inf.model_device))
    return ThreadRunner(model_cls.from_settings(settings), inf.model_time_limit_s)
