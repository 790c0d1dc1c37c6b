from pathlib import Path

import pytest

from p2p_common.errors import P2PError
from p2p_common.passwords import first_line, read_password_file


@pytest.mark.parametrize(
    ("text", "line"),
    [("pw", "pw"), ("pw\n", "pw"), ("pw\r\n", "pw"), ("pw\r\nmore\n", "pw"), ("p w\t\n", "p w\t"), ("\n", "")],
)
def test_first_line_ends_at_lf_or_crlf_and_keeps_other_whitespace(text: str, line: str) -> None:
    assert first_line(text) == line


def test_a_password_file_that_is_empty_or_not_text_is_named(tmp_path: Path) -> None:
    (empty := tmp_path / "empty").write_text("\r\n")
    with pytest.raises(P2PError, match="is empty"):
        read_password_file(str(empty))
    (binary := tmp_path / "binary").write_bytes(b"\xff\xfe\n")
    with pytest.raises(P2PError, match="not UTF-8"):
        read_password_file(str(binary))
    (good := tmp_path / "good").write_bytes("sécret\r\n".encode())
    assert read_password_file(str(good)) == "sécret"
