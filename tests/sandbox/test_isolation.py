"""Nothing leaks (issue 12): task plug-ins' files are hidden, the process sandbox never runs agent
code as root unasked, files in the sandbox's tmpfs stay within the memory limit, agent code
cannot make namespaces or mounts, and an entry module cannot be shadowed.

Every case runs a real program through a real sandbox (both, where both apply).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import logging
import os
import py_compile
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hyperagents.exceptions import ConfigError, SandboxError
from hyperagents.sandbox import (
    UNSAFE_PROCESS_SANDBOX_ENV,
    BwrapSandbox,
    Limits,
    ProcessSandbox,
    Sandbox,
    SandboxResult,
    bwrap_available,
    get_sandbox,
    shadowing_errors,
    task_locations,
)
from hyperagents.sandbox._hiding import plan_hiding, plugin_locations
from hyperagents.tasks import load_task

BWRAP = bwrap_available()
needs_bwrap = pytest.mark.skipif(
    not BWRAP and os.environ.get("CI") != "true", reason="bubblewrap is not available here"
)
ROOT = hasattr(os, "geteuid") and os.geteuid() == 0
needs_root = pytest.mark.skipif(not ROOT, reason="the engine does not run as root here")
SECCOMP_ARCH = os.uname().machine in ("x86_64", "aarch64")


@pytest.fixture(scope="module", params=["process", pytest.param("bwrap", marks=needs_bwrap)])
def sandbox(request: pytest.FixtureRequest) -> Sandbox:
    return ProcessSandbox() if request.param == "process" else BwrapSandbox()


def solve(
    sandbox: Sandbox, workspace: Path, source: str, inputs: Any = None, **limits: Any
) -> tuple[SandboxResult, Any]:
    """Run ``solve(inputs)`` of ``source`` (written as ``agent.py``); return its output."""
    workspace.mkdir(parents=True, exist_ok=True)
    (workspace / "agent.py").write_text(source)
    request = {
        "action": "solve",
        "module": "agent",
        "instances": [{"id": "0", "inputs": inputs if inputs is not None else {}}],
    }
    result = sandbox.run(workspace, request, limits=Limits(**{"wall_time": 30.0, **limits}))
    assert result.ok, (result.reason, result.stderr[-2000:])
    message = next(m for m in result.messages if m["type"] == "instance")
    assert message["error"] is None, message["error"]
    return result, message["output"]


@contextlib.contextmanager
def readable_dir(base: str = "/var/tmp") -> Iterator[Path]:
    """A scratch directory every user can traverse, outside the sandboxes' private /tmp."""
    if not os.path.isdir(base):
        pytest.skip(f"{base} does not exist here")
    directory = Path(os.path.realpath(tempfile.mkdtemp(prefix="hyperagents-test-", dir=base)))
    os.chmod(directory, 0o755)
    try:
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


# -- 8: task plug-ins' files -------------------------------------------------------------------
SECRET = "hyperagents-label-secret-7f3a"

PLUGIN_FILES = {
    "labelplug/__init__.py": (
        "from hyperagents.tasks import Task\n"
        "LABELS = " + repr(SECRET) + "\n"
        "class LabelTask(Task):\n"
        "    name = 'labelplug'\n"
    ),
    "labelplug/data/labels.json": json.dumps({"test-0": SECRET}),
    "labelplug_data/labels.csv": f"id,label\ntest-0,{SECRET}\n",
    "labelplug-1.0.dist-info/METADATA": "Metadata-Version: 2.1\nName: labelplug\nVersion: 1.0\n",
    "labelplug-1.0.dist-info/WHEEL": (
        "Wheel-Version: 1.0\nGenerator: hyperagents-tests\nRoot-Is-Purelib: true\n"
        "Tag: py3-none-any\n"
    ),
    "labelplug-1.0.dist-info/entry_points.txt": (
        "[hyperagents.tasks]\nlabelplug = labelplug:LabelTask\n"
    ),
}


def _build_wheel(directory: Path) -> Path:
    """A real wheel of the plug-in (what ``pip wheel`` makes of a project with
    ``[project.entry-points."hyperagents.tasks"]``), built without network or build backend."""
    wheel = directory / "labelplug-1.0-py3-none-any.whl"
    record = []
    with zipfile.ZipFile(wheel, "w") as archive:
        for name, text in PLUGIN_FILES.items():
            data = text.encode()
            archive.writestr(name, data)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
            record.append(f"{name},sha256={digest.decode()},{len(data)}")
        record.append("labelplug-1.0.dist-info/RECORD,,")
        archive.writestr("labelplug-1.0.dist-info/RECORD", "\n".join(record) + "\n")
    return wheel


@pytest.fixture(scope="module")
def installed_plugin() -> Iterator[Path]:
    """The plug-in installed with pip into a site directory of its own (outside /tmp, so the
    process sandbox's private /tmp does not hide it anyway), plus an unrelated file there."""
    with readable_dir() as site:
        wheel = _build_wheel(Path(tempfile.mkdtemp(prefix="hyperagents-wheel-")))
        try:
            done = subprocess.run(
                [sys.executable, "-m", "pip", "install", "--no-deps", "--no-index",
                 "--disable-pip-version-check", "--target", str(site / "site"), str(wheel)],
                capture_output=True, text=True, timeout=300, check=False,
            )  # fmt: skip
        finally:
            shutil.rmtree(wheel.parent, ignore_errors=True)
        if done.returncode != 0:
            pytest.skip(f"pip cannot install a local wheel here: {done.stderr[-300:]}")
        (site / "site" / "unrelated.txt").write_text("visible")
        for root, dirs, files in os.walk(site):
            for name in (*dirs, *files):
                os.chmod(os.path.join(root, name), 0o755 if name in dirs else 0o644)
        yield site / "site"


@pytest.fixture
def plugin_on_path(installed_plugin: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.syspath_prepend(str(installed_plugin))
    return installed_plugin


READ_PLUGIN = """import os
import sys


def solve(inputs):
    site = inputs["site"]
    seen = {}
    for rel in ("labelplug/__init__.py", "labelplug/data/labels.json",
                "labelplug_data/labels.csv", "unrelated.txt"):
        try:
            with open(os.path.join(site, rel)) as handle:
                seen[rel] = handle.read()
        except OSError as exc:
            seen[rel] = type(exc).__name__
    seen["listing"] = sorted(os.listdir(site))
    seen["package"] = sorted(os.listdir(os.path.join(site, "labelplug")))
    sys.path.insert(0, site)
    try:
        import labelplug
        seen["import"] = getattr(labelplug, "LABELS", "no labels")
    except Exception as exc:
        seen["import"] = type(exc).__name__
    return seen
"""


def _assert_plugin_hidden(seen: dict[str, Any]) -> None:
    assert SECRET not in json.dumps(seen), seen
    assert seen["unrelated.txt"] == "visible"  # the site directory itself stays visible
    assert seen["package"] == []  # the package is an empty directory inside
    assert seen["import"] != SECRET


@pytest.mark.slow
def test_plugin_locations_cover_the_package_and_its_data(plugin_on_path: Path) -> None:
    located = plugin_locations()
    assert str(plugin_on_path / "labelplug") in located
    assert str(plugin_on_path / "labelplug_data") in located  # a data directory of its own
    assert str(plugin_on_path / "labelplug-1.0.dist-info") in located
    assert str(plugin_on_path) not in located and str(plugin_on_path / "unrelated.txt") not in (
        located
    )


@pytest.mark.slow
@needs_bwrap
def test_bwrap_hides_an_installed_plugin(plugin_on_path: Path, tmp_path: Path) -> None:
    sandbox = BwrapSandbox(expose=(str(plugin_on_path),))  # a site directory agents can see
    _, seen = solve(sandbox, tmp_path / "ws", READ_PLUGIN, {"site": str(plugin_on_path)})
    _assert_plugin_hidden(seen)
    assert seen["labelplug/data/labels.json"] == "FileNotFoundError"


@pytest.mark.slow
@needs_root
def test_process_sandbox_hides_an_installed_plugin(plugin_on_path: Path, tmp_path: Path) -> None:
    sandbox = ProcessSandbox()
    assert sandbox.isolates_user
    _, seen = solve(sandbox, tmp_path / "ws", READ_PLUGIN, {"site": str(plugin_on_path)})
    _assert_plugin_hidden(seen)
    assert seen["labelplug/data/labels.json"] == "FileNotFoundError"


TASK_FILE = """from hyperagents.program import Program
from hyperagents.tasks import Instance, Score, Task


class FolderTask(Task):
    name = "folder-task"

    def instances(self, split):
        return [Instance("0", {"x": 1}, "label")]

    def score(self, instance, output):
        return Score(1.0 if output == instance.target else 0.0, "")

    def seed_program(self):
        return Program({"task_agent.py": "def solve(inputs):\\n    return None\\n"})
"""

READ_TASK_FOLDER = """import os


def solve(inputs):
    seen = {}
    for name in ("folder_task.py", "labels.json"):
        try:
            with open(os.path.join(inputs["folder"], name)) as handle:
                seen[name] = handle.read()
        except OSError as exc:
            seen[name] = type(exc).__name__
    return seen
"""


def _task_folder(base: Path) -> tuple[Path, Any]:
    folder = base / "task-folder"
    folder.mkdir(mode=0o755)
    (folder / "folder_task.py").write_text(TASK_FILE)
    (folder / "labels.json").write_text(json.dumps({"0": SECRET}))
    for path in (folder, *folder.iterdir()):
        os.chmod(path, 0o755 if path.is_dir() else 0o644)
    task = load_task(f"{folder / 'folder_task.py'}:FolderTask")
    return folder, task


def test_task_locations_of_a_file_task(tmp_path: Path) -> None:
    folder, task = _task_folder(tmp_path)
    located = task_locations(task)
    assert str(folder.resolve()) in located
    assert str((folder / "folder_task.py").resolve()) in located
    assert task_locations(load_task("review")) == ()  # inside hyperagents: hidden anyway


def test_hiding_never_covers_what_the_sandbox_needs(tmp_path: Path) -> None:
    (tmp_path / "venv" / "lib").mkdir(parents=True)
    (tmp_path / "data").mkdir()
    (tmp_path / "task.py").write_text("")
    plan = plan_hiding(
        [str(tmp_path), str(tmp_path / "data"), str(tmp_path / "task.py")],
        keep=[str(tmp_path / "venv")],
    )
    assert plan == [(str(tmp_path / "data"), True), (str(tmp_path / "task.py"), False)]


@needs_bwrap
def test_bwrap_hides_the_run_tasks_folder(tmp_path: Path) -> None:
    with readable_dir() as base:
        folder, task = _task_folder(base)
        sandbox = get_sandbox("bwrap", hide=task_locations(task))
        assert isinstance(sandbox, BwrapSandbox)
        exposing = BwrapSandbox(expose=(str(base),), hide=task_locations(task))
        for each in (sandbox, exposing):
            _, seen = solve(each, tmp_path / "ws", READ_TASK_FOLDER, {"folder": str(folder)})
            assert SECRET not in json.dumps(seen) and "FolderTask" not in json.dumps(seen)


@needs_root
def test_process_sandbox_hides_the_run_tasks_folder(tmp_path: Path) -> None:
    with readable_dir() as base:
        folder, task = _task_folder(base)
        sandbox = ProcessSandbox(hide=task_locations(task))
        _, seen = solve(sandbox, tmp_path / "ws", READ_TASK_FOLDER, {"folder": str(folder)})
        assert seen == {"folder_task.py": "FileNotFoundError", "labels.json": "FileNotFoundError"}
        # Without hiding, the same agent reads them (what the private uid alone allows).
        _, seen = solve(
            ProcessSandbox(), tmp_path / "ws", READ_TASK_FOLDER, {"folder": str(folder)}
        )
        assert SECRET in seen["labels.json"]


# -- 9: the process sandbox as root ---------------------------------------------------------------
@needs_root
def test_process_sandbox_refuses_root_without_a_private_uid(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delenv(UNSAFE_PROCESS_SANDBOX_ENV, raising=False)
    with pytest.raises(SandboxError, match="--unsafe-process-sandbox"):
        ProcessSandbox(isolate_user=False)
    monkeypatch.setenv(UNSAFE_PROCESS_SANDBOX_ENV, "1")
    with caplog.at_level(logging.WARNING, logger="hyperagents"):
        sandbox = ProcessSandbox(isolate_user=False)
    assert not sandbox.isolates_user
    warning = caplog.text
    assert "UNSAFE process sandbox" in warning and "environment" in warning
    assert "every file root owns" in warning


@needs_root
def test_get_sandbox_reports_the_refusal_as_a_config_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(UNSAFE_PROCESS_SANDBOX_ENV, raising=False)
    monkeypatch.setattr(ProcessSandbox, "_can_switch_user", lambda self: False)
    with pytest.raises(ConfigError, match="refuses to run agent code as root"):
        get_sandbox("process")


@needs_root
def test_unsafe_opt_in_runs_agent_code_without_capabilities(tmp_path: Path) -> None:
    sandbox = ProcessSandbox(isolate_user=False, unsafe=True)
    result, out = solve(
        sandbox,
        tmp_path / "ws",
        "def solve(inputs):\n"
        "    status = open('/proc/self/status').read().splitlines()\n"
        "    return [line.split()[1] for line in status if line.startswith('CapEff')]\n",
    )
    assert out == ["0000000000000000"]
    assert result.extra["isolation"]["network"] and result.extra["isolation"]["seccomp"]


ENGINE_PROBE = """import ctypes
import os


def solve(inputs):
    engine = inputs["engine"]
    seen = {"uid": os.getuid()}
    for name in ("environ", "cmdline"):
        try:
            with open(f"/proc/{engine}/{name}", "rb") as handle:
                seen[name] = handle.read().decode("latin-1")
        except OSError as exc:
            seen[name] = type(exc).__name__
    libc = ctypes.CDLL(None, use_errno=True)
    for kind in ("net", "mnt", "user"):
        try:
            fd = os.open(f"/proc/{engine}/ns/{kind}", os.O_RDONLY)
        except OSError as exc:
            seen["setns_" + kind] = type(exc).__name__
            continue
        seen["setns_" + kind] = libc.setns(fd, 0) == 0 or os.strerror(ctypes.get_errno())
    seen["visible_pids"] = len([p for p in os.listdir("/proc") if p.isdigit()])
    return seen
"""


def test_agent_cannot_read_the_engines_environment_or_join_its_namespaces(
    sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if sandbox.name == "process" and not getattr(sandbox, "isolates_user", False):
        pytest.skip("the engine is not root: the process sandbox runs as the engine's user")
    token = f"sk-hyperagents-canary-{os.getpid()}"
    monkeypatch.setenv("OPENAI_API_KEY", token)
    _, seen = solve(sandbox, tmp_path / "ws", ENGINE_PROBE, {"engine": os.getpid()})
    assert token not in json.dumps(seen)
    assert seen["environ"] in ("FileNotFoundError", "PermissionError")
    for kind in ("net", "mnt", "user"):
        assert seen["setns_" + kind] is not True, seen
    if ROOT:
        assert seen["uid"] != 0


@needs_root
def test_private_uid_reaches_a_workspace_under_a_closed_directory(tmp_path: Path) -> None:
    closed = tmp_path / "closed"
    closed.mkdir(mode=0o700)
    os.chmod(closed, 0o700)
    sandbox = ProcessSandbox()
    assert sandbox.isolates_user
    (closed / "ws").mkdir()
    (closed / "ws" / "helper.py").write_text("X = 'helped'\n")
    result, out = solve(
        sandbox,
        closed / "ws",
        "import os\nimport helper\n\n\ndef solve(inputs):\n    return [os.getuid(), helper.X]\n",
    )
    assert out[0] != 0 and out[1] == "helped"
    assert result.extra["isolation"]["user"] == out[0]


# -- 10: memory outside the limit, namespaces, /tmp ------------------------------------------------
FILL_TMPFS = """import os
import tempfile


def solve(inputs):
    with tempfile.NamedTemporaryFile(dir="/tmp") as handle:
        seen = {"tempfile": handle.name, "tempdir": tempfile.gettempdir()}
    for directory in ("/tmp", "/dev/shm"):
        stats = os.statvfs(directory)
        seen[directory] = {
            "size_mb": stats.f_blocks * stats.f_frsize // 2**20,
            "mode": oct(os.stat(directory).st_mode & 0o7777),
        }
        written = 0
        chunk = b"x" * 2**20
        try:
            for k in range(inputs["max_mb"] // 16):
                with open(os.path.join(directory, f"fill-{k}"), "wb") as handle:
                    for _ in range(16):
                        handle.write(chunk)
                        written += 1
        except OSError as exc:
            seen[directory]["stopped"] = type(exc).__name__
        seen[directory]["written_mb"] = written
    return seen
"""


def test_tmpfs_is_writable_and_bounded(sandbox: Sandbox, tmp_path: Path) -> None:
    if sandbox.name == "process" and not getattr(sandbox, "isolates_user", False):
        pytest.skip("the process sandbox has no private /tmp unless the engine is root")
    memory = 512
    bound = memory // 2 if ROOT else 512  # resized to the limit as root, else BwrapSandbox tmp_mb
    result, seen = solve(
        sandbox, tmp_path / "ws", FILL_TMPFS, {"max_mb": 1024}, memory_mb=memory, wall_time=60
    )
    assert seen["tempfile"].startswith("/tmp/")  # /tmp is writable for the private uid
    if sandbox.name == "bwrap":
        assert seen["tempdir"] == "/tmp"  # its TMPDIR
    for directory in ("/tmp", "/dev/shm"):
        info = seen[directory]
        assert info["mode"] == "0o1777"
        assert info["size_mb"] <= bound
        assert info["written_mb"] <= bound and info["stopped"] == "OSError", info
    if ROOT:
        report = result.extra["isolation"]
        sized = report.get("tmpfs_mb") or report.get("mounts", {}).get("tmpfs_mb")
        assert sized == memory // 2


NAMESPACES = """import ctypes
import os
import subprocess
import sys
import threading

CLONE_NEWNS, CLONE_NEWUSER, CLONE_NEWNET = 0x20000, 0x10000000, 0x40000000


def solve(inputs):
    libc = ctypes.CDLL(None, use_errno=True)
    seen = {}

    def attempt(name, call):
        result = call()
        seen[name] = "allowed" if result == 0 else os.strerror(ctypes.get_errno())

    attempt("unshare_user", lambda: libc.unshare(CLONE_NEWUSER))
    attempt("unshare_mount", lambda: libc.unshare(CLONE_NEWNS))
    attempt("mount_tmpfs", lambda: libc.mount(b"tmpfs", b"/tmp", b"tmpfs", 0, b"size=8g"))
    attempt("setns", lambda: libc.setns(0, 0))
    attempt("ptrace", lambda: libc.ptrace(16, os.getppid(), 0, 0))
    probe = subprocess.run(
        [sys.executable, "-c",
         "import ctypes, os; libc = ctypes.CDLL(None, use_errno=True); "
         "print(libc.unshare(0x10000000 | 0x20000), os.strerror(ctypes.get_errno()))"],
        capture_output=True, text=True,
    )
    seen["child_unshare"] = probe.stdout.strip()
    # Ordinary work still runs: threads, processes, fork.
    box = []
    thread = threading.Thread(target=lambda: box.append("thread"))
    thread.start()
    thread.join()
    seen["thread"] = box
    seen["subprocess"] = subprocess.run(["echo", "ok"], capture_output=True, text=True).stdout
    pid = os.fork()
    if pid == 0:
        os._exit(7)
    seen["fork"] = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
    try:
        import numpy
        seen["numpy"] = float(numpy.arange(4).sum())
    except ImportError:
        seen["numpy"] = 6.0
    return seen
"""


@pytest.mark.skipif(not SECCOMP_ARCH, reason="no system-call filter for this architecture")
def test_agent_cannot_make_namespaces_or_mounts(sandbox: Sandbox, tmp_path: Path) -> None:
    result, seen = solve(sandbox, tmp_path / "ws", NAMESPACES, memory_mb=1024)
    assert result.extra["isolation"]["seccomp"] is True
    for name in ("unshare_user", "unshare_mount", "mount_tmpfs", "setns", "ptrace"):
        assert seen[name] == os.strerror(1), (name, seen)  # EPERM
    assert seen["child_unshare"] == f"-1 {os.strerror(1)}"  # inherited by what it runs
    assert seen["thread"] == ["thread"] and seen["subprocess"] == "ok\n"
    assert seen["fork"] == 7 and seen["numpy"] == 6.0


def test_unsafe_process_sandbox_cli_option() -> None:
    from typer.testing import CliRunner

    from hyperagents.cli._app import app

    for command in ("run", "resume", "experiment"):
        shown = CliRunner().invoke(app, [command, "--help"], env={"COLUMNS": "200"})
        assert "--unsafe-process-sandbox" in shown.output, command


# -- 11: entry modules cannot be shadowed ---------------------------------------------------------
@pytest.mark.parametrize(
    ("decoy", "entry"),
    [
        ("task_agent/__init__.py", "task_agent.py"),
        ("task_agent/evil.py", "task_agent.py"),
        ("task_agent.so", "task_agent.py"),
        ("task_agent.cpython-311-x86_64-linux-gnu.so", "task_agent.py"),
        ("task_agent.abi3.so", "task_agent.py"),
        ("task_agent.pyc", "task_agent.py"),
        ("__pycache__/task_agent.cpython-311.pyc", "task_agent.py"),
        ("meta_agent/__init__.py", "meta_agent.py"),
        ("select_parent/__init__.py", "select_parent.py"),
        ("agents/solver/__init__.py", "agents/solver.py"),
        ("agents/__pycache__/solver.cpython-311.pyc", "agents/solver.py"),
    ],
)
def test_shadowing_errors_name_the_decoy(decoy: str, entry: str) -> None:
    paths = ["task_agent.py", "meta_agent.py", entry, decoy]
    errors = shadowing_errors(paths, [entry])
    assert len(errors) == 1, errors
    assert errors[0].startswith(decoy.split("/__init__")[0].rsplit("/evil", 1)[0])
    assert entry in errors[0] and "not allowed" in errors[0]


def test_shadowing_errors_accept_ordinary_programs() -> None:
    paths = [
        "task_agent.py",
        "meta_agent.py",
        "select_parent.py",
        "helpers/__init__.py",
        "task_agent_utils.py",
        "task_agent.md",
        "__pycache__/helpers.cpython-311.pyc",
        "notes/task_agent.py",
    ]
    assert shadowing_errors(paths, ["task_agent.py"]) == []
    assert shadowing_errors(["empty_dir/", "task_agent/"], []) != []  # an empty directory too


@pytest.mark.parametrize(
    "decoy",
    [
        "meta_prompt/__init__.py",
        "meta_prompt.so",
        "meta_prompt.pyc",
        "__pycache__/meta_prompt.cpython-311.pyc",
    ],
)
def test_the_meta_agents_sibling_modules_cannot_be_shadowed(decoy: str) -> None:
    # meta_agent.py imports its meta_*.py siblings by name: they are protected as it is.
    errors = shadowing_errors(["task_agent.py", "meta_agent.py", "meta_prompt.py", decoy])
    assert len(errors) == 1 and "meta_prompt.py" in errors[0], errors
    ordinary = ["meta_agent.py", "meta_notes.md", "pkg/meta_x/__init__.py", "metadata/x.py"]
    assert shadowing_errors(ordinary) == []


@pytest.mark.parametrize("decoy", ["package", "bytecode"])
def test_harness_imports_the_meta_agents_siblings_from_their_files(
    sandbox: Sandbox, tmp_path: Path, decoy: str
) -> None:
    workspace = tmp_path / "ws"
    workspace.mkdir()
    (workspace / "meta_agent.py").write_text(
        "import meta_helper\n\ndef improve(workspace, report):\n    return meta_helper.WHO\n"
    )
    (workspace / "meta_helper.py").write_text("WHO = 'declared file'\n")
    if decoy == "package":
        (workspace / "meta_helper").mkdir()
        (workspace / "meta_helper" / "__init__.py").write_text("WHO = 'decoy'\n")
    else:  # bytecode the import system would take for meta_helper.py (unchecked hash)
        source = tmp_path / "decoy.py"
        source.write_text("WHO = 'decoy'\n")
        cached = workspace / "__pycache__" / f"meta_helper.{sys.implementation.cache_tag}.pyc"
        cached.parent.mkdir()
        py_compile.compile(
            str(source),
            cfile=str(cached),
            invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH,
        )
    request = {"action": "improve", "module": "meta_agent", "report": {}}
    result = sandbox.run(workspace, request, limits=Limits(wall_time=30))
    assert result.ok, result.reason
    assert result.result == "declared file"


DECLARED = "def solve(inputs):\n    return 'declared file'\n"
DECOY = "import os\n\ndef solve(inputs):\n    return 'decoy: ' + os.getcwd()\n"


def _shadowed_workspace(workspace: Path) -> None:
    workspace.mkdir(parents=True)
    (workspace / "task_agent.py").write_text(DECLARED)
    (workspace / "task_agent").mkdir()
    (workspace / "task_agent" / "__init__.py").write_text(DECOY)
    (workspace / "meta_agent.py").write_text("def improve(workspace, report):\n    return {}\n")


def test_validation_refuses_a_shadowing_package(sandbox: Sandbox, tmp_path: Path) -> None:
    workspace = tmp_path / "ws"
    _shadowed_workspace(workspace)
    request = {"action": "validate", "entry_points": {"task_agent.py": ["solve"]}}
    result = sandbox.run(workspace, request, limits=Limits(wall_time=30))
    assert result.ok and result.result["ok"] is False
    assert any(e.startswith("task_agent/:") for e in result.result["errors"]), result.result


def test_harness_runs_the_declared_file_not_a_shadowing_package(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    workspace = tmp_path / "ws"
    _shadowed_workspace(workspace)
    # Cached bytecode that the import system would take for task_agent.py (unchecked hash).
    decoy_source = workspace / "decoy_source.py"
    decoy_source.write_text(DECOY)
    cached = workspace / "__pycache__" / f"task_agent.{sys.implementation.cache_tag}.pyc"
    cached.parent.mkdir()
    py_compile.compile(
        str(decoy_source),
        cfile=str(cached),
        invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH,
    )
    decoy_source.unlink()
    request = {
        "action": "solve",
        "module": "task_agent",
        "instances": [{"id": "0", "inputs": {}}],
    }
    result = sandbox.run(workspace, request, limits=Limits(wall_time=30))
    assert result.ok, result.reason
    outputs = [m["output"] for m in result.messages if m["type"] == "instance"]
    assert outputs == ["declared file"]


def test_shadowing_errors_take_a_program_and_its_entry_points() -> None:
    from hyperagents.program import Program

    program = Program(
        {
            "task_agent.py": DECLARED,
            "task_agent/__init__.py": DECOY,
            "meta_agent.py": "def improve(workspace, report):\n    return {}\n",
        }
    )
    errors = shadowing_errors(program, {"task_agent.py": ["solve"]})
    assert len(errors) == 1 and errors[0].startswith("task_agent/:")


@needs_root
def test_validate_program_with_a_private_uid_in_a_real_workspace() -> None:
    from hyperagents.evaluation import validate_program
    from hyperagents.program import Program

    sandbox = ProcessSandbox()
    assert sandbox.isolates_user
    program = Program({"task_agent.py": DECLARED, "helper.py": "X = 1\n"})
    checked = validate_program(
        program, entry_points={"task_agent.py": ["solve"]}, sandbox=sandbox, limits=Limits()
    )
    assert checked.ok, checked.errors


@pytest.mark.skipif(not bwrap_available(), reason="bubblewrap is not available here")
def test_the_run_sizes_bubblewraps_tmpfs_from_its_memory_limit(tmp_path: Path) -> None:
    """Where the harness cannot resize them per run (a non-root engine), /tmp and /dev/shm are
    sized from the memory limit the sandbox is made for: half of it each."""
    from hyperagents.sandbox import get_sandbox

    sandbox = get_sandbox("bwrap", memory_mb=256)
    assert isinstance(sandbox, BwrapSandbox)
    args = sandbox._static  # the arguments every run of it starts bubblewrap with
    sizes = [args[i + 1] for i, a in enumerate(args) if a == "--size"]
    if not sizes:
        pytest.skip("this bubblewrap has no --size")
    assert len(sizes) == 2 and all(int(size) == 128 * 1024 * 1024 for size in sizes)
