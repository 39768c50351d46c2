"""Task folders in the seed format, run as they are: ``hyperagents run --task path/to/folder``.

A folder holds ``config.py`` (``TASK_NAME``, ``METRIC_NAME``, ``HIGHER_IS_BETTER``, optional
``PERFECT_SCORE``, ``PROMPT_TEMPLATE`` or ``build_prompt(...)``, ``USES_LLM_JUDGE``,
``USES_RUBRIC``), ``initial_solution.py`` (the code being improved) and ``benchmark.py``, run
as ``python benchmark.py SOLUTION_PATH``, which prints a line ``metric:VALUE`` (or
``answers: JSON`` for a judged task). Any other file of the folder is the benchmark's data.

Trust
-----
``config.py`` and ``benchmark.py`` are the task's code: trusted, like a task plug-in.
``initial_solution.py`` and every edited solution are not. ``config.py`` is imported in the
engine (when the task is loaded). The benchmark executes the solution, so it runs in a sandbox
(:mod:`hyperagents.tasks._folder_bench`), and its metric must not be forgeable by the solution:

* the solution never runs in the benchmark's process: the benchmark imports a *proxy* and the
  solution runs in a second process; only plain data of exact built-in types crosses back
  (an ``int`` subclass whose ``__eq__`` says yes to everything arrives as an opaque handle);
* the metric is read from the benchmark's ``sys.stdout``, replaced by an in-memory buffer: the
  solution's ``print``, its writes to ``/dev/stdout``, ``os.write(1, ...)`` and any patching
  of ``print``/``sys.stdout`` happen in its own process, whose output goes to a file (its
  tail is feedback);
* the benchmark's process makes itself non-dumpable before the solution starts, so the
  solution cannot open its ``/proc/PID/fd``, read or write its memory or trace it (the
  sandbox's system-call filter forbids ``ptrace`` in any case);
* the verdict travels back signed (HMAC-SHA256) with a key made per benchmark run, which only
  the engine and the benchmark process's memory hold: a message the solution writes into the
  harness's result channel (from any process that can reach it) does not verify, and the
  candidate scores as failed.

What it does not guarantee: the solution shares the sandbox's user and files with the
benchmark, so it can *read* the benchmark's data (the seed format has no hidden labels), kill
the benchmark (a failure of the candidate), and change files the benchmark reads *after* it
started (a benchmark that loads its data at start, as usual, is not affected). A benchmark
that echoes the solution's text after its own ``metric:`` line could be misled (the last
``metric:`` line counts). Objects of the benchmark's own classes cannot be passed to the
solution (plain data only: the benchmark gets a clear ``TypeError``).

Program shape
-------------
The seed program is ``solution.py`` (``initial_solution.py`` unchanged), a ``task_agent.py``
that hands the solution's files to the benchmark (its ``solve`` returns them; this task's
trusted :meth:`FolderTask.score` runs the benchmark on them) and the offline meta agent. With
``--meta llm`` the LLM meta agent edits ``solution.py`` with the task's prompt
(``PROMPT_TEMPLATE`` or ``build_prompt()``) as the task description. The offline meta agent
tunes only ``PARAMS`` declared in ``task_agent.py``: a seed-format solution has none, so each
of its generations changes nothing and is recorded as a failed improvement ("no change"): the
run ends with the seed as champion, and says so. Use ``--meta llm`` for these folders.

Splits and scores
-----------------
The format has one benchmark, so ``train``, ``val`` and ``test`` are the *same* single
instance: the benchmark's score. There is no held-out data; ``describe()`` says so, as does
the task's description shown with every run. The benchmark runs once per distinct solution
(the result is cached by content), so val and test report the same run.
``HIGHER_IS_BETTER = False`` is minimised: the engine maximises ``score = -metric``; the
feedback and the CLI's ``task`` summary show the metric as printed. ``PERFECT_SCORE`` stops
the run once the champion reaches it (:attr:`Task.target_score`). Metrics are unbounded
unless the options ``metric_min``/``metric_max`` bound them; a failed benchmark (the solution
crashed, hung past ``timeout``, or no ``metric:`` line) scores the floor of the range
(``-1e12`` for an unbounded metric, shown with the reason), so the pruner stops such a child on
its first stage: kept, never a parent, and the run goes on. A solution that does not compile
is an invalid child (the engine's validation compiles every file).

Judged folders (``USES_LLM_JUDGE = True``, printing ``answers: JSON``) are scored by the run's
LLM as a judge in the engine, against the ``RUBRIC`` of their ``config.py``: see
:mod:`hyperagents.tasks._folder_judged`. A run of one needs a model (``--llm``).
"""

from __future__ import annotations

import hashlib
import hmac
import importlib.resources
import inspect
import json
import math
import secrets
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any, ClassVar

from hyperagents._modules import import_file
from hyperagents.exceptions import TaskError, TaskNotFoundError
from hyperagents.program import Program
from hyperagents.sandbox import Limits, Sandbox, get_sandbox, workspace
from hyperagents.tasks._base import Instance, Score, Split, Task
from hyperagents.tasks._folder_shim import SHIM_SOURCE
from hyperagents.tasks._seeds import offline_meta_agent

__all__ = ["REQUIRED_FILES", "FolderTask", "folder_task_class", "is_task_folder"]

REQUIRED_FILES = ("config.py", "initial_solution.py", "benchmark.py")
#: The floor and ceiling of an unbounded metric's score (the engine needs finite scores).
UNBOUNDED = 1e12
#: The solution's name in the program and in the benchmark's workspace.
SOLUTION_FILE = "solution.py"
_BENCH_MODULE = "_hyperagents_bench"
_MAX_FOLDER_BYTES = 64 * 1024 * 1024
_CACHE_SIZE = 64


def is_task_folder(spec: str) -> bool:
    """Whether ``spec`` names a directory (a seed-format task folder, complete or not)."""
    try:
        return Path(spec).expanduser().is_dir()
    except (OSError, ValueError):
        return False


def _config(folder: Path) -> Any:
    missing = [name for name in REQUIRED_FILES if not (folder / name).is_file()]
    if missing:
        raise TaskNotFoundError(
            f"task folder {folder} lacks {', '.join(missing)} (a seed-format folder holds "
            f"{', '.join(REQUIRED_FILES)})"
        )
    try:
        return import_file(folder / "config.py", "_hyperagents_folder_config_")
    except Exception as exc:
        raise TaskError(f"{folder / 'config.py'} failed to import: {exc!r}") from exc


def _setting(
    config: Any, name: str, kind: type | tuple[type, ...], folder: Path, default: Any = ...
) -> Any:
    """The setting ``name`` of ``config.py``, checked to be a ``kind``."""
    value = getattr(config, name, default)
    if value is ...:
        raise TaskError(f"{folder / 'config.py'} does not define {name}")
    if value is not None and (
        not isinstance(value, kind) or isinstance(value, bool) != (kind is bool)
    ):
        raise TaskError(f"{folder / 'config.py'}: {name} has a wrong type: {value!r}")
    return value


def _prompt(config: Any, folder: Path, metric: str) -> str:
    """The task's prompt: ``PROMPT_TEMPLATE``, or ``build_prompt()`` called with what is known."""
    template = getattr(config, "PROMPT_TEMPLATE", None)
    if isinstance(template, str):
        return template
    build = getattr(config, "build_prompt", None)
    if not callable(build):
        return ""
    known = {"metric_name": metric, "task_name": getattr(config, "TASK_NAME", "")}
    known.update(code=(folder / "initial_solution.py").read_text("utf-8"), history="")
    known.update(solution=known["code"], current_code=known["code"], feedback="")
    try:
        params = inspect.signature(build).parameters
        text = build(**{k: v for k, v in known.items() if k in params})
    except Exception as exc:
        raise TaskError(f"{folder / 'config.py'}: build_prompt() failed: {exc!r}") from exc
    return str(text)


def folder_task_class(path: str) -> type[FolderTask]:
    """A :class:`FolderTask` subclass for the folder at ``path`` (its config read now).

    Raises:
        TaskNotFoundError: A required file is missing (the message names it).
        TaskError: ``config.py`` fails to import, lacks a setting, or (a judged folder) has a
            malformed ``RUBRIC``.
    """
    folder = Path(path).expanduser().resolve()
    config = _config(folder)
    name = _setting(config, "TASK_NAME", str, folder)
    metric = _setting(config, "METRIC_NAME", str, folder)
    higher = _setting(config, "HIGHER_IS_BETTER", bool, folder)
    perfect = _setting(config, "PERFECT_SCORE", (int, float), folder, None)
    judged = bool(getattr(config, "USES_LLM_JUDGE", False))
    direction = "higher is better" if higher else "lower is better: the score is -metric"
    if judged:
        direction = "judged by the run's LLM against the folder's rubric, 0..1; needs --llm"
        higher = True
    description = (
        f"Seed-format task folder {folder.name} ({name}): improve solution.py, scored by the "
        f"folder's benchmark.py as {metric} ({direction}). One benchmark only: train, val and "
        "test are the same benchmark run (no held-out data)."
    )
    prompt = _prompt(config, folder, metric)
    attrs: dict[str, Any] = {
        "__module__": __name__,
        "name": name,
        "description": f"{description}\n\n{prompt}".strip(),
        "folder": folder,
        "metric_name": metric,
        "higher_is_better": higher,
        "target_score": None if perfect is None else float(perfect if higher else -perfect),
    }
    if judged:
        # Imported here: the judged folder task is a FolderTask (its module imports this one).
        from hyperagents.tasks._folder_judged import JudgedFolderTask, judged_settings

        attrs["judged"] = judged_settings(config, folder, prompt)
        return type(f"JudgedFolderTask[{name}]", (JudgedFolderTask,), attrs)
    return type(f"FolderTask[{name}]", (FolderTask,), attrs)


class FolderTask(Task):
    """A seed-format task folder (see the module docstring); made by :func:`folder_task_class`.

    Options: ``timeout`` (seconds one benchmark run may take), ``memory_mb`` (its memory
    limit), ``metric_min``/``metric_max`` (bounds of the metric, when it has them),
    ``sandbox`` (where the benchmark runs: ``auto``, ``bwrap`` or ``process``).
    """

    folder: ClassVar[Path] = Path()
    metric_name: ClassVar[str] = "metric"
    higher_is_better: ClassVar[bool] = True
    instance_timeout: ClassVar[float] = 30.0
    entry_points: ClassVar[dict[str, tuple[str, ...]]] = {
        "task_agent.py": ("solve",),
        "meta_agent.py": ("improve",),
    }

    def __init__(
        self,
        *,
        timeout: float = 120.0,
        memory_mb: int = 2048,
        metric_min: float | None = None,
        metric_max: float | None = None,
        sandbox: str = "auto",
    ) -> None:
        if not (math.isfinite(timeout) and timeout > 0):
            raise TaskError(f"timeout must be a positive number of seconds, not {timeout!r}")
        self.timeout, self.memory_mb, self.sandbox_name = float(timeout), int(memory_mb), sandbox
        low = -UNBOUNDED if metric_min is None else float(metric_min)
        high = UNBOUNDED if metric_max is None else float(metric_max)
        if not low < high:
            raise TaskError(f"metric_min {low} must be below metric_max {high}")
        self.score_range = (low, high) if self.higher_is_better else (-high, -low)  # type: ignore[misc]
        self.hidden_paths = (str(self.folder),)
        self._sandbox: Sandbox | None = None
        self._cache: OrderedDict[str, Score] = OrderedDict()
        self._lock = threading.Lock()

    def instances(self, split: Split) -> list[Instance]:
        """One instance per split, the same benchmark (no held-out data)."""
        return [Instance(f"{Split(split).value}-benchmark", {})]

    def seed_program(self) -> Program:
        """``solution.py`` (the folder's ``initial_solution.py``), the hand-over
        ``task_agent.py`` and the offline meta agent."""
        solution = (self.folder / "initial_solution.py").read_bytes()
        return Program(
            {SOLUTION_FILE: solution, "task_agent.py": SHIM_SOURCE, **offline_meta_agent()}
        )

    def describe(self) -> dict[str, Any]:
        """The base summary, with the metric, its direction and the splits' nature."""
        info = super().describe()
        info.update(
            metric=self.metric_name,
            higher_is_better=self.higher_is_better,
            folder=str(self.folder),
            splits_note="train, val and test are the same benchmark run (no held-out data)",
        )
        return info

    def metric_of(self, score: float) -> float:
        """The metric as the benchmark printed it, from an engine score."""
        return score if self.higher_is_better else -score

    def score(self, instance: Instance, output: Any) -> Score:
        """Run the benchmark on the solution files ``output`` holds (cached by content)."""
        files = _solution_files(output)
        if isinstance(files, str):
            return self._floor(files)
        key = hashlib.sha256(json.dumps(files, sort_keys=True).encode("utf-8")).hexdigest()
        with self._lock:
            cached = self._cache.get(key)
        if cached is not None:
            return cached
        verdict = self._run_benchmark(files)
        with self._lock:
            self._cache[key] = verdict
            while len(self._cache) > _CACHE_SIZE:
                self._cache.popitem(last=False)
        return verdict

    def _floor(self, reason: str) -> Score:
        return Score(self.score_range[0], f"benchmark failed: {reason}"[:2000])

    def _sandbox_for_benchmarks(self) -> Sandbox:
        with self._lock:
            if self._sandbox is None:
                self._sandbox = get_sandbox(
                    self.sandbox_name, hide=self.hidden_paths, memory_mb=self.memory_mb
                )
            return self._sandbox

    def _run_benchmark(self, files: dict[str, str]) -> Score:
        """One benchmark run in the sandbox; its signed verdict, checked."""
        key = secrets.token_hex(32)
        inputs = {"key": key, "benchmark": "benchmark.py", "solution": SOLUTION_FILE}
        request = {
            "action": "solve",
            "module": _BENCH_MODULE,
            "function": "run",
            "instance_timeout": self.timeout,
            "instances": [{"id": "benchmark", "inputs": inputs}],
        }
        limits = Limits(wall_time=self.timeout + 15.0, memory_mb=self.memory_mb)
        with workspace(self._bench_program(files)) as path:
            result = self._sandbox_for_benchmarks().run(path, request, limits=limits)
        for message in result.messages:
            if message.get("type") != "instance" or message.get("id") != "benchmark":
                continue
            verified = _verified(message, key)
            if verified is not None:
                return self._verdict(verified)
            if message.get("error"):
                return self._floor(str(message["error"]))
        return self._floor(result.reason or "the benchmark sent no verified result")

    def _bench_program(self, files: dict[str, str]) -> Program:
        """The benchmark's workspace: the folder (but its initial solution), the runner and
        the candidate's files under ``_hyperagents_candidate/``."""
        tree: dict[str, bytes | str] = {}
        total = 0
        for path in sorted(self.folder.rglob("*")):
            relative = path.relative_to(self.folder).as_posix()
            if not path.is_file() or "__pycache__" in relative or relative == "initial_solution.py":
                continue
            total += path.stat().st_size
            if total > _MAX_FOLDER_BYTES:
                raise TaskError(f"task folder {self.folder} holds more than 64 MiB")
            tree[relative] = path.read_bytes()
        runner = importlib.resources.files("hyperagents.tasks").joinpath("_folder_bench.py")
        tree[f"{_BENCH_MODULE}.py"] = runner.read_text("utf-8")
        tree.update({f"_hyperagents_candidate/{name}": text for name, text in files.items()})
        return Program(tree)

    def _verdict(self, result: dict[str, Any]) -> Score:
        """The score of a verified benchmark result (floor with the reason when it failed)."""
        tail = str(result.get("tail", ""))[-1500:]
        if result.get("error") or result.get("exit"):
            problem = result.get("error") or f"benchmark.py exited with {result.get('exit')}"
            output = str(result.get("solution_output", ""))[-800:]
            return self._floor(f"{problem}\nthe solution's output: {output}")
        raw = result.get("metric")
        if raw is None:
            return self._floor(f"benchmark.py printed no 'metric:' line; its output:\n{tail}")
        try:
            metric = float(raw)
        except ValueError:
            return self._floor(f"benchmark.py printed metric {str(raw)[:80]!r}, not a number")
        if not math.isfinite(metric):
            return self._floor(f"benchmark.py printed a non-finite metric {metric!r}")
        low, high = self.score_range
        value = min(max(metric if self.higher_is_better else -metric, low), high)
        note = "" if result.get("private") else " (the benchmark could not hide its process)"
        output = str(result.get("solution_output", ""))[-500:]
        shown = f"\nthe solution's output: {output}" if output else ""
        return Score(value, f"{self.metric_name} = {metric:.10g}{note}\n{tail}{shown}")


def _solution_files(output: Any) -> dict[str, str] | str:
    """The solution files ``task_agent.solve`` handed over, or why they are malformed."""
    if not isinstance(output, dict) or not isinstance(output.get(SOLUTION_FILE), str):
        return f"task_agent.solve returned no {SOLUTION_FILE} source: {repr(output)[:120]}"
    files = {k: v for k, v in output.items() if isinstance(k, str) and isinstance(v, str)}
    if len(files) != len(output) or sum(len(v) for v in files.values()) > 8_000_000:
        return "task_agent.solve returned malformed or oversized files"
    for name in files:
        if not name.endswith(".py") or "/" in name or name.startswith("."):
            return f"task_agent.solve returned an unexpected file name {name[:80]!r}"
    return files


def _verified(message: dict[str, Any], key: str) -> dict[str, Any] | None:
    """The benchmark's result if ``message`` carries it with a valid signature."""
    output = message.get("output")
    if not isinstance(output, dict):
        return None
    payload, mac = output.get("payload"), output.get("mac")
    if not isinstance(payload, str) or not isinstance(mac, str):
        return None
    expected = hmac.new(bytes.fromhex(key), payload.encode("utf-8"), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, mac):
        return None
    try:
        result = json.loads(payload)
    except ValueError:
        return None
    return result if isinstance(result, dict) else None
