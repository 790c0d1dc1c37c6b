"""A TLS deployment: tracker and peers serve TLS, clients verify them against the deployment's CA.

The certificates in tests/data/tls were made once with openssl (see the README there): a test CA,
a server certificate it signed for 127.0.0.1 and localhost, and an unrelated CA.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import pytest

from p2p_common.errors import InvalidArgument, P2PError
from p2p_common.tls import ClientTls, ServerTls
from peer import cli, transfers
from peer.peer_client import PeerChannels, PeerConnection
from peer.tracker_client import TrackerClient
from tests.helpers import wait_for
from tests.integration.test_grpcurl import GRPCURL

TLS = Path(__file__).resolve().parent.parent / "data" / "tls"
CA, CERT, KEY, OTHER_CA = (str(TLS / n) for n in ("ca.pem", "server.pem", "server-key.pem", "other-ca.pem"))
RENEWED_CERT, RENEWED_KEY = str(TLS / "renewed.pem"), str(TLS / "renewed-key.pem")  # signed by OTHER_CA
SERVE_TLS = {"tls_cert": CERT, "tls_key": KEY}


@pytest.fixture
def tls_tracker(start_tracker_at):
    return start_tracker_at(db=":memory:", **SERVE_TLS)


def tracker_client(tracker, ca: str | None, name: str = "tester") -> TrackerClient:
    return TrackerClient(f"127.0.0.1:{tracker.port}", name, "pw", tls=ClientTls.load(ca) if ca else None)


def test_clients_that_trust_the_ca_log_in_and_others_cannot(tls_tracker):
    trusting = tracker_client(tls_tracker, CA)
    try:
        trusting.login()
        assert trusting.query(pattern="anything") == []
    finally:
        trusting.close()
    for ca in (None, OTHER_CA):  # plaintext, or a CA that did not sign the tracker's certificate
        other = tracker_client(tls_tracker, ca)
        try:
            with pytest.raises(P2PError, match="unreachable"):
                other.login()
        finally:
            other.close()


def test_a_file_travels_between_tls_peers(tls_tracker, start_peer_at, tmp_path):
    data = os.urandom(3 * (1 << 20) + 12345)
    settings = {"tracker": f"127.0.0.1:{tls_tracker.port}", "tls_ca": CA, **SERVE_TLS}
    start_peer_at("alice", {"music/song.bin": data}, **settings)
    client = tracker_client(tls_tracker, CA)
    try:
        client.login()
        remote = transfers.resolve(client, "song.bin")
        result = transfers.fetch(client, remote, tmp_path / "got.bin")
        assert result.per_source and (tmp_path / "got.bin").read_bytes() == data
        with closing(PeerChannels(None)) as plaintext:  # the peer's port speaks only TLS
            plain = PeerConnection("alice", remote.sources[0].address, lambda fresh: client.ticket("alice", fresh), plaintext)
            with pytest.raises(P2PError, match="unreachable"):
                plain.manifest(remote.sha256, timeout=5)
    finally:
        client.close()


def test_the_cli_over_tls_and_its_one_line_errors(tls_tracker, start_peer_at, tmp_path, capsys):
    data = os.urandom(70_000)
    start_peer_at("bob", {"notes.txt": data}, tracker=f"127.0.0.1:{tls_tracker.port}", tls_ca=CA, **SERVE_TLS)
    common = ["--tracker", f"127.0.0.1:{tls_tracker.port}", "--name", "carol", "--password", "pw"]
    out = tmp_path / "notes.txt"
    assert cli.main([*common, "--tls-ca", CA, "get", "notes.txt", "-o", str(out)]) == 0
    assert hashlib.sha256(out.read_bytes()).hexdigest() == hashlib.sha256(data).hexdigest()
    capsys.readouterr()
    assert cli.main([*common, "--tls-ca", OTHER_CA, "search", "notes"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("p2p-peer search: login to tracker") and "not signed by a CA" in err[0]
    assert cli.main([*common, "search", "notes"]) == 1  # plaintext to a TLS-only port
    assert "if it serves TLS, give --tls-ca" in capsys.readouterr().err
    assert cli.main([*common, "--tls-ca", str(tmp_path / "missing.pem"), "search", "notes"]) == 1
    assert "cannot read the TLS CA bundle" in capsys.readouterr().err


def test_grpcurl_and_the_health_probe_over_tls(tls_tracker):
    address = f"127.0.0.1:{tls_tracker.port}"
    listed = subprocess.run([GRPCURL, "-cacert", CA, address, "list"], capture_output=True, text=True, timeout=60)
    assert listed.returncode == 0, listed.stderr
    assert "p2p.v1.TrackerService" in listed.stdout.split()

    def probe(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "p2p_common.healthcheck", "--address", address, "--timeout", "5", *args]
        return subprocess.run(command, capture_output=True, text=True, timeout=60, env={**os.environ, "P2P_TLS_CA": ""})

    assert probe("--tls-ca", CA, "--service", "p2p.v1.TrackerService").returncode == 0
    # the certificate names 127.0.0.1 and localhost: another expected name fails verification
    assert probe("--tls-ca", CA, "--tls-server-name", "tracker.example").returncode == 1
    assert probe("--tls-ca", CA, "--tls-server-name", "localhost").returncode == 0
    assert probe().returncode == 1  # plaintext against a TLS port


def logs_in(tracker, ca: str) -> bool:
    client = tracker_client(tracker, ca)  # a new channel: a new connection, a new handshake
    try:
        client.login()
        return True
    except P2PError:
        return False
    finally:
        client.close()


def test_a_renewed_certificate_is_served_without_a_restart(start_tracker_at, tmp_path):
    cert, key = tmp_path / "tracker.pem", tmp_path / "tracker-key.pem"
    shutil.copy(CERT, cert)
    shutil.copy(KEY, key)
    tracker = start_tracker_at(db=":memory:", tls_cert=str(cert), tls_key=str(key))
    assert logs_in(tracker, CA) and not logs_in(tracker, OTHER_CA)
    key.write_text("half-written")  # mid-renewal: the current certificate stays in service
    assert logs_in(tracker, CA)
    for source, dest in ((RENEWED_CERT, cert), (RENEWED_KEY, key)):  # as certbot or step-ca renew: replaced whole
        shutil.copy(source, f"{dest}.new")
        os.replace(f"{dest}.new", dest)
    wait_for(lambda: logs_in(tracker, OTHER_CA), timeout=10, what="the renewed certificate in service")
    assert not logs_in(tracker, CA)


def test_incomplete_or_unreadable_tls_settings_are_refused(tmp_path):
    with pytest.raises(InvalidArgument, match="both a certificate"):
        ServerTls.load(CERT, "")
    not_pem = tmp_path / "cert.der"
    not_pem.write_bytes(b"\x30\x82binary")
    with pytest.raises(InvalidArgument, match="not PEM"):
        ServerTls.load(str(not_pem), KEY)
    with pytest.raises(InvalidArgument, match=r"cannot read the TLS file .*nope\.pem"):
        ServerTls.load(CERT, str(tmp_path / "nope.pem"))
    assert ServerTls.load("", "") is None and ClientTls.load("") is None


def test_the_files_of_one_get_or_put_share_one_connection_to_a_peer(tls_tracker, start_peer_at, tmp_path, caplog):
    """Over TLS a connection costs a handshake (round trips, and CPU at both ends): an album of
    files fetched or sent in one command dials each peer once, not once a file."""
    caplog.set_level(logging.INFO, logger="p2p.rpc")
    album = {f"album/{i:02d}.flac": os.urandom(20_000 + i) for i in range(8)}
    settings = {"tracker": f"127.0.0.1:{tls_tracker.port}", "tls_ca": CA, **SERVE_TLS}
    start_peer_at("dave", album, allow_uploads=True, **settings)
    common = ["--tracker", f"127.0.0.1:{tls_tracker.port}", "--name", "erin", "--password", "pw", "--tls-ca", CA]

    def connections(method: str) -> set[str]:
        """The client ends (address:port) that called method, from the serving peer's log."""
        lines = [r.getMessage() for r in caplog.records if f"/p2p.v1.PeerService/{method} " in r.getMessage()]
        return {line.split("caller=", 1)[1].split()[0].rsplit("@", 1)[-1] for line in lines}

    assert cli.main([*common, "get", "--all", "album/*", "-j", "3", "-o", str(tmp_path / "got")]) == 0
    for name, data in album.items():
        assert (tmp_path / "got" / name).read_bytes() == data
    wait_for(lambda: connections("Download"), what="the Download log lines (written as each RPC ends)")
    assert len(connections("Download")) == 1
    sending = tmp_path / "mix"
    sending.mkdir()
    for i in range(4):
        (sending / f"{i}.txt").write_bytes(os.urandom(5000 + i))
    assert cli.main([*common, "put", str(sending), "--to", "dave"]) == 0
    wait_for(lambda: len([r for r in caplog.records if "/Upload " in r.getMessage()]) == 4, what="the Upload log lines")
    assert len(connections("Upload")) == 1
