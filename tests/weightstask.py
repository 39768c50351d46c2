"""A tiny task whose agents carry a model, for the training stage's tests (not a pytest module).

Instances are numbers x in [0, 1]; the hidden rule is "hi" iff x > 0.63 (as in the toy task).
The program carries a two-parameter logistic model (``w``, ``b``) in ``model/model.safetensors``
(written and read by hand in pure Python: no library in the sandbox), fitted by its
``trainer.py`` with seeded gradient descent; without a model the task agent thresholds at
``PARAMS["t"]``. The meta agent writes ``training_plan.json`` (the lever it is built with) and,
unless that lever is ``weights``, also nudges ``PARAMS["t"]`` (a harness edit).
"""

from __future__ import annotations

from typing import Any

from hyperagents.tasks import Instance

from toytask import ToyTask

#: Reads and writes the model (shared by the task agent and the trainer).
MODEL_IO = """import json
import struct


def read_model(folder):
    with open(folder + "/model.safetensors", "rb") as handle:
        data = handle.read()
    (size,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + size])
    start, end = header["wb"]["data_offsets"]
    return struct.unpack("<2f", data[8 + size + start : 8 + size + end])


def write_model(folder, w, b):
    payload = struct.pack("<2f", w, b)
    header = {"wb": {"dtype": "F32", "shape": [2], "data_offsets": [0, len(payload)]}}
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(folder + "/model.safetensors", "wb") as handle:
        handle.write(struct.pack("<Q", len(text)) + text + payload)
    with open(folder + "/config.json", "w") as handle:
        json.dump({"kind": "logistic", "parameters": 2}, handle)
"""

TASK_AGENT = """import os

from model_io import read_model

PARAMS = {"t": 0.2}
MODEL = read_model("model") if os.path.exists("model/model.safetensors") else None


def solve(inputs):
    x = inputs["x"]
    if MODEL is not None:
        w, b = MODEL
        return "hi" if w * x + b > 0 else "lo"
    return "hi" if x > PARAMS["t"] else "lo"
"""

TRAINER = """import json
import math
import os
import random
import time

from model_io import read_model, write_model


def _resume(request):
    if not request.get("resume_dir"):
        return None
    with open(os.path.join(request["resume_dir"], "state.json")) as handle:
        return json.load(handle)


def _checkpoint(request, state, progress):
    name = "step-%d" % state["step"]
    folder = os.path.join(request["checkpoint_dir"], name)
    os.makedirs(folder + ".partial", exist_ok=True)
    with open(os.path.join(folder + ".partial", "state.json"), "w") as handle:
        json.dump(state, handle)
    os.rename(folder + ".partial", folder)
    progress({"step": state["step"], "loss": state["curve"][-1]["loss"], "checkpoint": name})


def train(request, progress=None):
    time.sleep(float(request["options"].get("sleep", 0)))
    pace = float(request["options"].get("pace", 0))
    every = float(request.get("checkpoint_seconds") or 0) if progress is not None else 0
    rng = random.Random(request["seed"])
    w, b = (0.0, 0.0)
    if request["model_dir"]:
        w, b = read_model(request["model_dir"])
    data = [(e["inputs"]["x"], 1.0 if e["output"] == "hi" else 0.0) for e in request["examples"]]
    epochs = int(request["options"].get("epochs", 200))
    rate = float(request["options"].get("rate", 2.0))
    curve, first = [], 0
    saved = _resume(request)
    if saved is not None:
        w, b, first, curve, data = saved["w"], saved["b"], saved["step"], saved["curve"], [
            tuple(d) for d in saved["data"]
        ]
        rng.setstate((saved["rng"][0], tuple(saved["rng"][1]), saved["rng"][2]))
    last = time.monotonic()
    for step in range(first, epochs):
        time.sleep(pace)
        rng.shuffle(data)
        loss = gw = gb = 0.0
        for x, y in data:
            p = 1.0 / (1.0 + math.exp(-(w * x + b)))
            loss -= y * math.log(max(p, 1e-12)) + (1 - y) * math.log(max(1 - p, 1e-12))
            gw += (p - y) * x
            gb += p - y
        n = max(1, len(data))
        w, b = w - rate * gw / n, b - rate * gb / n
        point = {"step": step, "loss": loss / n}
        curve.append(point)
        if progress is not None and step % 20 == 0:
            progress(point)
        if every and time.monotonic() - last >= every:
            state = {"w": w, "b": b, "step": step + 1, "curve": curve, "data": data,
                     "rng": list(rng.getstate())}
            _checkpoint(request, state, progress)
            last = time.monotonic()
    write_model(request["out_dir"], w, b)
    return {"curve": curve, "metrics": {"final_loss": curve[-1]["loss"] if curve else 0.0}}
"""

META_AGENT = """import json
import re

LEVER = "__LEVER__"
SOURCES = __SOURCES__
OPTIONS = __OPTIONS__


def improve(workspace, report):
    plan = {"lever": LEVER, "sources": SOURCES, "options": OPTIONS}
    with open(workspace + "/training_plan.json", "w") as handle:
        json.dump(plan, handle)
    if LEVER != "weights":
        path = workspace + "/task_agent.py"
        source = open(path).read()
        t = float(re.search(r'"t": ([0-9.]+)', source).group(1))
        new = round(min(1.0, t + 0.05), 4)
        open(path, "w").write(source.replace(f'"t": {t}', f'"t": {new}'))
    return {"operator": "plan", "lever": LEVER}
"""


def meta_agent(
    lever: str = "weights",
    sources: tuple[str, ...] = ("self", "task"),
    options: dict[str, Any] | None = None,
) -> str:
    """The meta agent source that plans ``lever`` with ``sources`` and trainer ``options``."""
    return (
        META_AGENT.replace("__LEVER__", lever)
        .replace("__SOURCES__", repr(list(sources)))
        .replace("__OPTIONS__", repr(options or {"epochs": 150}))
    )


class WeightsTask(ToyTask):
    """The toy task's threshold classification, solved by a tiny trained model."""

    name = "tiny-weights"
    carries_model = True

    def __init__(
        self,
        *,
        lever: str = "weights",
        sources: tuple[str, ...] = ("self", "task"),
        options: dict[str, Any] | None = None,
        trainer: str = TRAINER,
        sizes: tuple[int, int, int] = (30, 15, 15),
        extra: dict[str, str] | None = None,
    ) -> None:
        super().__init__(
            meta_agent=meta_agent(lever, sources, options),
            task_agent=TASK_AGENT,
            extra={"model_io.py": MODEL_IO, "trainer.py": trainer, **(extra or {})},
            sizes=sizes,
            seed=7,
        )
        self._examples = [
            Instance(f"task-{k}", {"x": x}, "hi" if x > 0.63 else "lo")
            for k, x in enumerate([0.05, 0.3, 0.5, 0.6, 0.66, 0.7, 0.9, 0.95])
        ]

    def training_examples(self) -> list[Instance]:
        return self._examples
