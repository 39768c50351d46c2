"""The training step: a weight update of a child, between its improvement and its validation.

After the meta agent made a child, :func:`choose_lever` reads the child's
``training_plan.json`` (the meta agent's choice: harness, weights or both; the file is consumed,
never stored with the child), reduces the choice to what the run's ``levers`` allow (see
:mod:`hyperagents.weights`), and records it with the child (``metrics["training"]``); a child
that trains is stored with its training *due*.

:class:`Training` then does the step: it collects the data from the sources the plan names
(the parent's own outputs on train inputs that the task's verifier accepts — from the parent's
stored train evaluation, else from running the parent's task agent —, the task's examples, the
run's model as a teacher, labels people posted), never val or test data, runs the child's
``trainer.py`` in the sandbox under the stage's limits, and puts the model it wrote in the
child's ``model/`` folder. One transaction records the new program, every example with its
source and instance id (the ``variant.trained`` event), the curve and the counts per source; a
trainer that fails makes the child ``INVALID`` with the reason, in one transaction too. A
crash before either leaves the training due: it is done again on resume, never recorded twice,
and goes on from the newest checkpoint its trainer wrote (kept in the run's storage by
:class:`~hyperagents.runs._checkpoints.CheckpointStore`, so any engine on any machine that
takes the training over finds it; each one a ``training.checkpoint`` event; a resumed one is a
``training.resumed`` event and ``resumed_from`` in the record), so the kill loses only the work
since that checkpoint.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections import Counter
from collections.abc import Mapping
from dataclasses import fields, replace
from typing import Any

from hyperagents.evaluation import solve_in_sandbox
from hyperagents.exceptions import StorageError
from hyperagents.program import Program
from hyperagents.runs._checkpoints import CheckpointStore, training_key
from hyperagents.runs._context import RunContext
from hyperagents.storages import BaseStorage, EventSpec, VariantRecord, VariantState
from hyperagents.tasks import Instance, Split
from hyperagents.weights import (
    MODEL_DIR,
    PLAN_FILE,
    TEACHER_FILE,
    TRAINER_FILE,
    DataGuard,
    Example,
    Lever,
    TrainingLimits,
    TrainingOutcome,
    TrainingPlan,
    accepted_outputs,
    labels,
    model_files,
    parse_levers,
    people_examples,
    run_trainer,
    task_examples,
    teacher_examples,
    unverified_outputs,
    voted_outputs,
    with_model,
)

__all__ = ["DUE", "Training", "choose_lever", "strip_plan", "training_summary"]

logger = logging.getLogger("hyperagents")

#: ``metrics["training"]["state"]`` of a child whose training has not been recorded yet.
DUE = "due"


def strip_plan(child: Program) -> tuple[Program, TrainingPlan]:
    """The child without its ``training_plan.json``, and the plan it held."""
    return child.without(PLAN_FILE), TrainingPlan.read(child.get(PLAN_FILE))


def choose_lever(
    ctx: RunContext, child: Program, parent: Program, plan: TrainingPlan
) -> tuple[Program, dict[str, Any]]:
    """The child as the run's levers allow it, and the record of the choice.

    Under any levers the meta agent's own changes to ``model/`` are undone (only the
    training stage writes a model); under ``weights`` so are its changes to any file that is
    not a meta file (the harness). Each undone path is recorded.
    """
    levers = parse_levers(ctx.config.levers)
    lever, reduced = plan.allowed(levers, can_train=TRAINER_FILE in child)
    undo = [p for p in parent.changed_paths(child) if p.startswith(MODEL_DIR)]
    if not lever.edits:
        undo += [
            p
            for p in parent.changed_paths(child)
            if not p.startswith(MODEL_DIR) and not ctx.task.is_meta_file(p)
        ]
    if undo:
        child = child.with_files({p: parent.get(p) for p in undo})
    record: dict[str, Any] = {
        "lever": lever.value,
        "chosen": plan.lever.value,
        "levers": levers.value,
        "plan": plan.summary(),
        "state": DUE if lever.trains else "none",
    }
    if reduced is not None:
        record["reduced"] = reduced
    if undo:
        record["undone"] = sorted(undo)
    return child, record


class Training:
    """Collects training data and runs a child's trainer (see the module).

    Args:
        ctx: The run context.
    """

    def __init__(self, ctx: RunContext) -> None:
        self._ctx = ctx
        self._guard: DataGuard | None = None
        self._checkpoints = CheckpointStore.of(ctx.storage)

    def due(self, variant: VariantRecord) -> bool:
        """Whether ``variant`` has a recorded program whose training is not recorded yet."""
        record = variant.metrics.get("training")
        return (
            variant.state is VariantState.RUNNING
            and variant.program_id is not None
            and isinstance(record, Mapping)
            and record.get("state") == DUE
        )

    def limits(self) -> TrainingLimits:
        """The stage's limits, from the run's config."""
        cfg = self._ctx.config.training
        return TrainingLimits(**{f.name: getattr(cfg, f.name) for f in fields(TrainingLimits)})

    def run(self, variant: VariantRecord) -> tuple[VariantRecord, float]:
        """Train ``variant`` (its training due) and record the outcome.

        Returns:
            The variant's record afterwards, and the seconds spent in the sandbox.

        Raises:
            SandboxError: The sandbox kept breaking (nothing is recorded: the step is due).
        """
        ctx = self._ctx
        assert variant.program_id is not None
        record = dict(variant.metrics["training"])
        info = record.get("plan") or {}
        plan = TrainingPlan(
            Lever(record["lever"]), tuple(info.get("sources", ())), dict(info.get("options", {}))
        )
        child = ctx.program(variant.program_id)
        examples, seconds = self.collect(variant, plan)
        ctx.check_budget(variant.id)  # a teacher refused for budget: the step stays due
        record["sources"] = dict(Counter(e.source for e in examples))
        record["examples"] = len(examples)
        if not examples:
            record.update(state="skipped", reason="no training examples")
            return self._record(variant, child, record, []), seconds
        outcome = self._train(variant, child, plan, examples, record)
        record.update(
            curve=[dict(p) for p in outcome.curve],
            trainer_metrics=dict(outcome.metrics),
            wall=outcome.wall,
            cpu=outcome.cpu,
            peak_memory_mb=outcome.peak_memory_mb,
        )
        seconds += outcome.wall
        if not outcome.ok:
            record.update(state="failed", reason=outcome.reason, log_tail=outcome.log[-2000:])
            ended = self._end(variant, record, VariantState.INVALID, outcome.reason, examples)
            return ended, seconds
        trained = with_model(child, outcome.model)
        record.update(state="done", model_files=sorted(model_files(trained)))
        return self._record(variant, trained, record, examples), seconds

    def _train(
        self,
        variant: VariantRecord,
        child: Program,
        plan: TrainingPlan,
        examples: list[Example],
        record: dict[str, Any],
    ) -> TrainingOutcome:
        """Run the child's trainer (again, after a sandbox failure), each time from the newest
        checkpoint of this same training when there is one (noted in ``record``). A resumed
        training that fails is run once more from the start: a checkpoint only saves time, it
        never decides the outcome."""
        ctx = self._ctx
        given = [e.for_trainer() for e in examples]
        seed = ctx.derive_seed(variant.generation, "train")
        key = training_key(str(variant.program_id), given, seed, plan.options)

        def attempt() -> TrainingOutcome:
            resume = self._checkpoints.load(ctx.run_id, variant.id, key)
            if resume is not None:
                record["resumed_from"] = resume[0]
                ctx.event(
                    "training.resumed",
                    f"training resumed from the checkpoint at step {resume[0]}",
                    variant.id,
                    step=resume[0],
                )
            return run_trainer(
                child,
                given,
                sandbox=ctx.sandbox,
                limits=self.limits(),
                seed=seed,
                options=plan.options,
                on_progress=_Progress(ctx, variant.id),
                resume=None if resume is None else resume[1],
                on_checkpoint=_Keeper(ctx, self._checkpoints, variant.id, key),
            )

        outcome = ctx.retry(attempt, f"training {variant.id}")
        if not outcome.ok and "resumed_from" in record:
            self._checkpoints.drop(ctx.run_id, variant.id)
            del record["resumed_from"]
            outcome = ctx.retry(attempt, f"training {variant.id} from the start")
        return outcome

    # -- data --------------------------------------------------------------------------------
    def guard(self) -> DataGuard:
        """The run's guard against val and test data (built once)."""
        if self._guard is None:
            self._guard = DataGuard(self._ctx.task)
        return self._guard

    def collect(self, variant: VariantRecord, plan: TrainingPlan) -> tuple[list[Example], float]:
        """The examples of the plan's sources, in source order, at most ``max_examples``
        (val and test data never), and the seconds spent in the sandbox for them."""
        ctx = self._ctx
        guard = self.guard()
        found: list[Example] = []
        seconds = 0.0
        for source in plan.sources:
            if source == "self":
                examples, spent = self._own_outputs(variant, guard)
                seconds += spent
                found += examples
            elif source == "task":
                found += task_examples(ctx.task, guard)
            elif source == "people":
                found += people_examples(self._labels_before(variant), guard)
            elif source == "teacher":
                found += self._teacher(variant, guard)
                taught, spent = self._teacher_program(variant, guard)
                found += taught
                seconds += spent
        return guard.keep(found)[: ctx.config.training.max_examples], seconds

    def _own_outputs(self, variant: VariantRecord, guard: DataGuard) -> tuple[list[Example], float]:
        """The ``self`` source: the parent's outputs the verifier accepts or, for a task
        without a verifier, the outputs the parent and its ancestors agree on by majority
        (their stored train outputs; only the parent is run for the instances it lacks)."""
        ctx = self._ctx
        outputs, spent = self._parent_outputs(variant)
        if ctx.task.has_verifier:
            return accepted_outputs(ctx.task, guard, outputs), spent
        ballots = [outputs]
        assert variant.parent_id is not None
        ancestor = ctx.terminal(variant.parent_id).parent_id
        while ancestor is not None and len(ballots) < ctx.config.training.voters:
            ballots.append(self._stored_outputs(ancestor))
            ancestor = ctx.terminal(ancestor).parent_id
        return voted_outputs(guard, ballots, quorum=ctx.config.training.quorum), spent

    def _stored_outputs(self, variant_id: int) -> dict[str, Any]:
        """A variant's outputs on the train instances its stored train evaluations hold."""
        outputs: dict[str, Any] = {}
        for evaluation in self._ctx.storage.list_evaluations(variant_id):
            if evaluation.split == Split.TRAIN.value and evaluation.stage in (
                "train",
                "train_subset",
            ):
                for result in evaluation.results:
                    if result.get("error") is None and isinstance(result.get("id"), str):
                        outputs.setdefault(result["id"], result.get("output"))
        return outputs

    def _parent_outputs(self, variant: VariantRecord) -> tuple[dict[str, Any], float]:
        """The parent's task agent's outputs on the train instances: those its stored train
        evaluations hold, the others by running it (once) in the sandbox."""
        ctx = self._ctx
        assert variant.parent_id is not None
        parent = ctx.terminal(variant.parent_id)
        outputs = self._stored_outputs(parent.id)
        missing = [i for i in ctx.instances(Split.TRAIN) if i.id not in outputs]
        if not missing or parent.program_id is None:
            return outputs, 0.0
        made, wall = self._answers(
            ctx.program(parent.program_id), missing, variant, ("task_agent", "solve", "train-data")
        )
        return {**made, **outputs}, wall

    def _answers(
        self,
        program: Program,
        instances: list[Instance],
        variant: VariantRecord,
        agent: tuple[str, str, str],
    ) -> tuple[dict[str, Any], float]:
        """What ``program``'s ``module.function`` (``agent``: module, function, and the
        purpose its LLM calls are recorded under) answers on ``instances`` in the sandbox (the
        answers without an error, by id), and the seconds it took."""
        ctx = self._ctx
        module, function, purpose = agent
        wall = ctx.task.instance_timeout * max(1, len(instances)) + ctx.config.eval_overhead
        run, by_id = ctx.retry(
            lambda: solve_in_sandbox(
                program,
                [(inst.id, inst.inputs) for inst in instances],
                instance_timeout=ctx.task.instance_timeout,
                sandbox=ctx.sandbox,
                limits=ctx.limits(wall),
                module=module,
                function=function,
                llm=ctx.llm_handler(variant.id, variant.generation, purpose),
            ),
            f"running {module}.{function} for {variant.id}",
        )
        answers = {key: m.get("output") for key, m in by_id.items() if not m.get("error")}
        return answers, run.wall

    def _labels_before(self, variant: VariantRecord) -> dict[str, Any]:
        """The labels people posted before ``variant`` was created (so a training redone
        after a crash sees the same)."""
        ctx = self._ctx
        created = ctx.storage.list_events(
            ctx.run_id, kinds=["variant.created"], variant_id=variant.id, limit=1
        )
        before = created[0].id if created else None
        return labels(ctx.storage, ctx.run_id, before_id=before)

    def _teacher(self, variant: VariantRecord, guard: DataGuard) -> list[Example]:
        """Train instances the run's model answers (recorded and counted by the gateway),
        kept when the verifier accepts the answer; none when the run has no model."""
        ctx = self._ctx
        handler = ctx.llm_handler(variant.id, variant.generation, "teacher")
        if handler is None:
            return []

        def ask(messages: list[dict[str, str]]) -> str | None:
            reply = handler({"messages": messages, "params": {}, "purpose": "label"})
            text = reply.get("text") if isinstance(reply, dict) else None
            return text if isinstance(text, str) else None

        limit = ctx.config.training.teacher_instances
        instances = list(ctx.instances(Split.TRAIN))[:limit]
        return teacher_examples(ctx.task, guard, instances, ask)

    def _teacher_program(
        self, variant: VariantRecord, guard: DataGuard
    ) -> tuple[list[Example], float]:
        """The child's own ``teacher.py`` answering train instances in the sandbox (its
        ``label(inputs)``), kept when the verifier accepts the answer; none without one."""
        ctx = self._ctx
        assert variant.program_id is not None
        program = ctx.program(variant.program_id)
        if TEACHER_FILE not in program:
            return [], 0.0
        instances = list(ctx.instances(Split.TRAIN))[: ctx.config.training.teacher_instances]
        agent = (TEACHER_FILE[:-3], "label", "teacher-program")
        outputs, wall = self._answers(program, instances, variant, agent)
        if not ctx.task.has_verifier:
            return unverified_outputs(guard, outputs, source="teacher-program"), wall
        return accepted_outputs(ctx.task, guard, outputs, source="teacher-program"), wall

    # -- records -------------------------------------------------------------------------------
    def _record(
        self,
        variant: VariantRecord,
        program: Program,
        record: dict[str, Any],
        examples: list[Example],
    ) -> VariantRecord:
        """Record the trained (or skipped) child: its program, the examples, the record (a
        child left the same as its parent fails, as any child without a change)."""
        ctx = self._ctx
        assert variant.parent_id is not None
        parent = ctx.terminal(variant.parent_id)
        assert parent.program_id is not None
        if not ctx.program(parent.program_id).changed_paths(program):
            why = record.get("reason") or "the trainer wrote the parent's model again"
            reason = f"no change: the meta agent changed no code, and {why}"
            return self._end(variant, record, VariantState.FAILED, reason, examples)
        counts = record.get("sources", {})
        message = (
            f"trained on {len(examples)} examples ({_counts(counts)})"
            if record["state"] == "done"
            else f"training skipped: {record.get('reason', '')}"
        )
        data = {"examples": [e.record() for e in examples], "sources": counts}

        def write() -> str:
            program_id = ctx.storage.put_program(program)
            ctx.storage.update_variant_metrics(variant.id, {"training": record})
            ctx.storage.set_variant_program(
                variant.id,
                program_id,
                event=EventSpec("variant.trained", message, data),
                **ctx.stamp(),
            )
            return program_id

        program_id = ctx.storage.atomically(write)
        self._checkpoints.drop(ctx.run_id, variant.id)
        ctx.remember_program(program_id, program)
        metrics = {**variant.metrics, "training": record}
        return replace(variant, program_id=program_id, metrics=metrics)

    def _end(
        self,
        variant: VariantRecord,
        record: dict[str, Any],
        state: VariantState,
        reason: str,
        examples: list[Example],
    ) -> VariantRecord:
        """End a child in ``state`` (``INVALID``: its training failed; ``FAILED``: it is left
        without a change) with the reason, its training record and the examples it was given."""
        storage = self._ctx.storage
        kind = "variant.invalid" if state is VariantState.INVALID else "variant.failed"

        def write() -> VariantRecord:
            storage.update_variant_metrics(variant.id, {"training": record})
            storage.set_variant_state(
                variant.id,
                state,
                expected=VariantState.RUNNING,
                reason=reason,
                release=True,
                event=EventSpec(
                    kind,
                    reason,
                    {"stage": "training", "examples": [e.record() for e in examples]},
                ),
            )
            return storage.get_variant(variant.id)

        ended = storage.atomically(write)
        self._checkpoints.drop(self._ctx.run_id, variant.id)
        return ended


class _Progress:
    """Records a training's progress points as ``training.progress`` events as they come, at
    most one every :attr:`INTERVAL` seconds (the whole curve is recorded with the outcome),
    each with the attempt it belongs to (a training redone after a crash starts a new one)."""

    INTERVAL = 0.5

    def __init__(self, ctx: RunContext, variant_id: int) -> None:
        self._ctx, self._variant_id = ctx, variant_id
        self._attempt = uuid.uuid4().hex[:12]
        self._last: float | None = None

    def __call__(self, point: Mapping[str, float]) -> None:
        now = time.monotonic()
        if self._last is not None and now - self._last < self.INTERVAL:
            return
        self._last = now
        step, loss = int(point["step"]), float(point["loss"])
        self._ctx.event(
            "training.progress",
            f"step {step}: loss {loss:.6g}",
            self._variant_id,
            step=step,
            loss=loss,
            attempt=self._attempt,
        )


class _Keeper:
    """Keeps each checkpoint a training writes as the newest of its child (a
    ``training.checkpoint`` event each); one that cannot be kept is only logged."""

    def __init__(self, ctx: RunContext, store: CheckpointStore, variant_id: int, key: str) -> None:
        self._ctx, self._store, self._variant_id, self._key = ctx, store, variant_id, key

    def __call__(self, step: int, files: dict[str, bytes]) -> None:
        try:
            self._store.save(self._ctx.run_id, self._variant_id, self._key, step, files)
        except StorageError as exc:
            logger.warning("checkpoint of variant %s not kept: %s", self._variant_id, exc)
            return
        size = sum(len(data) for data in files.values())
        self._ctx.event(
            "training.checkpoint",
            f"checkpoint at step {step} ({size} bytes)",
            self._variant_id,
            step=step,
            bytes=size,
        )


def live_curve(storage: BaseStorage, variant: VariantRecord) -> list[dict[str, Any]]:
    """The progress points the latest training attempt of ``variant`` has reported."""
    events = storage.list_events(variant.run_id, kinds=["training.progress"], variant_id=variant.id)
    latest = events[-1].data.get("attempt") if events else None
    return [
        {"step": e.data["step"], "loss": e.data["loss"]}
        for e in events
        if e.data.get("attempt") == latest and "step" in e.data and "loss" in e.data
    ]


def _counts(counts: Mapping[str, int]) -> str:
    """``self 12, task 4``."""
    return ", ".join(f"{source} {n}" for source, n in counts.items()) or "none"


def training_summary(
    variant: VariantRecord, program: Program | None, storage: BaseStorage | None = None
) -> dict[str, Any] | None:
    """What a person sees of a variant's lever and training: the lever chosen and taken (and
    why it was reduced), the training's state and reason, the examples per source, the loss
    curve and the model's files with their sizes (None: the variant made no choice, the seed
    or a baseline's child). While the training runs (``due``), the curve is the points its
    latest attempt has reported so far (``training.progress`` events; given ``storage``)."""
    record = variant.metrics.get("training")
    if not isinstance(record, Mapping):
        return None
    if record.get("state") == DUE and storage is not None:
        record = {**record, "curve": live_curve(storage, variant)}
    keys = ("lever", "chosen", "levers", "reduced", "undone", "state", "reason", "examples")
    summary: dict[str, Any] = {k: record[k] for k in keys if k in record}
    summary["sources"] = dict(record.get("sources") or {})
    summary["curve"] = [dict(p) for p in record.get("curve") or []]
    summary["metrics"] = dict(record.get("trainer_metrics") or {})
    files = model_files(program) if program is not None else {}
    summary["model"] = [{"path": MODEL_DIR + n, "size": len(d)} for n, d in sorted(files.items())]
    return summary
