"""Serving: answers in the run's sandbox, every request recorded, hostile agents contained,
concurrency with queueing, A/B routing by a seeded hash, shadow answers, and restarts."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest
from service_helpers import Site

from hyperagents.exceptions import ConfigError, StorageError
from hyperagents.service import Serving, routed_to_candidate
from hyperagents.storages import (
    MAX_REQUEST_JSON,
    CandidateState,
    ServiceRouting,
    ServiceStatus,
)


def test_answers_are_the_champions_and_recorded(site: Site, serving: Serving) -> None:
    high, low = serving.answer({"x": 0.9}), serving.answer({"x": 0.1})
    assert (high.output, low.output) == ("hi", "lo")
    assert high.ok and high.arm == "champion" and high.variant_id == site.champion
    record = site.storage.get_service_request(high.request_id)
    assert record.inputs == {"x": 0.9} and record.output == "hi" and record.error is None
    assert record.answered and record.latency == pytest.approx(high.latency)
    assert record.cost == 0.0
    status = serving.status()
    assert status["status"] == "serving" and status["requests"] == 2 and status["errors"] == 0
    assert status["latency_p50_s"] is not None


@pytest.mark.parametrize(
    ("inputs", "error"),
    [
        ({"do": "crash"}, "the champion crashed"),
        ({"do": "loop"}, "timeout"),
        ({"do": "huge"}, "too large"),
        ({"do": "exit"}, "exit code 3"),
    ],
)
def test_a_hostile_champion_fails_its_request_only(
    site: Site, serving: Serving, inputs: dict[str, str], error: str
) -> None:
    bad = serving.answer(inputs)
    assert not bad.ok and bad.output is None and error in (bad.error or "")
    stored = site.storage.get_service_request(bad.request_id)
    assert stored.answered and error in (stored.error or "")
    after = serving.answer({"x": 0.9})  # the service goes on
    assert after.ok and after.output == "hi"


def test_garbage_on_the_streams_does_not_spoil_the_answer(serving: Serving) -> None:
    answer = serving.answer({"do": "garbage", "x": 0.9})
    assert answer.ok and answer.output == "hi"


def test_bad_inputs_are_refused_before_anything_runs(site: Site, serving: Serving) -> None:
    with pytest.raises(StorageError, match="too large"):
        serving.answer({"x": "y" * MAX_REQUEST_JSON})
    assert site.storage.count_service_requests(serving.service_id) == 0


def test_requests_beyond_the_workers_wait_and_none_is_lost(site: Site, serving: Serving) -> None:
    answers: list[object] = []
    lock = threading.Lock()

    def ask(i: int) -> None:
        answer = serving.answer({"x": 0.9 if i % 2 else 0.1})
        with lock:
            answers.append(answer)

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(7)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert len(answers) == 7
    assert site.storage.count_service_requests(serving.service_id, answered=True, failed=False) == 7
    assert serving.status()["in_flight"] == 0 and serving.status()["queued"] == 0


def test_routing_hash_is_deterministic_and_takes_its_share() -> None:
    picks = [routed_to_candidate(seed=5, request_id=i, share=0.3) for i in range(1, 4001)]
    assert picks == [routed_to_candidate(seed=5, request_id=i, share=0.3) for i in range(1, 4001)]
    assert 0.27 < sum(picks) / len(picks) < 0.33
    assert not any(routed_to_candidate(seed=5, request_id=i, share=0.0) for i in range(1, 500))
    assert all(routed_to_candidate(seed=5, request_id=i, share=1.0) for i in range(1, 500))
    other = [routed_to_candidate(seed=6, request_id=i, share=0.3) for i in range(1, 4001)]
    assert other != picks


def _route(site: Site, serving: Serving, state: CandidateState, share: float = 0.0) -> None:
    service = site.storage.get_service(serving.service_id)
    routing = ServiceRouting(
        champion_id=site.champion,
        candidate_id=site.candidate,
        candidate_state=state,
        candidate_share=share,
    )
    assert site.storage.set_service_routing(service.id, routing, expected=service.routing)


def test_ab_routing_sends_the_hashed_share_to_the_candidate(site: Site, serving: Serving) -> None:
    _route(site, serving, CandidateState.AB, share=0.5)
    answers = [serving.answer({"x": 0.5}) for _ in range(12)]
    seed = site.storage.get_service(serving.service_id).seed
    for answer in answers:
        to_candidate = routed_to_candidate(seed=seed, request_id=answer.request_id, share=0.5)
        assert answer.arm == ("candidate" if to_candidate else "champion")
        # The candidate's lower threshold says "hi" where the champion says "lo".
        assert answer.output == ("hi" if to_candidate else "lo")
        stored = site.storage.get_service_request(answer.request_id)
        assert (stored.arm, stored.variant_id) == (
            answer.arm,
            site.candidate if to_candidate else site.champion,
        )
    assert {a.arm for a in answers} == {"champion", "candidate"}


def test_shadow_answers_with_the_champion_and_records_the_candidate(
    site: Site, new_service: Callable[..., int]
) -> None:
    serving = Serving(site.storage, new_service(), workers=2)
    serving.start()
    _route(site, serving, CandidateState.SHADOW)
    answers = [serving.answer({"x": 0.5}) for _ in range(3)]
    bad = serving.answer({"do": "crash"})
    serving.close()  # waits for the shadow answers
    assert [a.output for a in answers] == ["lo"] * 3 and {a.arm for a in answers} == {"champion"}
    shadows = site.storage.list_service_requests(serving.service_id, arms=["shadow"])
    by_request = {s.shadow_of: s for s in shadows}
    assert set(by_request) == {a.request_id for a in [*answers, bad]}
    for answer in answers:
        shadow = by_request[answer.request_id]
        assert shadow.variant_id == site.candidate and shadow.output == "hi"
    assert "crashed" in (by_request[bad.request_id].error or "")
    assert site.storage.get_service(serving.service_id).status is ServiceStatus.STOPPED


def test_a_restart_ends_requests_left_unanswered(
    site: Site, new_service: Callable[..., int]
) -> None:
    service_id = new_service()
    first = Serving(site.storage, service_id, workers=1)
    first.start()
    lost = first.admit({"x": 0.9})  # admitted, never answered: the process "died"
    answered = first.answer({"x": 0.9})
    second = Serving(site.storage, service_id, workers=1)
    second.start()
    try:
        stored = site.storage.get_service_request(lost.request_id)
        assert stored.answered and "stopped before answering" in (stored.error or "")
        assert site.storage.get_service_request(answered.request_id).output == "hi"
        assert second.answer({"x": 0.1}).output == "lo"
        events = [e.kind for e in site.storage.list_service_events(service_id)]
        assert events == ["serving", "serving"]
    finally:
        second.close()
        first.close()


def test_workers_must_be_positive(site: Site, new_service: Callable[..., int]) -> None:
    with pytest.raises(ConfigError):
        Serving(site.storage, new_service(), workers=0)
