"""glibc malloc tuning: applied in-process unless the environment already chose."""

from __future__ import annotations

import os
import platform

from p2p_common.malloc import tune_malloc


def test_tune_malloc_applies_on_glibc_unless_the_environment_chose(monkeypatch):
    for name in [k for k in os.environ if k.startswith("MALLOC_")]:
        monkeypatch.delenv(name)
    assert tune_malloc() is (platform.libc_ver()[0] == "glibc")
    monkeypatch.setenv("MALLOC_ARENA_MAX", "2")
    assert tune_malloc() is False
