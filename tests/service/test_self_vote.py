"""A plan's ``self`` action for a task whose verifier needs the target (support: a live input
has none): the answers a majority of the champion and earlier champions agree on are kept as
``self-vote`` labels (train only), a tie or too few answers keeps nothing, a voter whose
sandbox fails does not fail the plan; with a verifier that judges from the inputs alone, the
champion's verified answers are kept as before, and nobody votes."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest

from hyperagents.exceptions import SandboxError
from hyperagents.program import Program
from hyperagents.runs import RunConfig, own_sandbox
from hyperagents.sandbox import Limits, Sandbox, SandboxResult
from hyperagents.service import (
    IMPROVEMENT_ATTR,
    LiveExample,
    Voter,
    act_on_data,
    lineage_voters,
    self_votes,
)
from hyperagents.storages import InMemoryStorage, RunSpec, VariantState
from hyperagents.tasks import Instance, Split, load_task
from hyperagents.tasks.support import SupportTask

SIZES = {"n_train": 12, "n_val": 8, "n_test": 4}
#: A voter with this in its task agent finds the sandbox broken (infrastructure, not its code).
BROKEN = "# the sandbox breaks under this one"


def agent(otherwise: str) -> str:
    """A support task agent: ``refund`` for a refund, else ``otherwise`` (Python source of
    the answer, or of what it does)."""
    return (
        "def solve(inputs):\n"
        "    message = inputs['message'].lower()\n"
        "    if 'refund' in message:\n"
        "        return 'refund'\n"
        f"    {otherwise}\n"
    )


#: Refunds: all answer ``refund``. Messages about an app: billing, technical, billing (a
#: majority). Others: billing, technical, and the third fails (a tie).
VOTERS = {
    1: agent("return 'billing'"),
    2: agent("return 'technical'"),
    3: agent("if 'app' in message:\n        return 'billing'\n    raise ValueError('no idea')"),
    4: agent("return 'billing'") + BROKEN,
}


class BreaksFor:
    """The process sandbox, failing itself (:class:`SandboxError`) for a program marked
    :data:`BROKEN`."""

    def __init__(self, inner: Sandbox) -> None:
        self.inner = inner
        self.name = inner.name
        self.broke = 0

    def run(
        self,
        workspace: Path,
        request: dict[str, Any],
        *,
        limits: Limits,
        llm: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
    ) -> SandboxResult:
        if BROKEN in (workspace / "task_agent.py").read_text():
            self.broke += 1
            raise SandboxError("the sandbox broke")
        return self.inner.run(workspace, request, limits=limits, llm=llm)


@pytest.fixture
def sandbox() -> Iterator[BreaksFor]:
    task = load_task("support", SIZES)
    with own_sandbox(RunConfig.parse({"sandbox": "process"}), task) as inner:
        yield BreaksFor(inner)


def live_requests() -> list[LiveExample]:
    """Served requests without a label (feedback only), and one labelled."""
    inputs = [
        i.inputs for i in load_task("support", {"seed": 7, "n_train": 12}).instances(Split.TRAIN)
    ]
    found = [LiveExample(f"r{k}", x, "billing", feedback=0.0) for k, x in enumerate(inputs)]
    found[0] = LiveExample("r0", inputs[0], "billing", label="billing")
    return found


def voters(task: Any) -> list[Voter]:
    seed = task.seed_program()
    return [Voter(k, seed.with_files({"task_agent.py": code})) for k, code in VOTERS.items()]


def ask_self(task: Any, live: list[LiveExample], sandbox: BreaksFor, *, quorum: int) -> Any:
    """A plan's ``self`` action on every unlabelled request, :data:`VOTERS` voting (voter 1
    the champion)."""
    plan = {"actions": [{"kind": "more_data", "source": "self", "request_ids": []}]}
    ballot = voters(task)
    return act_on_data(
        plan,
        live,
        task=task,
        program=ballot[0].program,
        sandbox=sandbox,
        teacher=None,
        voters=ballot,
        quorum=quorum,
    )


def expected(example: LiveExample) -> str | None:
    """What the vote keeps for ``example`` (None: a tie)."""
    message = example.inputs["message"].lower()
    if "refund" in message:
        return "refund"
    return "billing" if "app" in message else None


def test_self_answers_are_kept_by_majority_vote_when_the_verifier_needs_the_target(
    sandbox: BreaksFor,
) -> None:
    task = load_task("support", SIZES)
    assert self_votes(task)  # support's verifier scores against the target
    live = live_requests()
    unlabelled = [e for e in live if not e.labelled]
    majority = {e.request_id: expected(e) for e in unlabelled if expected(e) is not None}
    ties = [e.request_id for e in unlabelled if expected(e) is None]
    # A request whose inputs are a val instance's: never kept, whatever the votes.
    live.append(LiveExample("val", task.instances(Split.VAL)[0].inputs, "x", feedback=0.0))
    assert "refund" in majority.values() and "billing" in majority.values() and ties
    done = ask_self(task, live, sandbox, quorum=2)
    (record,) = done.record
    assert sandbox.broke == 1  # the broken voter did not fail the plan
    assert record["by"] == "vote" and record["kept_as"] == "self-vote"
    assert record["voters"] == [1, 2, 3, 4] and record["quorum"] == 2
    assert record["asked"] == len(unlabelled) + 1 and record["kept"] == len(majority)
    assert {e.request_id: e.label for e in done.examples} == majority
    # Train only: a label the service made never gates (never held back, val or test).
    assert all(e.source == "self-vote" and not e.may_gate for e in done.examples)
    assert sorted(record["ids"]) == sorted(majority)
    refused = record["refused"]
    assert refused[0].startswith("voter 4: the sandbox failed")
    assert refused[-1] == "val: its inputs are a val or test instance's"
    assert sorted(refused[1:-1]) == sorted(f"{i}: no majority among the 2 answers" for i in ties)
    # A quorum the voters that answered cannot reach keeps nothing, and says so.
    strict = ask_self(task, live, sandbox, quorum=4)
    (record,) = strict.record
    assert strict.examples == () and record["kept"] == 0
    refund = next(i for i, label in majority.items() if label == "refund")
    assert f"{refund}: 3 of 4 voters answered (quorum 4)" in record["refused"]


class InputsVerifiedSupport(SupportTask):
    """Support with a verifier that judges from the inputs alone: a refund is ``refund``."""

    verifier_needs_target: ClassVar[bool] = False

    def accepts(self, instance: Instance, output: Any) -> bool:
        return "refund" in instance.inputs["message"].lower() and output == "refund"


def test_a_verifier_that_needs_no_target_keeps_the_champions_verified_answers(
    sandbox: BreaksFor,
) -> None:
    task = InputsVerifiedSupport(**SIZES)
    assert not self_votes(task)
    live = live_requests()
    done = ask_self(task, live, sandbox, quorum=2)
    (record,) = done.record
    refunds = [e.request_id for e in live if not e.labelled and expected(e) == "refund"]
    assert record["by"] == "champion" and "voters" not in record and sandbox.broke == 0
    assert [e.request_id for e in done.examples] == refunds
    assert all(e.source == "self" and e.label == "refund" for e in done.examples)
    assert all(r.endswith("not accepted by the verifier") for r in record["refused"])


def test_the_voters_are_the_champion_its_ancestors_and_the_champions_it_was_improved_from() -> None:
    store = InMemoryStorage()
    programs = [store.put_program(Program({"task_agent.py": f"# {k}\n"})) for k in range(3)]

    def run(name: str, attrs: dict[str, Any]) -> int:
        spec = RunSpec(name=name, task="support", mode="hyperagent", seed=1, config={},
                       seed_program_id=programs[0], attrs=attrs)  # fmt: skip
        return store.create_run(spec)

    def variant(run_id: int, parent: int | None, program: str) -> int:
        generation = 0 if parent is None else store.get_variant(parent).generation + 1
        return store.create_variant(run_id=run_id, generation=generation, parent_id=parent,
                                    state=VariantState.COMPLETE, program_id=program)  # fmt: skip

    served = run("served", {})
    v0 = variant(served, None, programs[0])
    v1 = variant(served, v0, programs[1])
    v2 = variant(served, v1, programs[1])  # the same program again: one vote
    improved = run("served-improve", {IMPROVEMENT_ATTR: {"run_id": served, "variant": v2}})
    b0 = variant(improved, None, programs[1])  # its seed: the champion it improves
    b1 = variant(improved, b0, programs[2])
    found = lineage_voters(store, store.get_variant(b1), most=5)
    assert [v.variant_id for v in found] == [b1, b0, v0]
    assert [v.program.id for v in found] == [programs[2], programs[1], programs[0]]
    assert [v.variant_id for v in lineage_voters(store, store.get_variant(b1), most=2)] == [b1, b0]
    assert [v.variant_id for v in lineage_voters(store, store.get_variant(v1), most=5)] == [v1, v0]
