"""Checkpoints of a training, for a trainer of the weights contract (program code).

The request of ``train(request, progress)`` names ``checkpoint_dir``, ``checkpoint_seconds``
(0: write none) and ``resume_dir`` (None, or the folder of the checkpoint to go on from).
:class:`Checkpoints` does that part of the contract for a torch trainer: :meth:`resume` reads
the state a resumed training goes on from; :meth:`maybe_save` writes the whole state (model,
optimiser, random generators, step, curve: anything torch can save with ``weights_only``) to a
new folder when ``checkpoint_seconds`` have passed since the last one, then reports a progress
point naming it, which is when the engine keeps it. A training that restores all of that goes
on exactly as if it had never stopped.
"""

from __future__ import annotations

import random
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

STATE_FILE = "state.pt"


class Checkpoints:
    """One training's checkpoints (see the module).

    Args:
        request: The trainer's request.
        progress: Its progress function (None: checkpoints are not written).
    """

    def __init__(
        self, request: dict[str, Any], progress: Callable[[dict[str, Any]], None] | None
    ) -> None:
        self._folder = Path(str(request.get("checkpoint_dir") or "_checkpoints"))
        every = request.get("checkpoint_seconds") or 0
        self._every = float(every) if progress is not None else 0.0
        self._progress = progress
        resume = request.get("resume_dir")
        self._resume = Path(str(resume)) / STATE_FILE if resume else None
        self._last = time.monotonic()
        self._written: Path | None = None

    def resume(self) -> dict[str, Any] | None:
        """The state saved by the checkpoint this training goes on from (None: it starts)."""
        if self._resume is None or not self._resume.is_file():
            return None
        state = torch.load(self._resume, map_location="cpu", weights_only=True)
        return state if isinstance(state, dict) else None

    def maybe_save(self, step: int, loss: float, state: Callable[[], dict[str, Any]]) -> bool:
        """Write ``state()`` as the checkpoint of ``step`` when one is due; whether it was.

        The folder is written under a temporary name and renamed before it is reported (the
        engine never reads half of one); the one before it is removed.
        """
        if self._every <= 0 or time.monotonic() - self._last < self._every:
            return False
        name = f"step-{int(step)}"
        partial = self._folder / f".{name}.partial"
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
        torch.save(state(), partial / STATE_FILE)
        final = self._folder / name
        shutil.rmtree(final, ignore_errors=True)
        partial.rename(final)
        if self._written is not None and self._written != final:
            shutil.rmtree(self._written, ignore_errors=True)
        self._written = final
        assert self._progress is not None
        self._progress({"step": int(step), "loss": float(loss), "checkpoint": name})
        self._last = time.monotonic()
        return True


def rng_state(order: random.Random) -> dict[str, Any]:
    """The random generators' state a resumed training restores: ``order``'s and torch's."""
    version, internal, gauss = order.getstate()
    return {
        "python": [version, list(internal), gauss],
        "torch": torch.get_rng_state(),
    }


def restore_rng(order: random.Random, saved: dict[str, Any]) -> None:
    """Put the generators back as :func:`rng_state` found them."""
    version, internal, gauss = saved["python"]
    order.setstate((version, tuple(internal), gauss))
    torch.set_rng_state(saved["torch"])
