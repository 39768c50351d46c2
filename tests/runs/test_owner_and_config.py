"""Owner tokens (liveness of engine processes) and the run configuration."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

from hyperagents.exceptions import ConfigError
from hyperagents.runs import Mode, RunConfig, derive_seed, parse_mode
from hyperagents.runs._owner import new_owner_token, owner_is_dead


def test_own_token_is_alive() -> None:
    token = new_owner_token()
    assert token.startswith(socket.gethostname() + f"|{os.getpid()}|")
    assert not owner_is_dead(token)


def test_exited_process_is_dead() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    assert owner_is_dead(f"{socket.gethostname()}|{proc.pid}|123|x")


def test_reused_pid_is_detected_by_start_time() -> None:
    token = new_owner_token().split("|")
    token[2] = "1"  # same pid, another start time
    assert owner_is_dead("|".join(token))


def test_other_hosts_and_garbage_are_never_declared_dead() -> None:
    assert not owner_is_dead("another-host|1|1|x")
    assert not owner_is_dead("garbage")


def test_config_validation() -> None:
    assert RunConfig.parse({}, selector="best").selector == "best"
    with pytest.raises(ConfigError, match="subset_size"):
        RunConfig.parse({"subset_size": 0})
    with pytest.raises(ConfigError, match="bogus: Extra inputs are not permitted"):
        RunConfig.parse({"bogus": 1})
    with pytest.raises(ConfigError, match="selector"):
        RunConfig.parse({"selector": "x"})
    assert parse_mode("frozen-meta") is Mode.FROZEN_META
    with pytest.raises(ConfigError):
        parse_mode("x")


def test_derived_seeds_are_stable_and_distinct() -> None:
    assert derive_seed(1, 2, "meta") == derive_seed(1, 2, "meta")
    assert len({derive_seed(1, g, "meta") for g in range(100)}) == 100
    assert derive_seed(1, 2, "meta") != derive_seed(2, 2, "meta")
