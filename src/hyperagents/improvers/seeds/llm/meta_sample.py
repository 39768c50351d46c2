"""The tool loop's ``run_sample``: the program's ``task_agent.solve`` on a few train inputs.

It runs in a subprocess of the meta agent's own (sandboxed) process, in the workspace, and
shows outputs or errors, never scores. The run's model is not reachable there: the task
agent's ``llm.complete`` fails (as it does without a model), so agents with a fallback show it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

from meta_settings import Settings

_SAMPLE_SCRIPT = r"""
import importlib.util, json, sys, traceback, types
items = json.loads(sys.stdin.read())
out = []
class LLMError(Exception):
    pass
def _no_model(*args, **kwargs):
    raise LLMError("no language model in a sample run")
_llm = types.ModuleType("llm")
_llm.complete, _llm.LLMError = _no_model, LLMError
sys.modules["llm"] = _llm
try:
    spec = importlib.util.spec_from_file_location("task_agent", "task_agent.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
except BaseException:
    print(json.dumps({"import_error": traceback.format_exc()[-1500:]}))
    sys.exit(0)
for item in items:
    try:
        value = mod.solve(item["inputs"])
        out.append({"id": item["id"], "output": json.dumps(value, default=repr)[:1500]})
    except BaseException:
        out.append({"id": item["id"], "error": traceback.format_exc()[-1500:]})
print(json.dumps({"results": out}))
"""


def run_sample(workspace: str, report: dict[str, Any], n: int, settings: Settings) -> str:
    """Run the workspace's ``task_agent.solve`` on ``n`` train inputs; what it did, as text."""
    items = [
        {"id": item.get("id"), "inputs": item.get("inputs")}
        for item in report.get("train_inputs") or []
        if isinstance(item, dict)
    ][:n]
    if not items:
        return "No train inputs are available to run."
    try:
        proc = subprocess.run(
            [sys.executable, "-c", _SAMPLE_SCRIPT],
            input=json.dumps(items, default=str),
            capture_output=True,
            text=True,
            cwd=workspace,
            timeout=max(1, settings.sample_timeout),
            check=False,
        )
    except subprocess.TimeoutExpired:
        return f"Error: the sample run exceeded {settings.sample_timeout} s."
    except OSError as exc:
        return f"Error: cannot run the sample: {exc}"
    last = proc.stdout.strip().splitlines()[-1:] if proc.stdout.strip() else []
    try:
        data = json.loads(last[0]) if last else None
    except ValueError:
        data = None
    if not isinstance(data, dict):
        return f"Error: the sample run failed (exit {proc.returncode}):\n{proc.stderr[-1500:]}"
    if "import_error" in data:
        return f"Error: task_agent.py failed to import:\n{data['import_error']}"
    lines = [f"Ran solve on {len(items)} train input(s) (no scores are available here):"]
    for r in data.get("results", []):
        if "error" in r:
            lines.append(f"- {r.get('id')}: ERROR\n{r['error']}")
        else:
            lines.append(f"- {r.get('id')}: output {r.get('output')}")
    return "\n".join(lines)
