"""Helpers of the planning tests: a served ``support`` run with a service whose champion
answered live requests, and a model server's answers (not a pytest module)."""

from __future__ import annotations

import json
from typing import Any

from hyperagents.runs import Run, RunService
from hyperagents.service import LiveExample, attach_feedback, service_for_run
from hyperagents.storages import RDBStorage, ServiceRecord
from hyperagents.tasks import Split, load_task

SIZES = {"n_train": 12, "n_val": 8, "n_test": 4}
PLAN_PROMPT = "You plan the improvement"
LABEL_PROMPT = "You label live requests"


def key(inputs: Any) -> str:
    return json.dumps(inputs, sort_keys=True)


class Site:
    """A served support run with a service whose champion answered live requests: every
    third one got feedback only (a failure), the rest a label."""

    def __init__(self, url: str, **config: Any) -> None:
        self.url = url
        self.store = RDBStorage(url)
        self.service = RunService(self.store)
        run = Run.create(
            task="support",
            name="served",
            storage=self.store,
            config={"task_options": SIZES, "sandbox": "process", **config},
        )
        run.optimize(1, workers=1)
        self.record: ServiceRecord = service_for_run(self.store, "served")
        self.truth: dict[str, str] = {}
        self.live: list[LiveExample] = []
        for k, inst in enumerate(
            load_task("support", {"seed": 7, "n_train": 12}).instances(Split.TRAIN)
        ):
            rid = self.store.add_service_request(
                self.record.id,
                variant_id=self.record.champion_id,
                arm="champion",
                inputs=inst.inputs,
            )
            self.store.finish_service_request(rid, output="billing", latency=0.01)
            self.truth[key(inst.inputs)] = inst.target
            if k % 3 == 2:
                attach_feedback(self.store, rid, score=0.0, by="test")
                self.live.append(LiveExample(str(rid), inst.inputs, "billing", feedback=0.0))
            else:
                attach_feedback(self.store, rid, label=inst.target, by="test")
                self.live.append(LiveExample(str(rid), inst.inputs, "billing", label=inst.target))

    @property
    def unlabelled(self) -> list[str]:
        return [e.request_id for e in self.live if not e.labelled]

    def model(self, plan: dict[str, Any] | str) -> Any:
        """A server handler: ``plan`` to the planner, the true team to the teacher."""

        def answer(body: dict[str, Any]) -> str:
            text = " ".join(m["content"] for m in body["messages"])
            if PLAN_PROMPT in text:
                return plan if isinstance(plan, str) else json.dumps(plan)
            if "Team:" in text:  # the champion itself (support's agent asks the model)
                return "billing"
            assert LABEL_PROMPT in text
            return json.dumps(self.truth[body["messages"][-1]["content"]])

        return answer


def model_plan(site: Site) -> dict[str, Any]:
    people, teacher = site.unlabelled[0], site.unlabelled[1:]
    return {
        "summary": "Everything is sent to billing.",
        "actions": [
            {"kind": "harness_edit", "focus": ["output=billing"]},
            {"kind": "more_data", "source": "people", "request_ids": [f"live:{people}"]},
            {
                "kind": "more_data",
                "source": "teacher",
                "request_ids": [f"live:{i}" for i in teacher],
            },
            {"kind": "more_data", "source": "self", "request_ids": []},
        ],
    }
