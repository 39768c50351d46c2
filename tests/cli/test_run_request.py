"""``run`` hands its options to the application service as one request: each option is the
request field of its name, so an option and a field cannot drift apart unnoticed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from hyperagents.cli import _app
from hyperagents.exceptions import ConfigError
from hyperagents.reports import ExperimentRequest
from hyperagents.runs import ReplayRequest, ResumeRequest, RunConfig, StartRequest
from hyperagents.storages import RDBStorage

TOY = f"{Path(__file__).resolve().parents[1] / 'toytask.py'}:ToyTask"


def option_names(command: str) -> set[str]:
    group = typer.main.get_command(_app.app)
    assert isinstance(group, typer.core.TyperGroup)
    return {str(p.name) for p in group.commands[command].params}


def test_every_request_field_is_an_option_of_its_command() -> None:
    assert set(StartRequest.model_fields) - {"attrs"} <= option_names("run")
    assert set(ResumeRequest.model_fields) - {"run"} <= option_names("resume")
    assert set(ReplayRequest.model_fields) - {"run"} <= option_names("run")
    assert set(ExperimentRequest.model_fields) <= option_names("experiment")


def test_the_options_and_the_config_file_reach_the_stored_config(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    config = tmp_path / "config.json"
    config.write_text(
        json.dumps(
            {"subset_size": 10, "selector": "best", "llm_retries": 1, "training": {"seconds": 30}}
        )
    )
    args = ["run", "-t", TOY, "-g", "0", "-n", "mapped", "-s", "4", "-w", "2", "-q"]
    args += ["--config", str(config), "--selector", "random", "--max-evaluations", "50"]
    args += ["--levers", "weights", "--device", "cpu"]
    result = CliRunner().invoke(_app.app, [*args, "--storage", url])
    assert result.exit_code == 0, result.output
    storage = RDBStorage(url)
    record = storage.get_run_by_name("mapped")
    storage.close()
    assert record.seed == 4 and record.target_generations == 0
    stored = record.config
    assert (stored["selector"], stored["subset_size"], stored["llm_retries"]) == ("random", 10, 1)
    assert stored["max_evaluations"] == 50 and stored["parallel_generations"] == 2
    assert stored["levers"] == "weights" and stored["training"]["seconds"] == 30.0
    assert stored["training"]["device"] == "cpu"  # --device over the file's training table


def test_device_defaults_to_auto_and_reaches_every_run_of_an_experiment() -> None:
    assert RunConfig.parse({}).training.device == "auto"
    request = ExperimentRequest(task="toy", device="cuda", config={"training": {"threads": 2}})
    assert request.run_config()["training"] == {"threads": 2, "device": "cuda"}
    assert ExperimentRequest(task="toy").run_config() == {}
    with pytest.raises(ConfigError, match=r"training\.device"):
        StartRequest(task="toy", device="tpu").run_config()
    with pytest.raises(ConfigError, match="training: must be a table"):
        StartRequest(task="toy", device="cpu", config={"training": 3}).run_config()
