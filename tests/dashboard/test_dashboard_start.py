"""Starting a run from the dashboard: its target is stored with the run, so the engine process
started for it (``hyperagents resume``) goes on to that target, even if it starts late or is
restarted."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hyperagents.runs import EngineLauncher, ResumeRequest, Run, RunService, StartRequest
from hyperagents.storages import RDBStorage, RunRecord, RunStatus


class _Recorder(EngineLauncher):
    """A launcher that records what it was asked to start instead of starting it."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.asked: list[dict[str, Any]] = []

    def launch(self, run: RunRecord, request: ResumeRequest) -> int:
        self.asked.append(
            {"run": run.name, "generations": request.generations, "workers": request.workers}
        )
        return 0


def test_the_target_is_stored_at_creation_and_the_engine_adds_nothing(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    storage = RDBStorage(url)
    try:
        launcher = _Recorder(url)
        service = RunService(storage, launcher=launcher)
        request = StartRequest(task="packing", generations=2, name="from-ui", workers=1)
        record = service.start_detached(request)
        assert record.target_generations == 2
        assert record.status is RunStatus.CREATED
        assert launcher.asked == [{"run": "from-ui", "generations": None, "workers": 1}]
        # What the engine process does with that: resume to the stored target.
        engine = Run.load("from-ui", storage=storage)
        assert engine.target_after(None) == 2
    finally:
        storage.close()
