"""A variant's model as the faces show it: the files under ``model/`` with their sizes and
hashes, and ``model/config.json`` pretty-printed (what ``hyperagents show`` prints and the
dashboard's variant page shows).

The files were written by a trainer that is program code, so the config is read with bounds:
a config larger than :data:`CONFIG_LIMIT` bytes, not JSON, or nested too deeply is reported
as such (with the reason), never parsed without limit; weights are never decoded.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from hyperagents.program import MODEL_DIR, Program, is_binary

__all__ = ["CONFIG_LIMIT", "MODEL_CONFIG", "ModelFile", "ModelView", "model_view"]

#: The model's configuration file.
MODEL_CONFIG = MODEL_DIR + "config.json"
#: Largest ``config.json`` that is parsed and shown (bytes).
CONFIG_LIMIT = 64 * 1024


@dataclass(frozen=True)
class ModelFile:
    """One file of a model.

    Attributes:
        path: Its path in the program (``model/…``).
        size: Bytes.
        sha256: Its content hash (the storages' key).
        binary: Whether it is shown as binary (weights; see
            :func:`~hyperagents.program.is_binary`).
    """

    path: str
    size: int
    sha256: str
    binary: bool


@dataclass(frozen=True)
class ModelView:
    """A program's model.

    Attributes:
        files: The files under ``model/``, by path.
        config: ``config.json`` pretty-printed (None: absent or not shown, see
            ``config_error``).
        config_error: Why the config is not shown (None: it is, or there is none).
    """

    files: tuple[ModelFile, ...]
    config: str | None
    config_error: str | None

    @property
    def size(self) -> int:
        """Bytes of all the model's files."""
        return sum(f.size for f in self.files)

    def as_json(self) -> dict[str, object]:
        """The view as JSON-compatible values (the dashboard's)."""
        return {
            "files": [
                {"path": f.path, "size": f.size, "sha256": f.sha256, "binary": f.binary}
                for f in self.files
            ],
            "size": self.size,
            "config": self.config,
            "config_error": self.config_error,
        }


def _pretty_config(data: bytes) -> tuple[str | None, str | None]:
    """``(pretty JSON, None)`` or ``(None, why it is not shown)``."""
    if len(data) > CONFIG_LIMIT:
        return None, f"{len(data)} bytes, more than the {CONFIG_LIMIT} shown"
    try:
        value = json.loads(data.decode("utf-8"))
        return json.dumps(value, indent=2, ensure_ascii=False), None
    except UnicodeDecodeError:
        return None, "not UTF-8 text"
    except RecursionError:
        return None, "nested too deeply to show"
    except ValueError as exc:
        return None, f"not valid JSON: {str(exc)[:200]}"


def model_view(program: Program) -> ModelView | None:
    """The model ``program`` carries (None: it has no file under ``model/``)."""
    paths = [path for path in program if path.startswith(MODEL_DIR)]
    if not paths:
        return None
    files = tuple(
        ModelFile(path, len(program[path]), program.blobs[path], is_binary(path, program[path]))
        for path in paths
    )
    config, error = (None, None)
    if MODEL_CONFIG in program:
        config, error = _pretty_config(program[MODEL_CONFIG])
    return ModelView(files, config, error)
