"""Labels people post for train instances: the ``people`` source of training data.

A label is an event of the run (kind :data:`LABEL_EVENT`, data ``{"instance_id", "output",
"by"}``): stored in the run's record like every other step people take, in any storage, and
kept in order, so the latest label of an instance is the one that counts. Only train
instances take labels (a val or test instance id is refused with a clear error); a label is
JSON, at most :data:`MAX_LABEL_BYTES` of it.
"""

from __future__ import annotations

import json
from typing import Any

from hyperagents.exceptions import ConfigError
from hyperagents.storages import BaseStorage
from hyperagents.tasks import Split, Task

__all__ = ["LABEL_EVENT", "MAX_LABEL_BYTES", "labels", "post_label"]

#: The kind of the event a label is stored as.
LABEL_EVENT = "label.posted"
#: The largest label, as JSON.
MAX_LABEL_BYTES = 64 * 1024


def post_label(
    storage: BaseStorage, run_id: int, task: Task, instance_id: str, output: Any, *, by: str
) -> dict[str, Any]:
    """Store a person's label for the train instance ``instance_id`` of the run.

    Args:
        storage: The run's storage.
        run_id: The run.
        task: The run's task (its train split says which ids take labels).
        instance_id: The train instance.
        output: The output the agent should give (JSON).
        by: Who posted it.

    Returns:
        The label as stored.

    Raises:
        ConfigError: The id is not a train instance's (val and test never take labels), or
            the output is not JSON or too large.
        RunNotFoundError: No such run.
    """
    train = {inst.id for inst in task.instances(Split.TRAIN)}
    if instance_id not in train:
        held = {inst.id for split in (Split.VAL, Split.TEST) for inst in task.instances(split)}
        if instance_id in held:
            raise ConfigError(
                f"{instance_id!r} is a val or test instance: only train instances take labels "
                "(val and test data never enter training)"
            )
        raise ConfigError(f"{instance_id!r} is not a train instance of task {task.name!r}")
    try:
        text = json.dumps(output, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"a label must be JSON: {exc}") from None
    if len(text.encode("utf-8")) > MAX_LABEL_BYTES:
        raise ConfigError(f"a label may hold at most {MAX_LABEL_BYTES} bytes of JSON")
    label = {"instance_id": instance_id, "output": output, "by": by}
    storage.add_event(run_id, LABEL_EVENT, f"label for {instance_id} by {by}", data=label)
    return label


def labels(storage: BaseStorage, run_id: int, *, before_id: int | None = None) -> dict[str, Any]:
    """The labels people posted for the run: the latest output per instance id.

    Args:
        storage: The run's storage.
        run_id: The run.
        before_id: Only labels recorded before this event id (a training redone after a
            crash then trains on the labels the first attempt saw).

    Raises:
        RunNotFoundError: No such run.
    """
    found: dict[str, Any] = {}
    for event in storage.list_events(run_id, kinds=[LABEL_EVENT], before_id=before_id):
        data = event.data or {}
        instance_id = data.get("instance_id")
        if isinstance(instance_id, str) and "output" in data:
            found[instance_id] = data["output"]
    return found
