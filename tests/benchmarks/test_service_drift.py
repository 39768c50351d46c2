"""End to end over real HTTP: ``hyperagents serve --improve`` fed the drifting support stream
notices the change, improves in the background while the champion answers every request, and
records its decisions; a stationary stream triggers nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from service_drift import DECISIONS, episode


@pytest.mark.slow
def test_a_drifting_stream_is_noticed_and_acted_on_without_losing_a_request(
    tmp_path: Path,
) -> None:
    found = episode(tmp_path, seed=0, length=1500, change_at=400, after=100)
    assert found.sent == found.answered == found.recorded and found.refused == 0
    trigger = found.first("improving")
    assert trigger is not None and trigger["index"] >= 400  # after the change, not before
    # acted on: a candidate under test, or a final decision (how far it gets within the
    # stream depends on the machine's speed: the champion answers at its own pace meanwhile)
    kinds = [d["kind"] for d in found.decisions]
    assert {"testing", *DECISIONS} & set(kinds), kinds
    before, during = found.accuracy["before"], found.accuracy["during"]
    assert before is not None and during is not None and during < before


@pytest.mark.slow
def test_a_stationary_stream_triggers_nothing(tmp_path: Path) -> None:
    found = episode(tmp_path, seed=1, length=700, change_at=None)
    assert found.sent == found.answered == found.recorded == 700
    assert found.decisions == []
