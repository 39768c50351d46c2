"""The simulated drifting stream: seeded, identical to the stationary one before its change
point, and the change really changes the labels and the request mix."""

from __future__ import annotations

import collections

import pytest

from hyperagents.exceptions import ConfigError
from hyperagents.service import StreamSettings, parse_settings, simulated_stream
from hyperagents.tasks.support import CATEGORIES, CHANNELS


def test_seeded_and_the_same_as_the_stationary_stream_before_the_change() -> None:
    settings = StreamSettings(seed=3, length=1000, change_at=600)
    first, again = list(simulated_stream(settings)), list(simulated_stream(settings))
    assert first == again
    still = list(simulated_stream(settings.stationary()))
    assert first[:600] == still[:600] and first[600:] != still[600:]
    assert not any(r.changed for r in still)
    assert [r.changed for r in first] == [i >= 600 for i in range(1000)]
    other = list(simulated_stream(settings.model_copy(update={"seed": 4})))
    assert [r.inputs for r in other] != [r.inputs for r in first]
    times = [r.time for r in first]
    assert times == sorted(times) and 800 < times[-1] < 1200  # one request a second
    assert all(set(r.inputs) == {"message", "channel"} for r in first)


def test_a_rule_change_moves_labels_without_touching_the_inputs() -> None:
    settings = StreamSettings(seed=0, length=4000, change_at=2000, drift="rule")
    moved, still = list(simulated_stream(settings)), list(simulated_stream(settings.stationary()))
    assert [r.inputs for r in moved] == [r.inputs for r in still]
    before = collections.Counter(r.target for r in moved[:2000])
    after = collections.Counter(r.target for r in moved[2000:])
    assert before["refund"] > 250 and after["refund"] == 0
    assert after["billing"] > 1.5 * before["billing"]
    changed = [
        (a.target, b.target) for a, b in zip(moved, still, strict=True) if a.target != b.target
    ]
    assert changed and set(changed) == {("billing", "refund")}


def test_a_mix_change_moves_the_channels_and_the_hard_share() -> None:
    settings = StreamSettings(seed=1, length=4000, change_at=2000, drift="mix")
    requests = list(simulated_stream(settings))
    before, after = requests[:2000], requests[2000:]
    chat = [sum(r.inputs["channel"] == "chat" for r in part) / 2000 for part in (before, after)]
    hard = [sum(r.hard for r in part) / 2000 for part in (before, after)]
    assert 0.28 < chat[0] < 0.38 and 0.75 < chat[1] < 0.85
    assert 0.35 < hard[0] < 0.45 and 0.75 < hard[1] < 0.85
    assert {r.target for r in after} == set(CATEGORIES)  # labels follow the routing guide
    assert {r.inputs["channel"] for r in requests} == set(CHANNELS)


def test_bad_settings_say_what_is_wrong() -> None:
    with pytest.raises(ConfigError, match="change_at 10 must be below length 10"):
        parse_settings(StreamSettings, length=10, change_at=10)
    with pytest.raises(ConfigError, match=r"relabel: .*unknown teams \['sales'\]"):
        parse_settings(StreamSettings, relabel={"refund": "sales"})
    with pytest.raises(ConfigError, match=r"after_channels: .*unknown channels \['fax'\]"):
        parse_settings(StreamSettings, after_channels={"fax": 1.0})
    with pytest.raises(ConfigError, match="drift"):
        parse_settings(StreamSettings, drift="sudden")
