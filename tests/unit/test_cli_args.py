"""Flags and their P2P_* variables reach the peer's settings; bad values are one line and exit 1."""

from __future__ import annotations

import pytest

from peer import cli, cli_args
from peer.config import SPARE_WORKERS, PeerConfig


def test_max_transfers_comes_from_its_variable_and_bounds_the_worker_pool(monkeypatch):
    monkeypatch.setenv("P2P_MAX_TRANSFERS", "5")
    args = cli.build_parser().parse_args(["serve"])
    assert args.max_transfers == 5
    assert cli.build_parser().parse_args(["serve", "--max-transfers", "7"]).max_transfers == 7
    assert PeerConfig(password="pw", max_transfers=5).max_workers == 5 + SPARE_WORKERS  # threads left for health


def test_a_bad_max_transfers_is_one_line(tmp_path, capsys):
    code = cli.main(["--password", "pw", "serve", "--share", str(tmp_path), "--listen", "127.0.0.1:0", "--max-transfers", "0"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1 and "max transfers must be 1-1024" in err[0]


def test_byte_sizes_take_binary_units_from_flags_and_variables(monkeypatch):
    assert [cli_args.byte_size(t) for t in ["1048576", "64K", "50M", "16G", "2GiB", " 3 m "]] == [
        1 << 20,
        64 << 10,
        50 << 20,
        16 << 30,
        2 << 30,
        3 << 20,
    ]
    monkeypatch.setenv("P2P_MAX_SERVE_RATE", "20M")
    args = cli.build_parser().parse_args(["serve", "--max-upload", "1G"])
    assert (args.max_serve_rate, args.max_upload) == (20 << 20, 1 << 30)
    assert cli.build_parser().parse_args(["serve"]).max_upload == 16 << 30


def test_a_bad_byte_size_or_serve_rate_is_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("P2P_MAX_SERVE_RATE", "fast")
    try:
        cli.build_parser().parse_args(["serve"])
    except SystemExit as exc:
        assert exc.code == 2
    assert "'fast' is not a byte count" in capsys.readouterr().err
    monkeypatch.delenv("P2P_MAX_SERVE_RATE")
    code = cli.main(["--password", "pw", "serve", "--share", str(tmp_path), "--listen", "127.0.0.1:0", "--max-serve-rate", "1K"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1 and "at least 65536 bytes/s" in err[0]


def test_the_stall_timeout_comes_from_its_variable_and_must_be_above_zero(monkeypatch, capsys):
    monkeypatch.setenv("P2P_STALL_TIMEOUT", "7.5")
    assert cli.build_parser().parse_args(["get", "x"]).stall_timeout == 7.5
    assert cli.build_parser().parse_args(["put", "f", "--to", "p", "--stall-timeout", "3"]).stall_timeout == 3.0
    for bad in ("0", "-1", "soon"):
        with pytest.raises(SystemExit):
            cli.build_parser().parse_args(["get", "x", "--stall-timeout", bad])
        assert f"{bad!r} is not a number of seconds above 0" in capsys.readouterr().err


def test_the_tracker_address_is_host_and_a_port_in_range(monkeypatch, capsys):
    monkeypatch.setenv("P2P_TRACKER", "tracker.lab:6000")
    assert cli.build_parser().parse_args(["search"]).tracker == "tracker.lab:6000"
    assert cli.build_parser().parse_args(["--tracker", "[::1]:50051", "search"]).tracker == "[::1]:50051"
    for bad in ("127.0.0.1:99999", "tracker.lab", ":50051", "127.0.0.1:0", "host:port"):
        with pytest.raises(SystemExit):
            cli.build_parser().parse_args(["--tracker", bad, "search"])
        assert f"{bad!r} is not host:port with a port of 1-65535\n" in capsys.readouterr().err
    for url in ("http://tracker.lab:6000", "grpc://127.0.0.1:50051", "tracker.lab/x:6000", "a b:6000"):
        with pytest.raises(SystemExit):
            cli.build_parser().parse_args(["--tracker", url, "search"])
        hint = "; drop the scheme: a gRPC address is host:port, not a URL" if "://" in url else ""
        assert f"{url!r} is not host:port with a port of 1-65535{hint}\n" in capsys.readouterr().err


def test_the_advertised_address_is_checked_at_start_not_at_a_later_login(monkeypatch, capsys):
    """With the tracker down at start, `serve --advertise nohost` served on and failed only once it answered."""
    monkeypatch.delenv("P2P_ADVERTISE", raising=False)
    assert cli.build_parser().parse_args(["serve"]).advertise == ""  # the listen address
    assert cli.build_parser().parse_args(["serve", "--advertise", "lab-7.lan:7000"]).advertise == "lab-7.lan:7000"
    for bad in ("nohost", "host:0", "http://h:5000"):
        monkeypatch.setenv("P2P_ADVERTISE", bad)
        with pytest.raises(SystemExit):
            cli.build_parser().parse_args(["serve"])
        assert f"argument --advertise: {bad!r} is not host:port" in capsys.readouterr().err


def test_the_rate_caps_take_units_and_a_floor(monkeypatch, capsys):
    monkeypatch.setenv("P2P_MAX_RATE", "5M")
    assert cli.build_parser().parse_args(["get", "x"]).max_rate == 5 << 20
    assert cli.build_parser().parse_args(["put", "f", "--to", "p"]).max_rate == 5 << 20
    assert cli.build_parser().parse_args(["put", "f", "--to", "p", "--max-rate", "2M"]).max_rate == 2 << 20
    assert cli.build_parser().parse_args(["get", "x", "--max-rate", "0"]).max_rate == 0
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(["get", "x", "--max-rate", "1K"])
    assert "'1K' is below the smallest rate cap, 64K per second" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("variable", "value", "said"),
    [
        ("P2P_RESCAN", "2s", "argument --rescan: invalid float value: '2s'"),
        ("P2P_MAX_TRANSFERS", "lots", "argument --max-transfers: invalid int value: 'lots'"),
        ("P2P_KEEP_PARTIAL", "1w", "argument --keep-partial: invalid float value: '1w'"),
        ("P2P_STALL_TIMEOUT", "soon", "'soon' is not a number of seconds above 0"),
        ("P2P_LOG_LEVEL", "verbose", "argument --log-level: 'verbose' is not one of debug, info, warning, error"),
    ],
)
def test_a_bad_variable_is_a_usage_error_naming_its_flag(monkeypatch, capsys, variable, value, said):
    monkeypatch.setenv(variable, value)
    cli.build_parser()  # building the parser reads every variable: it must not fail on any
    with pytest.raises(SystemExit) as exited:
        cli.build_parser().parse_args(["serve"] if variable != "P2P_STALL_TIMEOUT" else ["get", "x"])
    assert exited.value.code == 2 and said in capsys.readouterr().err


def test_keep_partial_comes_from_its_variable_and_zero_keeps_for_ever(monkeypatch, capsys, tmp_path):
    assert cli.build_parser().parse_args(["serve"]).keep_partial == 7 * 24 * 3600
    monkeypatch.setenv("P2P_KEEP_PARTIAL", "0")
    assert cli.build_parser().parse_args(["serve"]).keep_partial == 0
    code = cli.main(["--password", "pw", "serve", "--share", str(tmp_path), "--listen", "127.0.0.1:0", "--keep-partial", "-1"])
    assert code == 1 and "keep-partial must be 0 (for ever) or a number of seconds" in capsys.readouterr().err


def test_the_options_of_every_command_go_before_or_after_its_name(monkeypatch):
    from tracker.__main__ import build_parser as tracker_parser

    monkeypatch.setenv("P2P_TRACKER", "env-host:1")
    monkeypatch.setenv("P2P_LOG_LEVEL", "error")
    parse = cli.build_parser().parse_args
    assert (parse(["get", "x"]).tracker, parse(["get", "x"]).log_level) == ("env-host:1", "error")
    before = parse(["--tracker", "a:2", "--log-level", "debug", "get", "x"])
    assert (before.tracker, before.log_level) == ("a:2", "debug")  # not undone by the command's defaults
    after = parse(["serve", "--share", "s", "--log-level", "info", "--tracker", "b:3", "--name", "n"])
    assert (after.tracker, after.log_level, after.name, after.share) == ("b:3", "info", "n", "s")
    assert parse(["--tracker", "a:2", "ls", "--tracker", "c:4"]).tracker == "c:4"  # the last one given
    monkeypatch.setenv("P2P_DB", "env.db")
    assert tracker_parser().parse_args(["serve", "--db", "x.db", "--listen", ":5"]).listen == ":5"
    assert tracker_parser().parse_args(["--db", "a.db", "user", "list"]).db == "a.db"
    assert tracker_parser().parse_args(["user", "add", "bob", "--db", "b.db"]).db == "b.db"
    assert tracker_parser().parse_args(["user", "list"]).db == "env.db"
