"""Across hosts: a serving peer in a network namespace of its own (another machine, as far as the
network goes), joined to this one by a veth pair. Needs root and iproute2; skipped otherwise."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import random
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.helpers import stop_processes, wait_for

BIN = Path(sys.executable).parent


@dataclass
class Host:
    """A network namespace at `ip`, reached from this machine's `gateway` address."""

    name: str
    ip: str
    gateway: str

    def run(self, cmd: list[str]) -> list[str]:
        return ["ip", "netns", "exec", self.name, *cmd]


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=10)


@pytest.fixture
def other_host() -> Iterator[Host]:
    tag = f"{os.getpid() % 10000}{random.randrange(100)}"
    subnet = f"10.{random.randrange(200, 250)}.{random.randrange(256)}"
    host = Host(f"p2p-test-{tag}", f"{subnet}.2", f"{subnet}.1")
    here, there = f"p2ph{tag}", f"p2pt{tag}"
    try:
        _ip("netns", "add", host.name)
    except (OSError, subprocess.CalledProcessError) as exc:
        pytest.skip(f"cannot make a network namespace here (needs root and iproute2): {exc}")
    try:
        try:
            _ip("link", "add", here, "type", "veth", "peer", "name", there)
            _ip("link", "set", there, "netns", host.name)
            _ip("addr", "add", f"{host.gateway}/24", "dev", here)
            _ip("link", "set", here, "up")
            inside = (("addr", "add", f"{host.ip}/24", "dev", there), ("link", "set", there, "up"), ("link", "set", "lo", "up"))
            for args in inside:
                _ip("netns", "exec", host.name, "ip", *args)
        except subprocess.CalledProcessError as exc:
            pytest.skip(f"cannot join a network namespace to this host (veth): {exc.stderr.decode(errors='replace').strip()}")
        yield host
    finally:
        with contextlib.suppress(subprocess.CalledProcessError):
            _ip("netns", "del", host.name)  # takes its end of the pair, and so the pair
        with contextlib.suppress(subprocess.CalledProcessError):
            _ip("link", "del", here)


def free_port_on(ip: str) -> int:
    with socket.socket() as s:
        s.bind((ip, 0))
        return int(s.getsockname()[1])


@pytest.fixture
def tracker_for(other_host: Host, tmp_path: Path) -> Iterator[dict[str, str]]:
    """A tracker on this host's end of the pair; yields the environment that points commands at it."""
    tracker = f"{other_host.gateway}:{free_port_on(other_host.gateway)}"
    with open(tmp_path / "tracker.log", "wb") as log:
        cmd = [str(BIN / "p2p-tracker"), "--listen", tracker, "--db", str(tmp_path / "t.db")]
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    try:
        probe = [sys.executable, "-m", "p2p_common.healthcheck", "--address", tracker]
        wait_for(lambda: subprocess.run(probe, capture_output=True).returncode == 0, timeout=30, interval=0.2, what="the tracker")
        yield dict(os.environ, P2P_TRACKER=tracker, P2P_PASSWORD="pw")
    finally:
        stop_processes([proc])


def test_a_peer_listening_on_every_interface_is_listed_at_the_address_others_reach_it_by(other_host, tracker_for, tmp_path):
    """Without --advertise, a peer serving on 0.0.0.0 is listed under the address the tracker sees
    its login come from: a downloader on another host reaches it there (it used to be listed as
    127.0.0.1, which on every other host is that host itself)."""
    env = tracker_for
    share = tmp_path / "share"
    share.mkdir()
    song = os.urandom(3 * 1024 * 1024 + 7)
    (share / "song.bin").write_bytes(song)
    procs = []
    try:
        with open(tmp_path / "seed.log", "wb") as log:
            serve = [str(BIN / "p2p-peer"), "--name", "seed", "serve", "--share", str(share), "--listen", "0.0.0.0:50052"]
            procs.append(subprocess.Popen(other_host.run(serve), stdout=log, stderr=subprocess.STDOUT, env=env))

        def listed() -> list[dict]:
            search = [str(BIN / "p2p-peer"), "--name", "user", "search", "song", "--json"]
            out = subprocess.run(search, env=env, capture_output=True, text=True)
            return json.loads(out.stdout) if out.returncode == 0 else []

        (found,) = wait_for(listed, timeout=60, interval=0.3, what="the seed's song in the directory")
        assert found["peers"] == [{"name": "seed", "address": f"{other_host.ip}:50052", "partial": False}]
        assert f"listed as {other_host.ip}:50052" in (tmp_path / "seed.log").read_text()
        out = subprocess.run(
            [str(BIN / "p2p-peer"), "--name", "user", "get", "song.bin", "-o", str(tmp_path / "got.bin")],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert out.returncode == 0, out.stderr
        assert hashlib.sha256((tmp_path / "got.bin").read_bytes()).digest() == hashlib.sha256(song).digest()
    finally:
        stop_processes(procs)


def test_a_loopback_address_from_another_host_is_refused_and_serve_says_so(other_host, tracker_for, tmp_path):
    """Listed, it would send every downloader to itself; serve ends with one line instead of
    retrying forever."""
    (tmp_path / "share").mkdir()
    serve = [str(BIN / "p2p-peer"), "--name", "seed", "serve", "--share", str(tmp_path / "share"), "--listen", "0.0.0.0:50052"]
    out = subprocess.run(
        other_host.run([*serve, "--advertise", "127.0.0.1:50052"]), env=tracker_for, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 1
    (line,) = out.stderr.strip().splitlines()
    assert f"'127.0.0.1:50052' is a loopback address, which only {other_host.ip} itself can dial" in line
    assert f"':50052' to be listed as {other_host.ip}:50052" in line
