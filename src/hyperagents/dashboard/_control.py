"""What the dashboard does, as opposed to what it shows: start, resume, stop and delete runs,
and try a task agent on an input.

Runs are driven by engine processes of their own (``hyperagents resume``), started in a new
session: they keep going when the dashboard stops, and the dashboard never runs agent code.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hyperagents import runs
from hyperagents.evaluation import solve_in_sandbox
from hyperagents.exceptions import ConfigError, RunStateError
from hyperagents.runs import Mode, Run, RunConfig, check_no_engine, request_stop
from hyperagents.sandbox import Limits, Outcome, get_sandbox, task_locations
from hyperagents.storages import (
    STORAGE_ENV_VAR,
    BaseStorage,
    RunRecord,
    RunStatus,
    VariantRecord,
)

__all__ = ["EngineLauncher", "StartSpec", "delete_run", "request_stop", "try_variant"]
# request_stop lives in hyperagents.runs (the CLI stops runs too); re-exported for the app.

logger = logging.getLogger(__name__)

#: Seconds a freshly started engine is watched for an immediate failure (a bad option, a task
#: that does not load…), which is then reported to the person who asked.
_STARTUP_WATCH = 1.5
#: Environment variables an engine process must not inherit.
_PRIVATE_ENV = ("HYPERAGENTS_DASHBOARD_TOKEN",)
_NOT_SHARED = (
    "this dashboard's storage lives in its own process: runs cannot be driven from here "
    "(start the dashboard with --storage sqlite:///FILE or a PostgreSQL URL)"
)


@dataclass
class _Engine:
    run: str
    process: subprocess.Popen[bytes]
    log: Path
    started: float = field(default_factory=time.time)


class EngineLauncher:
    """Starts ``hyperagents resume`` processes against the dashboard's storage URL."""

    def __init__(self, storage_url: str | None, log_dir: Path | None = None) -> None:
        self._url = storage_url
        self._log_dir = log_dir
        self._engines: list[_Engine] = []
        self._lock = threading.Lock()

    @property
    def available(self) -> bool:
        """Whether runs can be driven: another process can open the storage."""
        url = self._url
        if url is None or url == "memory" or ":memory:" in url:
            return False
        return not (url.startswith("sqlite") and url.split("?")[0].rstrip("/").endswith(":"))

    def _logs(self) -> Path:
        if self._log_dir is None:
            self._log_dir = Path(tempfile.mkdtemp(prefix="hyperagents-dashboard-"))
        self._log_dir.mkdir(parents=True, exist_ok=True)
        return self._log_dir

    def launch(self, run: RunRecord, *, generations: int | None, workers: int | None) -> int:
        """Start an engine driving ``run``; return its process id.

        Raises:
            RunStateError: The storage is not shared with other processes, or the engine
                failed at once (its error message is given).
        """
        if not self.available:
            raise RunStateError(_NOT_SHARED)
        assert self._url is not None
        # The storage URL travels in the environment: a password in it stays out of ``ps``.
        command = [sys.executable, "-m", "hyperagents", "resume", "-q"]
        if generations is not None:
            command += ["--generations", str(generations)]
        if workers is not None:
            command += ["--workers", str(workers)]
        command += ["--", run.name]  # the name (unique), never taken for an option
        env = {k: v for k, v in os.environ.items() if k not in _PRIVATE_ENV}
        env[STORAGE_ENV_VAR] = self._url
        log = self._logs() / f"run-{run.id}-{time.strftime('%Y%m%d-%H%M%S')}.log"
        with open(log, "wb") as sink:
            process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=sink,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,  # outlives the dashboard, and its Ctrl-C
                close_fds=True,
            )
        engine = _Engine(run.name, process, log)
        with self._lock:
            self._engines.append(engine)
        threading.Thread(target=process.wait, name="hyperagents-engine-reaper", daemon=True).start()
        try:
            code = process.wait(timeout=_STARTUP_WATCH)
        except subprocess.TimeoutExpired:
            return process.pid
        if code != 0:
            said = _last_error(log)
            raise RunStateError(f"the engine for {run.name!r} stopped at once: {said}")
        return process.pid

    def running(self) -> list[dict[str, Any]]:
        """Engines started by this dashboard that still run."""
        with self._lock:
            self._engines = [e for e in self._engines if e.process.poll() is None]
            return [
                {"run": e.run, "pid": e.process.pid, "started": e.started, "log": str(e.log)}
                for e in self._engines
            ]


def _last_error(log: Path) -> str:
    try:
        lines = log.read_text(encoding="utf-8", errors="replace").strip().splitlines()
    except OSError:
        return "no output"
    for line in reversed(lines):
        if line.strip().startswith("error:"):
            return line.strip()[len("error:") :].strip()
    return lines[-1].strip()[:500] if lines else "no output"


@dataclass(frozen=True)
class StartSpec:
    """A new run, as the dashboard's form describes it."""

    task: str
    mode: str = Mode.HYPERAGENT.value
    generations: int = 30
    seed: int = 0
    name: str | None = None
    workers: int = 1
    sandbox: str | None = None
    llm: str | None = None
    max_cost: float | None = None
    max_tokens: int | None = None
    meta: str | None = None


def start_run(
    store: BaseStorage, launcher: EngineLauncher, spec: StartSpec, *, token_protected: bool = False
) -> RunRecord:
    """Create a run (checked here, so a mistake is reported at once) and start its engine.

    Only registered tasks (built-in or installed plugins) may be started: a task given as a
    file path would import code from wherever the dashboard's user pointed. The engine runs
    with the operator's environment (API keys) and network, so without a token (where any local
    user can ask) only a model the operator set up may be named (see :func:`_check_web_llm`).

    Args:
        store: The dashboard's storage.
        launcher: Starts the engine.
        spec: The run.
        token_protected: The dashboard requires its token (so the request carried it).

    Raises:
        ConfigError: An unknown task, mode or option.
        DuplicateError: The name is taken.
        RunStateError: The engine could not be started.
    """
    from hyperagents.tasks import list_tasks

    known = {info.name for info in list_tasks()}
    if spec.task not in known:
        raise ConfigError(f"unknown task {spec.task!r}; choose one of: {', '.join(sorted(known))}")
    if spec.sandbox not in (None, "auto", "bwrap"):
        raise ConfigError("runs started from the dashboard use the sandbox auto or bwrap")
    if spec.llm is not None:
        _check_web_llm(spec.llm, token_protected=token_protected)
    if not launcher.available:
        raise RunStateError(_NOT_SHARED)
    config = RunConfig.parse(
        {},
        sandbox=spec.sandbox,
        parallel_generations=spec.workers if spec.workers > 1 else None,
        llm=spec.llm,
        max_cost=spec.max_cost,
        max_tokens=spec.max_tokens,
        meta_agent=spec.meta,
    )
    the_run = Run.create(
        task=spec.task,
        name=spec.name,
        mode=spec.mode,
        seed=spec.seed,
        storage=store,
        config=config,
        attrs={"started_from": "dashboard"},
        generations=spec.generations,  # stored with the run: the engine resumes to it
    )
    record = the_run.record()
    try:
        launcher.launch(record, generations=None, workers=spec.workers)
    except RunStateError:
        if not store.list_variants(record.id):  # nothing done: no run left behind
            store.delete_run(record.id)
        raise
    return store.get_run(record.id)


def _check_web_llm(text: str, *, token_protected: bool) -> None:
    """Models a browser may ask for: a hosted or HTTP server model, or the bundled local one;
    never a file (``scripted:FILE`` or ``local:FILE`` would read the dashboard host's files).
    Without a token, a server URL only when the operator listed it in
    ``$HYPERAGENTS_LLM_API_KEY_URLS``: another local user must not point the operator's engine
    (its keys, its network, the task's data in the prompts) at a server of theirs.

    Raises:
        ConfigError: A file-backed or malformed spec, or a server the operator did not set up
            asked for without a token.
    """
    from hyperagents.llm._spec import COMPATIBLE_KEY_ENV, parse_provider_spec

    parsed = parse_provider_spec(text)
    if parsed.kind == "scripted" or (parsed.kind == "local" and parsed.model is not None):
        raise ConfigError(
            "runs started from the dashboard cannot read model or script files: use a "
            "server (openai:MODEL, http://HOST/v1#MODEL, anthropic:MODEL) or the bundled local"
        )
    if not token_protected and not parsed.operator_configured():
        raise ConfigError(
            "this dashboard has no token, so runs started here may use only a model server the "
            f"operator set up (listed in ${COMPATIBLE_KEY_ENV}_URLS, or openai:/anthropic:): "
            "start the dashboard with --token to name another server"
        )


def resume_run(
    store: BaseStorage,
    launcher: EngineLauncher,
    record: RunRecord,
    *,
    generations: int | None,
    workers: int | None,
) -> None:
    """Start an engine that continues ``record`` (adding ``generations`` to its target).

    Raises:
        RunStateError: An engine drives it (running, or finishing its work after a stop), or
            it is complete and no generations were added.
    """
    check_no_engine(record, action="resume")
    if record.status is RunStatus.COMPLETE and not generations:
        raise RunStateError(
            f"run {record.name!r} reached its target: give generations to add to it"
        )
    launcher.launch(record, generations=generations, workers=workers)


def delete_run(store: BaseStorage, record: RunRecord, *, confirm: str) -> None:
    """Delete a run with everything recorded about it, once its name is typed to confirm
    (:func:`hyperagents.runs.delete_run`, as the command line's ``delete`` does).

    Raises:
        ConfigError: ``confirm`` is not the run's name.
        RunStateError: An engine drives it (stop it first, and let it finish).
    """
    if confirm != record.name:
        raise ConfigError(f"type the run's name ({record.name!r}) to confirm deleting it")
    runs.delete_run(store, record)


# -- try it -----------------------------------------------------------------------------------
_TRY_SLOTS = threading.BoundedSemaphore(2)
#: Largest input accepted by "try it" (bytes of JSON).
TRY_INPUT_LIMIT = 256 * 1024


def try_example(record: RunRecord) -> dict[str, Any]:
    """What "try it" offers to start from: the first train instance's inputs (never a label)."""
    from hyperagents.tasks import Split, load_task

    task = load_task(record.task)
    instances = task.instances(Split.TRAIN)
    return {
        "task": task.name or record.task,
        "description": task.description,
        "instance_timeout": task.instance_timeout,
        "example": instances[0].inputs if instances else None,
    }


def try_variant(
    store: BaseStorage, record: RunRecord, variant: VariantRecord, inputs: Any
) -> dict[str, Any]:
    """Run the variant's task agent on ``inputs`` in the run's sandbox (no labels, no scoring,
    no model: ``llm.complete`` fails inside, as it does for a run without one).

    Raises:
        RunStateError: The variant has no program, or two tries are running already.
        ConfigError: The input is too large.
    """
    from hyperagents.tasks import load_task

    if variant.program_id is None:
        raise RunStateError(f"variant {variant.id} has no program ({variant.state.name.lower()})")
    if len(json.dumps(inputs)) > TRY_INPUT_LIMIT:
        raise ConfigError(f"the input is larger than {TRY_INPUT_LIMIT // 1024} KiB")
    task = load_task(record.task)
    config = RunConfig.parse(dict(record.config))
    program = store.get_program(variant.program_id)
    if not _TRY_SLOTS.acquire(blocking=False):
        raise RunStateError("two tries are running already: wait for one to finish")
    try:
        sandbox = get_sandbox(
            config.sandbox,
            preload=tuple(task.sandbox_preload),
            hide=task_locations(task),
            memory_mb=config.memory_mb,
        )
        limits = Limits(wall_time=task.instance_timeout + 15.0, memory_mb=config.memory_mb)
        try:
            result, answered = solve_in_sandbox(
                program,
                [("try", inputs)],
                instance_timeout=task.instance_timeout,
                sandbox=sandbox,
                limits=limits,
            )
        finally:
            close = getattr(sandbox, "close", None)
            if callable(close):
                close()
    finally:
        _TRY_SLOTS.release()
    message = answered.get("try")
    error = None
    if message is None:
        error = result.reason or "no output"
    elif message.get("error"):
        error = str(message["error"])
    return {
        "ok": result.outcome is Outcome.OK and error is None,
        "outcome": result.outcome.name.lower(),
        "output": None if message is None else message.get("output"),
        "error": error,
        "stdout": result.stdout[-20_000:],
        "stderr": result.stderr[-20_000:],
        "wall": result.wall,
        "sandbox": getattr(sandbox, "name", "?"),
    }
