"""What every command of the ``hyperagents`` command line shares: the Typer application, the
consoles, common options, error reporting and the helpers that show agent-written text."""

from __future__ import annotations

import json
import math
import os
import shlex
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.text import Text

from hyperagents._untrusted import printable
from hyperagents.exceptions import HyperagentsError, StorageURLError
from hyperagents.storages import BaseStorage, get_storage

__all__ = [
    "ConfigFileError",
    "DeviceOpt",
    "HostOpt",
    "StorageOpt",
    "TaskOptionOpt",
    "UnsafeSandboxOpt",
    "agent_text",
    "allow_unsafe_sandbox",
    "app",
    "console",
    "emit",
    "err_console",
    "errors",
    "existing_storage",
    "fmt_value",
    "positive_seconds",
    "read_config",
    "shown_url",
    "storage_hint",
    "storage_label",
    "task_option_values",
    "whoami",
]

app = typer.Typer(
    name="hyperagents",
    help="Self-referential self-improving agents: run, resume and inspect experiments.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
console = Console()
err_console = Console(stderr=True)

StorageOpt = Annotated[
    str | None,
    typer.Option(
        "--storage",
        help="Storage URL (default: $HYPERAGENTS_STORAGE or sqlite:///hyperagents.db).",
        show_default=False,
    ),
]
HostOpt = Annotated[str, typer.Option(help="Address to bind; anything but loopback needs a token.")]
UnsafeSandboxOpt = Annotated[
    bool,
    typer.Option(
        "--unsafe-process-sandbox",
        help="Let the process sandbox run agent code as root without a private uid (also "
        "$HYPERAGENTS_UNSAFE_PROCESS_SANDBOX=1). Agent code can then read the engine's "
        "environment (API keys, database passwords) and files and signal its processes: only "
        "on a machine with nothing to protect.",
    ),
]


DeviceOpt = Annotated[
    str | None,
    typer.Option(
        "--device",
        metavar="auto|cpu|cuda",
        help="Where trainers compute weight updates: auto (a GPU when the trainer sees one, "
        "else the CPU), cpu, or cuda; the run config's training.device [default: auto].",
        show_default=False,
    ),
]
TaskOptionOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--task-option",
        metavar="KEY=VALUE",
        help="A keyword argument of the task class (repeat for more): VALUE is read as JSON "
        'when it parses (3, 0.5, true, [1,2], "3"), else as a string; stored with the run.',
        show_default=False,
    ),
]


def task_option_values(items: list[str] | None) -> dict[str, Any]:
    """The ``--task-option KEY=VALUE`` options given, as keyword arguments.

    Raises:
        ConfigError: One is malformed, or a key is given twice.
    """
    from hyperagents.tasks import parse_task_options

    return parse_task_options(items or ())


class ConfigFileError(HyperagentsError):
    """A command's options or config file do not fit together."""


def read_config(config: Path | None) -> dict[str, Any]:
    """The run config values of a ``--config`` JSON file ({} when none is given).

    Raises:
        ConfigFileError: The file cannot be read, is not JSON, or holds no object.
    """
    if config is None:
        return {}
    try:
        data = json.loads(config.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigFileError(f"cannot read config {config}: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigFileError(f"config {config} must hold a JSON object")
    return data


def allow_unsafe_sandbox(allowed: bool) -> None:
    """Pass the opt-in on to every sandbox this process (and its children) creates."""
    if allowed:
        from hyperagents.sandbox import UNSAFE_PROCESS_SANDBOX_ENV

        os.environ[UNSAFE_PROCESS_SANDBOX_ENV] = "1"


def positive_seconds(value: float | None) -> float | None:
    """Typer callback: a number of seconds must be positive and finite.

    Raises:
        typer.BadParameter: Zero, negative, infinite or NaN.
    """
    if value is not None and not (math.isfinite(value) and value > 0):
        raise typer.BadParameter(f"must be a positive number of seconds, not {value:g}")
    return value


@contextmanager
def errors() -> Iterator[None]:
    """Turn library errors into one-line messages and exit code 1."""
    try:
        yield
    except (HyperagentsError, OSError) as exc:
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        # One line, never wrapped: a path or command in it stays whole (to paste or grep).
        err_console.print(
            f"[bold red]error:[/] {escape(printable(message))}", highlight=False, soft_wrap=True
        )
        raise typer.Exit(1) from None


def fmt_value(value: Any, digits: int = 4) -> str:
    """A score or count for a table cell ("-" for none)."""
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


# -- what agents wrote ----------------------------------------------------------------------
# Every text an agent wrote (files, diffs, reasons, meta info, feedback, event messages) goes
# through these: control characters shown as escapes, never obeyed by the terminal, and never
# read as Rich markup (see hyperagents._untrusted).
def agent_text(value: object) -> Text:
    """Agent-written text as a Rich cell: escaped, never markup."""
    return Text(printable(value))


def emit(text: str, out: Path | None) -> None:
    """Write an export to ``out`` as it is, or to the terminal (stdout) made printable."""
    if out is None:
        sys.stdout.write(printable(text))
    else:
        out.write_text(text, encoding="utf-8")


# -- storage --------------------------------------------------------------------------------
def existing_storage(url: str | None) -> BaseStorage:
    """Open a storage for reading: a SQLite file that does not exist is an error, not a new
    empty database.

    Raises:
        StorageURLError: No database at the SQLite path.
    """
    from hyperagents.storages import DEFAULT_STORAGE_URL, STORAGE_ENV_VAR

    resolved = url or os.environ.get(STORAGE_ENV_VAR) or DEFAULT_STORAGE_URL
    if resolved.startswith("sqlite:///") and "?" not in resolved:
        path = resolved[len("sqlite:///") :]
        if path and path != ":memory:" and not os.path.exists(path):
            raise StorageURLError(
                f"no database at {path} (give --storage or set {STORAGE_ENV_VAR})"
            )
    return get_storage(resolved)


def shown_url(url: str) -> str:
    """A storage URL fit to print: no password, no query."""
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True).split("?")[0]
    except Exception:  # not a database URL ("memory"): nothing secret in it
        return url.split("?")[0]


def storage_label(store: BaseStorage) -> str:
    """How a storage is named in titles."""
    return str(getattr(store, "url", type(store).__name__))


def storage_hint(storage: str | None) -> str:
    """The ``--storage`` option to repeat in a suggested command ("" when none was given)."""
    return "" if storage is None else f" --storage {shlex.quote(shown_url(storage))}"


def whoami() -> str:
    """The user's name, as decisions record who made them."""
    try:
        import getpass

        return getpass.getuser()
    except Exception:  # no user name in this environment
        return f"uid {os.getuid()}"
