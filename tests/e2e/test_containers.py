"""The container images, proved without a Docker engine: lint them, then run what they run.

Each Dockerfile is parsed; its COPY sources are laid out in a fresh folder, its pip install
step runs in a fresh virtualenv, its CMD runs with its ENV (volumes mapped to temp folders,
the port made ephemeral and loopback), and its HEALTHCHECK command must report healthy, then
unhealthy once the server was stopped with its STOPSIGNAL.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import venv
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.helpers import free_port, wait_for

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.timeout(900)


@dataclass
class Dockerfile:
    env: dict[str, str] = field(default_factory=dict)
    copies: list[list[str]] = field(default_factory=list)
    runs: list[str] = field(default_factory=list)
    cmd: list[str] = field(default_factory=list)
    healthcheck: list[str] = field(default_factory=list)
    healthcheck_options: dict[str, str] = field(default_factory=dict)
    volumes: list[str] = field(default_factory=list)
    expose: list[str] = field(default_factory=list)
    user: str = ""
    stopsignal: str = ""


def parse(path: Path) -> Dockerfile:
    text = path.read_text().replace("\\\n", " ")
    df = Dockerfile()
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        keyword, _, rest = line.partition(" ")
        rest = rest.strip()
        if keyword == "ENV":
            df.env.update(dict(item.split("=", 1) for item in shlex.split(rest)))
        elif keyword == "COPY":
            df.copies.append(rest.split())
        elif keyword == "RUN":
            df.runs.append(rest)
        elif keyword == "CMD":
            df.cmd = json.loads(rest)
        elif keyword == "HEALTHCHECK":
            options, _, command = rest.partition("CMD ")
            df.healthcheck = json.loads(command)
            df.healthcheck_options = dict(o.lstrip("-").split("=") for o in options.split())
        elif keyword == "VOLUME":
            df.volumes = json.loads(rest)
        elif keyword == "EXPOSE":
            df.expose = rest.split()
        elif keyword == "USER":
            df.user = rest
        elif keyword == "STOPSIGNAL":
            df.stopsignal = rest
    return df


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """A fresh virtualenv holding the project, installed by the Dockerfile's own pip step."""
    df = parse(ROOT / "Dockerfile.tracker")

    def pip_steps(d: Dockerfile) -> list[str]:
        return [c.strip() for run in d.runs for c in run.split("&&") if c.strip().startswith("pip ")]

    assert pip_steps(df) == pip_steps(parse(ROOT / "Dockerfile.peer")), "both images install the same way"
    app = tmp_path_factory.mktemp("app")
    for *sources, dest in df.copies:  # Docker's rules: a folder's contents go to dest; files go into dest/
        target = app / dest
        for source in sources:
            src = ROOT / source
            if src.is_dir():
                shutil.copytree(src, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
            else:
                target.mkdir(parents=True, exist_ok=True)
                shutil.copy(src, target / src.name)
    env_dir = tmp_path_factory.mktemp("venv")
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    for run in df.runs:
        for command in run.split("&&"):
            words = shlex.split(command)
            if words[0] == "pip":
                subprocess.run([str(python), "-m", *words], cwd=app, check=True, timeout=600, capture_output=True)
            else:  # account and folder set-up that needs root: checked, not run here
                assert words[0] in ("groupadd", "useradd", "mkdir", "chown"), command
    return env_dir / "bin"


def container_env(df: Dockerfile, bindir: Path, tmp: Path, **overrides: str) -> dict[str, str]:
    """The image's ENV, with its volumes mapped to temp folders and its port made ephemeral."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("P2P_", "MALLOC_"))}
    env["PATH"] = f"{bindir}:{env.get('PATH', '')}"
    for key, value in df.env.items():
        for volume in df.volumes:
            if value.startswith(volume):
                (tmp / volume.strip("/")).mkdir(parents=True, exist_ok=True)
                value = str(tmp / volume.strip("/")) + value[len(volume) :]
        env[key] = value
    env["P2P_LISTEN"] = f"127.0.0.1:{free_port()}"
    env.update(overrides)
    return env


def healthy(df: Dockerfile, env: dict[str, str], bindir: Path) -> bool:
    command = [str(bindir / "python") if df.healthcheck[0] == "python" else df.healthcheck[0], *df.healthcheck[1:]]
    return subprocess.run(command, env=env, capture_output=True, timeout=30).returncode == 0


def start(df: Dockerfile, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with open(log, "wb") as out:
        return subprocess.Popen(df.cmd, env=env, stdout=out, stderr=subprocess.STDOUT)


def stop_gracefully(df: Dockerfile, proc: subprocess.Popen[bytes]) -> int:
    proc.send_signal(getattr(signal, df.stopsignal or "SIGTERM"))
    return proc.wait(timeout=10)  # docker's default stop timeout


def test_dockerfiles_are_hadolint_clean():
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    out = subprocess.run([hadolint, "Dockerfile.tracker", "Dockerfile.peer"], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


@pytest.mark.parametrize("name", ["Dockerfile.tracker", "Dockerfile.peer"])
def test_image_shape(name):
    df = parse(ROOT / name)
    assert df.user and not df.user.startswith(("0", "root"))
    assert df.stopsignal == "SIGTERM" and df.volumes and df.expose
    assert df.expose[0] == df.env["P2P_LISTEN"].rsplit(":", 1)[1]
    assert {"interval", "timeout", "start-period", "retries"} <= set(df.healthcheck_options)


def test_compose_waits_for_a_healthy_tracker():
    import yaml

    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    services = compose["services"]
    assert services["tracker"]["build"]["dockerfile"] == "Dockerfile.tracker"
    peers = [name for name in services if name != "tracker"]
    assert len(peers) == 3
    for name in peers:
        peer = services[name]
        assert peer["build"]["dockerfile"] == "Dockerfile.peer"
        assert peer["depends_on"] == {"tracker": {"condition": "service_healthy"}}
        env = peer["environment"]
        assert env["P2P_NAME"] == name and env["P2P_ADVERTISE"] == f"{name}:50052" and env["P2P_TRACKER"] == "tracker:50051"
        assert env["P2P_PASSWORD"]
    named = set(compose["volumes"])
    for service in services.values():
        assert all(v.split(":")[0] in named for v in service["volumes"])  # named volumes only


def test_tracker_image_runs_and_reports_health(installed, tmp_path):
    df = parse(ROOT / "Dockerfile.tracker")
    env = container_env(df, installed, tmp_path)
    proc = start(df, env, tmp_path / "tracker.log")
    try:
        wait_for(lambda: healthy(df, env, installed), timeout=30, interval=0.3, what="the tracker's HEALTHCHECK")
        assert (tmp_path / "data" / "tracker.db").exists()  # the database lives in the volume
    finally:
        code = stop_gracefully(df, proc)
    assert code == 0, (tmp_path / "tracker.log").read_text()
    assert not healthy(df, env, installed)


def test_tracker_image_serves_tls_and_its_healthcheck_probes_over_tls(installed, tmp_path):
    tls = ROOT / "tests" / "data" / "tls"
    df = parse(ROOT / "Dockerfile.tracker")
    env = container_env(df, installed, tmp_path, P2P_TLS_CERT=str(tls / "server.pem"), P2P_TLS_KEY=str(tls / "server-key.pem"))
    proc = start(df, env, tmp_path / "tracker.log")
    try:
        probe_env = {**env, "P2P_TLS_CA": str(tls / "ca.pem")}
        wait_for(lambda: healthy(df, probe_env, installed), timeout=30, interval=0.3, what="the HEALTHCHECK over TLS")
        assert not healthy(df, env, installed)  # a plaintext probe of a TLS-only port fails
    finally:
        code = stop_gracefully(df, proc)
    assert code == 0, (tmp_path / "tracker.log").read_text()


def test_peer_image_runs_publishes_and_reports_health(installed, tmp_path):
    tracker_df = parse(ROOT / "Dockerfile.tracker")
    tracker_env = container_env(tracker_df, installed, tmp_path / "t")
    tracker = start(tracker_df, tracker_env, tmp_path / "tracker.log")
    try:
        wait_for(lambda: healthy(tracker_df, tracker_env, installed), timeout=30, interval=0.3, what="tracker")
        df = parse(ROOT / "Dockerfile.peer")
        listen_port = free_port()
        env = container_env(
            df,
            installed,
            tmp_path / "p",
            P2P_TRACKER=tracker_env["P2P_LISTEN"],
            P2P_NAME="peer1",
            P2P_PASSWORD="pw",
            P2P_LISTEN=f"127.0.0.1:{listen_port}",
            P2P_ADVERTISE=f"127.0.0.1:{listen_port}",
        )
        (tmp_path / "p" / "share" / "hello.txt").write_text("hello from the container")
        peer = start(df, env, tmp_path / "peer.log")
        try:
            wait_for(lambda: healthy(df, env, installed), timeout=30, interval=0.3, what="the peer's HEALTHCHECK")
            search_env = dict(env, P2P_TRACKER=tracker_env["P2P_LISTEN"])
            search = [str(installed / "p2p-peer"), "--name", "ops", "search", "hello", "--json"]
            found = wait_for(
                lambda: json.loads(
                    subprocess.run(search, env=search_env, capture_output=True, text=True, timeout=30).stdout or "[]"
                ),
                timeout=30,
                interval=0.3,
                what="the peer's files on the tracker",
            )
            assert found[0]["name"] == "hello.txt" and found[0]["peers"][0]["name"] == "peer1"
        finally:
            code = stop_gracefully(df, peer)
        assert code == 0, (tmp_path / "peer.log").read_text()
        assert not healthy(df, env, installed)
    finally:
        stop_gracefully(tracker_df, tracker)
