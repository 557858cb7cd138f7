"""The single-person pipeline's fusion in child processes.

Why: in one Python process the ROS executor, the 2D step and the fusion take turns holding one
interpreter lock. On a small CPU at high frame rates the fusion thread then spends much of its
time waiting for the lock while cores stay idle (docs/experiments.md). A child process has its
own interpreter: the fusion gets a core of its own while the parent decodes, runs the 2D network
and talks to ROS. One child still computes one pose at a time, so `FusionPool` runs several that
take turns: each keeps the whole buffer and solves every n-th frame's windows.

The parent sends each frame's heatmaps (numpy) and gets back the outcomes of the windows the frame
completes (target stamp and pose, or None), in frame order; up to `max_in_flight` frames wait in
each pipe, so a child always has the next one, and a reply thread per child hands each answer on.
The children run the same `PosePipeline` code, so the poses and the buffer's behaviour are those
of the in-process fusion; the parent does the track bookkeeping (ids, the last pose for the next
crop) in frame order, as the in-process pipeline does, and mirrors the buffer's counters.

A child is started with `spawn` (no fork of a process that runs DDS and torch threads). It exits
when the parent's end of the pipe closes. If it dies or stops answering, the frames it was to
answer fail with `FusionProcessError` (only those it was to solve lose their poses) and the next
frame starts a fresh child (its buffer starts empty, as after a reset); the restarts are counted.
"""
from __future__ import annotations

import contextlib
import functools
import multiprocessing as mp
import signal
import sys
import threading
import types
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch

READY_TIMEOUT_S = 120.0        # a child's start: import torch, load the model (CUDA init included)
REPLY_TIMEOUT_S = 30.0         # one frame's fusion; far above any real one, so only a hung child hits it


class FusionProcessError(RuntimeError):
    """The child died, hung or could not start; the frame's poses are lost."""


@dataclass(frozen=True)
class FusionSpec:
    """What the child needs to build the same fusion as `build_pipeline` (pickled to it)."""
    model_config: str
    weights: str                       # a weights file, or "none" (untrained warps)
    num_cameras: int
    outlier_threshold: float | None
    pipeline: Any                      # pipeline.PipelineConfig (its device included)
    threads: int = 1                   # torch intra-op threads in the child (0 = torch's default)
    max_views: int | None = None       # ModelConfig.max_views


@dataclass
class BufferView:
    """What the parent reads of the child's buffer (diagnostics, flush timing), as of the last reply."""
    config: Any                        # buffer.BufferConfig
    pending: int = 0
    stats: Counter = field(default_factory=Counter)


@dataclass(frozen=True)
class Reply:
    outcomes: list                     # (target stamp, PoseResult or None) of the windows it solved
    pending: int
    stats: dict[str, int]


def _serve(conn, spec: FusionSpec) -> None:
    """The child's loop: (op, args) in, ("ok", Reply) or ("error", text) out, until EOF or 'close'."""
    from dense_warper_ros.allocator import keep_freed_memory
    from dense_warper_ros.pipeline import PosePipeline, load_model
    signal.signal(signal.SIGINT, signal.SIG_IGN)   # Ctrl-C reaches the parent, which closes the pipe
    keep_freed_memory()
    try:
        if spec.threads > 0:
            torch.set_num_threads(spec.threads)
        model, _ = load_model(spec.model_config, spec.weights, spec.pipeline.device, spec.num_cameras,
                              spec.outlier_threshold, spec.max_views)
        pipe = PosePipeline(model=model, backbone=None, config=spec.pipeline)
    except Exception as e:                       # noqa: BLE001 - reported to the parent, which raises it
        conn.send(("failed", f"{type(e).__name__}: {e}"))
        return
    conn.send(("ready", None))
    dev = torch.device(spec.pipeline.device)
    while True:
        try:
            op, args = conn.recv()
        except (EOFError, OSError):
            return                               # the parent is gone
        if op == "close":
            return
        try:
            outcomes = _handle(pipe, op, args, dev)
            conn.send(("ok", Reply(outcomes, pipe.buffer.pending, dict(pipe.buffer.stats))))
        except Exception as e:                   # noqa: BLE001 - one bad frame, not the end of the child
            conn.send(("error", f"{type(e).__name__}: {e}"))


def _handle(pipe, op: str, args: tuple, dev: torch.device) -> list:
    """One request on the child's PosePipeline -> the outcomes of the windows it solves. Every
    request ends with `solve`: whether this child computes the poses or only keeps its buffer."""
    from dense_warper_ros.pipeline import FrameData
    *args, solve = args
    if op == "push":
        camera, stamp, hm, affine, cam, frame_id, reset = args
        if reset:
            pipe.reset()
        data = FrameData(heatmaps=torch.from_numpy(hm).to(dev), affine=affine, camera=cam, frame_id=frame_id)
        return pipe.fuse_frame(camera, stamp, data, solve=solve)
    if op == "flush":
        return pipe.flush_outcomes(solve=solve)
    if op == "reset":
        pipe.reset()
        return []
    raise ValueError(f"unknown operation {op!r}")


Done = Callable[["Reply | Exception"], None]


@dataclass
class _Child:
    """One child process and what its reply thread knows about it."""
    proc: Any
    conn: Any
    ready: threading.Event = field(default_factory=threading.Event)   # set once it answered (or died)
    error: str | None = None                                          # why it could not start / ended


class FusionProcess:
    """The parent's handle on the child. Requests are answered in order by one reply thread, which
    calls each request's `done` with its Reply (or the exception). `submit` returns at once while
    fewer than `max_in_flight` requests wait (the child always has the next frame ready).
    Thread-safe; `FusionPool` is the caller's interface (one or several of these)."""

    def __init__(self, spec: FusionSpec, *, max_in_flight: int = 2):
        self.spec = spec
        self.max_in_flight = max_in_flight
        self.restarts = 0
        self._cv = threading.Condition()
        self._waiting: deque[tuple[Done, bool]] = deque()   # (done, counted) per request sent, in order
        self._counted = 0                        # requests in `_waiting` that count against max_in_flight
        self._child: _Child | None = None
        self._closed = False
        self._start()

    # --- the child --------------------------------------------------------------------------------
    def _start(self) -> None:
        ctx = mp.get_context("spawn")
        conn, theirs = ctx.Pipe()
        proc = ctx.Process(target=_serve, args=(theirs, self.spec), name="dense_warper_fusion", daemon=True)
        with _bare_main():
            proc.start()
        theirs.close()
        self._child = child = _Child(proc, conn)
        threading.Thread(target=self._replies, args=(child,), name="dense_warper_fusion_replies",
                         daemon=True).start()

    def wait_ready(self) -> None:
        """Block until the child has built its model; raises FusionProcessError if it could not."""
        child = self._child
        if child is None:
            raise FusionProcessError("the fusion process was closed")
        if not child.ready.wait(READY_TIMEOUT_S):
            child.proc.kill()
            raise FusionProcessError(f"the fusion process did not start within {READY_TIMEOUT_S:g} s")
        if child.error is not None:
            raise FusionProcessError(f"the fusion process could not start: {child.error}")

    def _replies(self, child: _Child) -> None:
        """The reply thread of one child: hand each answer to its request's `done`."""
        conn = child.conn
        try:
            kind, value = conn.recv()
            if kind != "ready":
                child.error = str(value)
                return
            child.ready.set()
            while True:
                if not conn.poll(REPLY_TIMEOUT_S):
                    with self._cv:
                        busy = bool(self._waiting) and child is self._child
                    if busy:
                        raise FusionProcessError(f"gave no answer within {REPLY_TIMEOUT_S:g} s")
                    continue
                kind, value = conn.recv()
                with self._cv:
                    done, counted = self._waiting.popleft()
                    self._counted -= counted
                    self._cv.notify_all()
                _call(done, RuntimeError(f"fusion process: {value}") if kind == "error" else value)
        except (EOFError, OSError, FusionProcessError) as e:
            if child.error is None:
                child.error = str(e) if isinstance(e, FusionProcessError) else \
                    f"ended (exit code {child.proc.exitcode})"
        finally:
            child.ready.set()
            self._orphan(child)

    def _orphan(self, child: _Child) -> None:
        """`child` is gone: fail its waiting requests; the next request starts a new child (counted)
        unless this handle is closed."""
        with self._cv:
            if child is not self._child:
                return                             # closed, or already replaced
            waiting, self._waiting, self._counted = [d for d, _ in self._waiting], deque(), 0
            self._child = None
            if not self._closed:
                self.restarts += 1
            self._cv.notify_all()
        error = FusionProcessError(f"the fusion process {child.error}")
        for done in waiting:
            _call(done, error)
        _end(child)

    # --- requests ---------------------------------------------------------------------------------
    def submit(self, op: str, args: tuple, done: Done, *, counted: bool = True) -> None:
        """Send one request; `done` gets its Reply or exception on the reply thread. A counted
        request waits while `max_in_flight` counted requests are unanswered; an uncounted one (a
        frame only stored, which the child answers in a tenth of a millisecond) is sent at once."""
        with self._cv:
            if self._closed:
                raise FusionProcessError("the fusion process was closed")
            if self._child is None:
                self._start()
            child = self._child
            if counted:
                self._cv.wait_for(lambda: self._counted < self.max_in_flight or self._child is not child)
            if self._child is not child:
                raise FusionProcessError("the fusion process ended while the request waited")
            self._waiting.append((done, counted))
            self._counted += counted
            try:
                child.conn.send((op, args))
            except OSError as e:
                self._waiting.pop()
                self._counted -= counted
                raise FusionProcessError(f"the fusion process cannot be reached: {e}") from e

    @staticmethod
    def frame_args(camera: int, stamp_ns: int, data, reset: bool = False) -> tuple:
        """A FrameData as a push's args: heatmaps as a numpy array (a torch tensor would travel
        through shared-memory files)."""
        hm = np.ascontiguousarray(data.heatmaps.detach().cpu().numpy())
        return camera, stamp_ns, hm, data.affine, data.camera, data.frame_id, reset

    def close(self) -> None:
        """Ask the child to exit, then make sure it has."""
        with self._cv:                             # whoever takes the child under the lock ends it
            self._closed = True
            child, self._child = self._child, None
            self._cv.notify_all()
            if child is not None:
                try:
                    child.conn.send(("close", ()))
                except OSError:
                    pass
        if child is not None:
            child.proc.join(timeout=2.0)
            _end(child)

    @property
    def pid(self) -> int | None:
        child = self._child
        return None if child is None else child.proc.pid


@dataclass
class _Request:
    """One request to every process of a pool: whose answer it is and how many are still out."""
    done: Done
    solver: int
    remaining: int
    value: Any = None


class FusionPool:
    """`processes` fusion processes sharing the frames, so that that many poses are computed at once
    on as many cores. Every request goes to every process (each keeps the whole buffer: a window
    needs every camera's frames) and one of them, in turn, solves the windows it completes; the
    others only store the frame. Each request's `done` gets its solver's Reply (or exception), in
    request order, whichever process finishes first; the track bookkeeping is the caller's, which
    needs that order. A process that dies costs its own requests: as solver, their poses are lost;
    otherwise nothing, and its restart refills its buffer within one camera cycle. Same interface
    as `FusionProcess`; thread-safe."""

    def __init__(self, spec: FusionSpec, *, processes: int = 1):
        if processes < 1:
            raise ValueError(f"processes must be >= 1, got {processes}")
        # Alone, a process keeps two requests in flight (the next frame is ready when a pose ends).
        # Sharing, each has one frame to solve in flight, and the frames it only stores are sent
        # without waiting: the sender must not wait for a process busy with its own pose to take a
        # frame it merely keeps, while its next pose to solve already waits in the other's turn.
        in_flight = 2 if processes == 1 else 1
        self.procs = [FusionProcess(spec, max_in_flight=in_flight) for _ in range(processes)]
        self._lock = threading.Lock()             # the requests' table
        self._send = threading.Lock()             # one sender at a time: every process sees one order
        self._deliver = threading.Lock()          # one deliverer at a time: answers leave in order
        self._requests: dict[int, _Request] = {}
        self._sent = self._delivered = 0
        self._closed = False

    def wait_ready(self) -> None:
        for proc in self.procs:
            proc.wait_ready()

    def submit(self, op: str, args: tuple, done: Done) -> None:
        """Send one request to every process; `done` gets the solver's answer, in request order."""
        with self._send:
            if self._closed:
                raise FusionProcessError("the fusion process was closed")
            seq, n = self._sent, len(self.procs)
            solver = seq % n
            with self._lock:
                self._requests[seq] = _Request(done, solver, n)
                self._sent += 1
            for w, proc in enumerate(self.procs):
                try:
                    proc.submit(op, (*args, w == solver), functools.partial(self._answer, seq, w),
                                counted=w == solver)
                except FusionProcessError as e:
                    self._answer(seq, w, e)

    def _answer(self, seq: int, w: int, value) -> None:
        """Process w answered request seq; deliver every request that is complete, in order."""
        with self._lock:
            req = self._requests[seq]
            if w == req.solver:
                req.value = value
            req.remaining -= 1
        with self._deliver:
            while True:
                with self._lock:
                    req = self._requests.get(self._delivered)
                    if req is None or req.remaining:
                        return
                    del self._requests[self._delivered]
                    self._delivered += 1
                _call(req.done, req.value)

    def call(self, op: str, *args) -> Reply:
        """Send one request and wait for its Reply (errors raise)."""
        got: list = []
        event = threading.Event()
        self.submit(op, args, lambda r: (got.append(r), event.set()))
        event.wait()
        if isinstance(got[0], Exception):
            raise got[0]
        return got[0]

    def close(self) -> None:
        """End every process; a sender waiting for one gets FusionProcessError answers."""
        self._closed = True
        for proc in self.procs:
            proc.close()

    @property
    def pids(self) -> list[int | None]:
        return [proc.pid for proc in self.procs]

    @property
    def restarts(self) -> int:
        return sum(proc.restarts for proc in self.procs)

    def describe(self) -> str:
        """Where the fusion runs, for /diagnostics: 'N child process(es) (pids a, b; restarts K)'."""
        n = len(self.procs)
        pids = ", ".join(str(p) for p in self.pids)
        return f"{n} child process{'es' if n > 1 else ''} (pid{'s' if n > 1 else ''} {pids}; restarts {self.restarts})"


@contextlib.contextmanager
def _bare_main():
    """`spawn` runs the parent's main module again in the child (the node's: rclpy and DDS, memory
    and start-up time for nothing), unless that module names no file and no spec.
    While the child is started, `__main__` is an empty module: the child imports only what
    `_serve` does."""
    main = sys.modules["__main__"]
    sys.modules["__main__"] = types.ModuleType("__main__")
    try:
        yield
    finally:
        sys.modules["__main__"] = main


def _call(done: Done, value) -> None:
    """A request's callback must not end the reply thread."""
    try:
        done(value)
    except Exception:                             # noqa: BLE001 - the caller's bug, reported by the caller
        pass


def _end(child: _Child) -> None:
    if child.proc.is_alive():
        child.proc.kill()
        child.proc.join(timeout=5.0)
    child.conn.close()
