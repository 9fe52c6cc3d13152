"""The embedded default: a private Redis and local worker processes for ``taxview nightly``.

With no broker configured, the nightly run starts a real ``redis-server`` on a free local port (a
temporary directory, no persistence needed: the book in and the reports out are the durable truth)
or, when no ``redis-server`` is installed, a fakeredis TCP server with ``TCP_NODELAY`` on its
sockets.  Workers are ordinary ``celery -A worker.app worker`` processes pointed at it — the same
producer, tasks, store and aggregator as a deployed fleet, never eager mode.  Everything is torn
down on exit, Ctrl-C included.  The reliability tests use the same classes.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

import redis

from shared.config import Settings
from shared.errors import TaxviewError

#: Environment pinning BLAS/OpenMP to one thread per pool process.
ONE_THREAD_ENV = {
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "VECLIB_MAXIMUM_THREADS": "1",
    "NUMEXPR_NUM_THREADS": "1",
}


class EmbeddedError(TaxviewError):
    """A local server or worker could not be started."""


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_for_redis(url: str, timeout_s: float = 10.0) -> None:
    """Block until the Redis at ``url`` answers PING.

    Raises:
        EmbeddedError: it did not within ``timeout_s``.
    """
    deadline = time.monotonic() + timeout_s
    client = redis.Redis.from_url(url, socket_connect_timeout=0.5, socket_timeout=1)
    while True:
        try:
            if client.ping():
                return
        except redis.exceptions.RedisError:
            pass
        if time.monotonic() > deadline:
            raise EmbeddedError(f"Redis at {url} did not answer within {timeout_s:.0f}s")
        time.sleep(0.05)


#: ``prctl`` option: the signal a child gets when the thread that started it ends (Linux).
_PR_SET_PDEATHSIG = 1


def die_with_parent(sig: signal.Signals = signal.SIGTERM) -> Callable[[], None] | None:
    """A ``preexec_fn`` that makes a child process get ``sig`` when the process (thread) that
    started it dies, on Linux (``prctl(PR_SET_PDEATHSIG)``); ``None`` elsewhere.

    An embedded night killed with SIGKILL (or by the out-of-memory killer) left its private
    ``redis-server`` and Celery worker running for good, reparented to PID 1 (fleet fault
    audit).  A worker gets SIGKILL: its broker (the private Redis) dies with the night, so there
    is nothing to shut down gracefully — with SIGTERM its warm shutdown waited for running tasks
    that retried that Redis, orphaned for 30–47 s (embedded audit), and with SIGQUIT its cold
    shutdown hung on the heartbeat's retries, orphaned for good (review).  billiard gives its
    pool processes SIGKILL when it dies.  The libc function is looked up here, in the parent;
    the child only calls it.
    """
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()

    def set_death_signal() -> None:
        prctl(_PR_SET_PDEATHSIG, int(sig))
        if os.getppid() != parent:  # the parent died before the call: go now
            os.kill(os.getpid(), sig)

    return set_death_signal


#: The fakeredis server drops a client whose socket takes nothing for this long (seconds).
SOCKET_STALL_S = 60.0


class _SocketWriter:
    """Writes a whole reply to a non-blocking socket, waiting while its buffer is full."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    def write(self, data: bytes) -> int:
        view = memoryview(data)
        stalled = 0.0
        while view:
            try:
                view = view[self.sock.send(view) :]
                stalled = 0.0
            except BlockingIOError:
                _, ready, _ = select.select([], [self.sock], [], 1.0)
                stalled = 0.0 if ready else stalled + 1.0
                if stalled >= SOCKET_STALL_S:  # a client that stopped reading is dropped
                    raise BrokenPipeError("the client read nothing for a minute") from None
        return len(data)

    def flush(self) -> None:
        """Nothing is buffered."""


class RedisServer:
    """A private ``redis-server`` process (or fakeredis TCP server when none is installed).

    Args:
        port: port to listen on (a free one by default).
        directory: data directory (a temporary one by default).
        appendonly: AOF persistence (the reliability tests restart a killed server from it).
        fsync_always: ``appendfsync always`` (no acknowledged write lost on SIGKILL).
        fake: use the fakeredis TCP server even if ``redis-server`` is installed.
    """

    def __init__(
        self,
        *,
        port: int | None = None,
        directory: Path | None = None,
        appendonly: bool = False,
        fsync_always: bool = False,
        fake: bool = False,
    ) -> None:
        self.port = port or free_port()
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        if directory is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="taxview-redis-")
            directory = Path(self._tmp.name)
        self.directory = directory
        self.appendonly = appendonly
        self.fsync_always = fsync_always
        self.binary = None if fake else shutil.which("redis-server")
        self.proc: subprocess.Popen[bytes] | None = None
        self._fake: Any = None
        self._fake_thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:port``."""
        return f"redis://127.0.0.1:{self.port}"

    @property
    def kind(self) -> str:
        """``redis-server`` or ``fakeredis``."""
        return "redis-server" if self.binary else "fakeredis"

    def start(self) -> RedisServer:
        """Start (or restart) the server and wait until it answers."""
        if self.binary:
            args = [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.directory),
                "--save",
                "",
                "--appendonly",
                "yes" if self.appendonly else "no",
                "--maxmemory-policy",
                "noeviction",
                "--protected-mode",
                "yes",
                "--loglevel",
                "warning",
            ]
            if self.fsync_always:
                args += ["--appendfsync", "always"]
            self.proc = subprocess.Popen(
                args,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                preexec_fn=die_with_parent(),  # noqa: PLW1509 (one C call, no Python locks)
                # Its own session: a signal to the night's process group (Ctrl-C, `timeout`,
                # systemd) reaches the night alone, which stops the workers before the server
                # (review: the server died first and the workers' warm shutdown retried it for
                # the 10 s of their stop timeout).
                start_new_session=True,
            )
        else:
            self._start_fake()
        wait_for_redis(self.url)
        return self

    def _start_fake(self) -> None:
        try:  # kombu's Redis transport releases its restore mutex with a Lua script
            import lupa  # noqa: F401
        except ImportError as exc:
            raise EmbeddedError(
                "no redis-server on PATH and fakeredis cannot run Lua: install Redis, or "
                "`pip install 'fakeredis[lua]'`"
            ) from exc
        from fakeredis import TcpFakeServer
        from fakeredis._clients._tcp_server import TCPFakeRequestHandler

        class _Handler(TCPFakeRequestHandler):
            """fakeredis makes each connection non-blocking and writes replies with
            ``sendall``, which gives up (EAGAIN) once the socket's send buffer is full: every
            reply larger than that was dropped with its connection (embedded audit: a night
            of 400 accounts solved, then its results, one 8 MB HGETALL, could not be read)."""

            def setup(self) -> None:
                super().setup()
                self.writer.writer = _SocketWriter(self.connection)  # type: ignore[assignment]

        class _NoDelayServer(TcpFakeServer):
            """Nagle's algorithm on small request/reply traffic caps a fleet at ~11 tasks/s."""

            def get_request(self) -> tuple[socket.socket, Any]:
                conn, addr = super().get_request()
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                return conn, addr

        self._fake = _NoDelayServer(("127.0.0.1", self.port), server_type="redis")
        self._fake.RequestHandlerClass = _Handler
        self._fake.daemon_threads = True  # connection threads never block the shutdown
        self._fake.block_on_close = False
        self._fake_thread = threading.Thread(target=self._fake.serve_forever, daemon=True)
        self._fake_thread.start()

    def exited(self) -> str | None:
        """What happened to a started server that no longer runs (``None`` while it runs)."""
        if self.proc is not None and self.proc.poll() is not None:
            return f"redis-server exited (code {self.proc.returncode})"
        if self._fake_thread is not None and not self._fake_thread.is_alive():
            return "fakeredis server stopped"
        return None

    def kill(self) -> None:
        """SIGKILL the server (reliability tests); :meth:`start` brings it back from the AOF."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        """Stop the server and remove its temporary directory."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        if self._fake is not None:
            self._fake.shutdown()
            self._fake.server_close()
            self._fake = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class WorkerProcess:
    """One ``celery -A worker.app worker`` process (prefork pool) with a given environment.

    Args:
        settings: what the worker connects to (passed as ``TAXVIEW_*`` variables).
        concurrency: pool processes.
        name: node name (``-n``), unique per host.
        extra_env: more environment (tests).
        log_path: where the worker's output goes (discarded by default).
        extra_args: more ``celery worker`` arguments (e.g. ``--include`` in tests).
    """

    def __init__(
        self,
        settings: Settings,
        *,
        concurrency: int,
        name: str = "taxview",
        extra_env: Mapping[str, str] | None = None,
        log_path: Path | None = None,
        extra_args: list[str] | None = None,
    ) -> None:
        self.settings = settings
        self.extra_args = list(extra_args or [])
        self.concurrency = concurrency
        self.name = name
        self.extra_env = dict(extra_env or {})
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: Any = None
        self._kids: list[int] = []  # pool processes seen when its stop was asked

    def command(self) -> list[str]:
        """The command line (the same one compose.yaml runs)."""
        return [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "worker.app",
            "worker",
            "--pool",
            "prefork",
            "-c",
            str(self.concurrency),
            "-Q",
            self.settings.queue,
            "-n",
            f"{self.name}@%h",
            "--without-gossip",
            "--without-mingle",
            "--loglevel",
            "INFO" if self.log_path else "WARNING",
            *self.extra_args,
        ]

    def env(self) -> dict[str, str]:
        """The worker's environment: ours, the settings, one BLAS thread."""
        env = {**os.environ, **ONE_THREAD_ENV, **self.settings.to_env(), **self.extra_env}
        env.setdefault("PYTHONUNBUFFERED", "1")
        return env

    def start(self) -> WorkerProcess:
        """Start the process (tasks queue up until its pool is ready)."""
        out: Any = subprocess.DEVNULL
        if self.log_path is not None:
            self._log = self.log_path.open("ab")
            out = self._log
        self.proc = subprocess.Popen(
            self.command(),
            env=self.env(),
            stdout=out,
            stderr=subprocess.STDOUT,
            preexec_fn=die_with_parent(signal.SIGKILL),  # noqa: PLW1509 (one C call, no locks)
            start_new_session=True,  # the night tears it down itself (RedisServer.start)
        )
        return self

    @property
    def pid(self) -> int:
        """The main worker process id."""
        if self.proc is None:
            raise EmbeddedError("worker not started")
        return self.proc.pid

    def children(self) -> list[int]:
        """Pids of the pool processes (from /proc)."""
        kids: list[int] = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            with contextlib.suppress(OSError):
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                if int(fields[1]) == self.pid:
                    kids.append(int(entry.name))
        return sorted(kids)

    def kill(self) -> None:
        """SIGKILL the whole worker (main process and pool)."""
        if self.proc is None or self.proc.poll() is not None:
            return
        kids = self.children()
        self.proc.kill()
        for pid in kids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def signal_stop(self) -> None:
        """Ask for a warm shutdown (SIGTERM) without waiting; :meth:`stop` waits."""
        if self.proc is not None and self.proc.poll() is None:
            self._kids = self.children()
            self.proc.terminate()

    def stop(self, timeout_s: float = 20.0) -> None:
        """Warm shutdown (SIGTERM), then SIGKILL if it lingers."""
        if self.proc is not None and self.proc.poll() is None:
            kids = sorted({*self.children(), *self._kids})
            self.proc.terminate()
            try:
                self.proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.kill()
            for pid in kids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        if self._log is not None:
            self._log.close()
            self._log = None


#: A local worker that exits mid-night (SIGKILLed, out of memory) is started again this many
#: times per worker slot before the night is given up.
MAX_WORKER_RESTARTS = 3

#: Solving processes an embedded fleet may run per CPU: each solve is single-threaded, so more
#: only queue for the cores, and every process holds the night's market.
MAX_PROCESSES_PER_CPU = 8
#: A solving process's resident memory on a 500-name market (``bench solve``: ~240 MB at its
#: peak), for the check of the machine's available memory.
PROCESS_MB = 250


def check_fleet_size(workers: int, concurrency: int, *, flag: str = "--workers") -> None:
    """Refuse an embedded fleet this machine cannot hold before any process starts (contract
    audit, 2026-12-07: ``--workers 100`` started 300 processes on two cores and the kernel's
    OOM killer took them down, orphaned workers left behind).

    Raises:
        InputError: more than :data:`MAX_PROCESSES_PER_CPU` solving processes per CPU, or more
            than the available memory holds at :data:`PROCESS_MB` each (main process included).
    """
    from shared.errors import InputError

    cpus = os.cpu_count() or 1
    solving = workers * concurrency
    limit = MAX_PROCESSES_PER_CPU * cpus
    if solving > limit:
        raise InputError(
            f"{workers} worker(s) × {concurrency} processes = {solving} solving processes on "
            f"{cpus} CPU(s): at most {limit} (a solve uses one core; more only wait for the "
            "cores and hold memory)",
            field=flag,
        )
    available = _available_mb()
    need = workers * (concurrency + 1) * PROCESS_MB
    if available is not None and need > available:
        raise InputError(
            f"{workers} worker(s) × {concurrency} processes need about {need:,} MB "
            f"({PROCESS_MB} MB each, main processes included) and {available:,} MB is "
            "available: run fewer",
            field=flag,
        )


def _available_mb() -> int | None:
    """``MemAvailable`` of ``/proc/meminfo`` in MB (``None`` where it cannot be read)."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) // 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


class EmbeddedFleet:
    """A private Redis (broker db 0, results db 1) plus ``workers`` local worker processes.

    The fleet supervises its workers: :meth:`check` (called by the producer's loop at every
    poll) starts a worker that exited again, up to :data:`MAX_WORKER_RESTARTS` times per slot,
    as a process manager would for a deployed fleet.  What the dead worker held comes back
    through the broker (the unacked restore after ``visibility_timeout``) or the producer's
    stall re-send, so a killed worker costs time, not accounts.

    Args:
        base: settings to start from (limits, retries); the URLs are replaced.
        workers: worker processes.
        concurrency: pool processes per worker.
        log_dir: where worker logs go (discarded when ``None``).
        server: ``auto`` (``redis-server`` if installed, else fakeredis), ``redis-server`` or
            ``fakeredis``.
        worker_args: extra ``celery worker`` arguments (e.g. ``--include MODULE``).
        worker_env: extra environment of the workers.
        notify: told (one line) when a worker is started again; default: standard error.
    """

    def __init__(
        self,
        base: Settings,
        *,
        workers: int = 1,
        concurrency: int = 2,
        log_dir: Path | None = None,
        server: str = "auto",
        worker_args: list[str] | None = None,
        worker_env: Mapping[str, str] | None = None,
        notify: Callable[[str], None] | None = None,
    ) -> None:
        self.base = base
        self.n_workers = workers
        self.concurrency = concurrency
        self.log_dir = log_dir
        self.redis = RedisServer(fake=server == "fakeredis")
        if server == "redis-server" and self.redis.binary is None:
            raise EmbeddedError(
                "no redis-server on PATH: install Redis or use --embedded-server fakeredis"
            )
        self.workers: list[WorkerProcess] = []
        self.settings = base
        self.worker_args = list(worker_args or [])
        self.worker_env = dict(worker_env or {})
        self.notify = notify or (lambda line: print(line, file=sys.stderr, flush=True))
        #: Restarts so far, per worker slot.
        self.restarts: list[int] = []
        self.max_restarts = MAX_WORKER_RESTARTS

    def _worker(self, i: int) -> WorkerProcess:
        log = self.log_dir / f"worker{i}.log" if self.log_dir else None
        return WorkerProcess(
            self.settings,
            concurrency=self.concurrency,
            name=f"w{i}",
            log_path=log,
            extra_args=self.worker_args,
            extra_env=self.worker_env,
        ).start()

    def __enter__(self) -> EmbeddedFleet:
        self.redis.start()
        self.settings = self.base.with_urls(
            broker_url=f"{self.redis.url}/0", redis_url=f"{self.redis.url}/1"
        )
        try:
            for i in range(self.n_workers):
                self.workers.append(self._worker(i))
                self.restarts.append(0)
        except BaseException:
            self.close()
            raise
        return self

    def check(self) -> None:
        """Start again a worker that exited (killed, out of memory), up to
        :attr:`max_restarts` times per slot; raise when the fleet can no longer finish a night:
        its server exited, or every worker did with no restart left — nothing would ever come
        back, so waiting is pointless.

        Raises:
            EmbeddedError: naming what exited, its exit code and the worker log.
        """
        gone = self.redis.exited()
        if gone:
            raise EmbeddedError(
                f"the embedded {gone} mid-night; the book is unchanged and nothing was "
                "published: run the night again"
            )
        for i, w in enumerate(self.workers):
            code = w.proc.poll() if w.proc is not None else None
            if code is None or self.restarts[i] >= self.max_restarts:
                continue
            w.stop()  # reaps what is left of it and closes its log
            self.restarts[i] += 1
            self.workers[i] = self._worker(i)
            self.notify(
                f"taxview: embedded worker w{i} exited (code {code}) mid-night; started again "
                f"({self.restarts[i]} of {self.max_restarts}): its tasks come back after the "
                f"{self.settings.visibility_timeout_s}s visibility timeout"
            )
        codes = [w.proc.poll() for w in self.workers if w.proc is not None]
        if codes and all(code is not None for code in codes):
            logs = f"; see {self.log_dir}/worker*.log" if self.log_dir else ""
            raise EmbeddedError(
                f"every embedded worker exited (codes {', '.join(map(str, codes))}) mid-night"
                f"{logs}; the book is unchanged and nothing was published: run the night again"
            )

    def close(self) -> None:
        """Stop the workers, all at once (SIGTERM to each, then one shared 10 s deadline; one
        after the other, each unsignalled worker kept taking tasks while the one before it
        shut down: a 3-worker night took 23 s to stop, review), then the server."""
        for w in self.workers:
            w.signal_stop()
        deadline = time.monotonic() + 10.0
        for w in self.workers:
            w.stop(timeout_s=max(deadline - time.monotonic(), 0.1))
        self.redis.stop()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


@contextlib.contextmanager
def embedded_fleet(
    base: Settings, *, workers: int, concurrency: int, log_dir: Path | None = None
) -> Iterator[EmbeddedFleet]:
    """Context manager form of :class:`EmbeddedFleet`."""
    fleet = EmbeddedFleet(base, workers=workers, concurrency=concurrency, log_dir=log_dir)
    with fleet:
        yield fleet
