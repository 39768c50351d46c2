"""Exporting a LoRA-tuned model as GGUF: on a tiny llama GGUF written here, the merged tensors
are peft's merge (in llama.cpp's row order), everything else is the base's byte for byte, and
llama.cpp (the local provider's runtime) computes what transformers computes with peft's merged
model; malformed adapters are the program's error."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("gguf")
pytest.importorskip("peft")
torch = pytest.importorskip("torch")

from hyperagents.exceptions import ConfigError, ProgramError  # noqa: E402
from hyperagents.weights import export_gguf, hf_to_gguf_rows  # noqa: E402

from gguf_helpers import TinyLora, load_gguf, tiny_lora  # noqa: E402
from tests_local import local_model  # noqa: E402

IDS = [1, 72, 101, 108, 108, 111, 33]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> TinyLora:
    return tiny_lora(tmp_path_factory.mktemp("tiny"))


def _logits(model: Any) -> Any:
    with torch.no_grad():
        return model(torch.tensor([IDS])).logits[0]


def _tensors(path: Path) -> dict[str, Any]:
    import gguf

    return {t.name: t for t in gguf.GGUFReader(path).tensors}


def test_rows_are_permuted_as_transformers_unpermutes_them() -> None:
    import numpy as np
    from transformers.modeling_gguf_pytorch_utils import LlamaTensorProcessor

    weight = np.arange(8 * 16 * 3, dtype=np.float32).reshape(8 * 16, 3)
    back = LlamaTensorProcessor()._reverse_permute_weights
    for heads in (8, 2):
        permuted = hf_to_gguf_rows(weight, heads)
        assert not np.array_equal(permuted, weight)
        assert np.array_equal(back(permuted, heads, heads), weight)


def test_the_merged_tensors_are_peft_s_merge_and_the_rest_is_the_base_s(
    tiny: TinyLora, tmp_path: Path
) -> None:
    import gguf

    out = tmp_path / "merged.gguf"
    done = export_gguf(tiny.files, out, base=tiny.base, tensor_type="f32")
    changed = {f"blk.{i}.attn_{m}.weight" for i in range(2) for m in "qkv"}
    assert set(done.merged) == changed and done.size == out.stat().st_size
    base, exported = gguf.GGUFReader(tiny.base), gguf.GGUFReader(out)
    assert {f.name: f.contents() for f in exported.fields.values() if f.name[:5] != "GGUF."} == {
        f.name: f.contents() for f in base.fields.values() if f.name[:5] != "GGUF."
    }
    before = {t.name: t for t in base.tensors}
    assert [t.name for t in exported.tensors] == list(before)
    for tensor in exported.tensors:
        if tensor.name in changed:
            assert tensor.tensor_type == gguf.GGMLQuantizationType.F32
        else:  # copied as they are: type and bytes
            assert tensor.tensor_type == before[tensor.name].tensor_type
            assert tensor.data.tobytes() == before[tensor.name].data.tobytes()
    loaded, reference = load_gguf(out).state_dict(), tiny.merged.state_dict()
    plain = load_gguf(tiny.base).state_dict()
    for name, value in reference.items():
        assert torch.allclose(loaded[name], value, atol=1e-5), name
        if any(f"{m}_proj" in name for m in "qkv"):
            assert (value - plain[name]).abs().max() > 0.05, name  # the adapter did change it
    assert torch.allclose(_logits(load_gguf(out)), _logits(tiny.merged), atol=1e-4)


@pytest.mark.parametrize(("kind", "tolerance"), [("f16", 2e-3), ("q8_0", 2e-2)])
def test_smaller_types_stay_close_to_the_merge(
    tiny: TinyLora, tmp_path: Path, kind: str, tolerance: float
) -> None:
    import gguf

    out = tmp_path / f"{kind}.gguf"
    export_gguf(tiny.files, out, base=tiny.base, tensor_type=kind)
    assert _tensors(out)["blk.1.attn_q.weight"].tensor_type.name == kind.upper()
    loaded, reference = load_gguf(out).state_dict(), tiny.merged.state_dict()
    name = "model.layers.1.self_attn.q_proj.weight"
    assert (loaded[name] - reference[name]).abs().max() < tolerance
    assert gguf.GGUFReader(out).get_field("general.architecture").contents() == "llama"


def test_rslora_scales_by_the_root_of_the_rank(tmp_path: Path) -> None:
    tiny = tiny_lora(tmp_path, seed=3, rslora=True)
    out = tmp_path / "rs.gguf"
    export_gguf(tiny.files, out, base=tiny.base, tensor_type="f32")
    assert torch.allclose(_logits(load_gguf(out)), _logits(tiny.merged), atol=1e-4)


@pytest.mark.skipif(not importlib.util.find_spec("llama_cpp"), reason="llama-cpp-python missing")
def test_llama_cpp_computes_what_transformers_computes_with_the_merged_model(
    tiny: TinyLora, tmp_path: Path
) -> None:
    import llama_cpp
    import numpy as np

    out = tmp_path / "merged.gguf"
    export_gguf(tiny.files, out, base=tiny.base)

    def scores(path: Path) -> Any:
        llama = llama_cpp.Llama(str(path), n_ctx=64, logits_all=True, verbose=False, seed=0)
        llama.eval(IDS)
        return np.array(llama.scores[: len(IDS)])

    merged, base = scores(out), scores(tiny.base)
    reference = _logits(tiny.merged).numpy()
    near = np.abs(merged - reference).max()
    assert near < 0.1 * np.abs(base - reference).max()  # the merge, not the base
    assert near < 0.02 * np.abs(reference).max()
    assert (merged.argmax(-1) == reference.argmax(-1)).mean() >= 0.8


def test_without_an_adapter_the_export_is_the_base(tiny: TinyLora, tmp_path: Path) -> None:
    files = {"config.json": json.dumps({"format": "lora-causal-lm", "base": {}, "adapter": None})}
    out = tmp_path / "plain.gguf"
    done = export_gguf({k: v.encode() for k, v in files.items()}, out, base=tiny.base)
    assert done.merged == ()
    base = _tensors(tiny.base)
    assert all(t.data.tobytes() == base[n].data.tobytes() for n, t in _tensors(out).items())


def _with(files: dict[str, bytes], **changes: Any) -> dict[str, bytes]:
    """``files`` with the adapter config's fields changed."""
    settings = json.loads(files["adapter_config.json"]) | changes
    return files | {"adapter_config.json": json.dumps(settings).encode()}


def test_bad_models_are_the_program_s_error_and_leave_no_file(
    tiny: TinyLora, tmp_path: Path
) -> None:
    from safetensors.numpy import save

    out = tmp_path / "bad.gguf"
    shape = {
        "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight": (4, 64),
        "base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight": (32, 4),
    }
    import numpy as np

    wrong = save({k: np.zeros(s, dtype=np.float32) for k, s in shape.items()})
    embed = save({"base_model.model.model.embed_tokens.lora_A.weight": np.zeros((4, 4), "f4")})
    cases = {
        "not a 'lora-causal-lm' model": {"config.json": b'{"format": "other"}'},
        "does not support use_dora": _with(tiny.files, use_dora=True),
        "r must be a positive integer": _with(tiny.files, r=0),
        "is 32x64": tiny.files | {"adapter_model.safetensors": wrong},
        "not a LoRA matrix": tiny.files | {"adapter_model.safetensors": embed},
        "header larger than the file": tiny.files | {"adapter_model.safetensors": b"\xff" * 16},
        "has no adapter_model.safetensors": {
            k: v for k, v in tiny.files.items() if k != "adapter_model.safetensors"
        },
    }
    for message, files in cases.items():
        with pytest.raises(ProgramError, match=message):
            export_gguf(files, out, base=tiny.base)
    path_base = {"format": "lora-causal-lm", "base": {"path": "base"}, "adapter": None}
    with pytest.raises(ProgramError, match="--base"):
        export_gguf({"config.json": json.dumps(path_base).encode()}, out)
    assert list(tmp_path.iterdir()) == []  # nothing written, no partial file left


def test_an_existing_file_is_kept_unless_overwrite(tiny: TinyLora, tmp_path: Path) -> None:
    out = tmp_path / "x.gguf"
    out.write_bytes(b"mine")
    with pytest.raises(ConfigError, match="exists"):
        export_gguf(tiny.files, out, base=tiny.base)
    assert out.read_bytes() == b"mine"
    with pytest.raises(ConfigError, match="tensor type"):
        export_gguf(tiny.files, out, base=tiny.base, tensor_type="q4_0", overwrite=True)
    export_gguf(tiny.files, out, base=tiny.base, overwrite=True)
    assert out.read_bytes()[:4] == b"GGUF"


def test_the_base_is_found_in_the_package_the_config_names(tiny: TinyLora, tmp_path: Path) -> None:
    config = json.loads(tiny.files["config.json"])
    config["base"] = {"package": "no_such_model_package", "gguf_file": "m.gguf"}
    files = tiny.files | {"config.json": json.dumps(config).encode()}
    with pytest.raises(ConfigError, match="'no_such_model_package' is not installed"):
        export_gguf(files, tmp_path / "x.gguf")
    config["base"] = {"package": "os.path", "gguf_file": "m.gguf"}  # a name, never imported
    files = tiny.files | {"config.json": json.dumps(config).encode()}
    with pytest.raises(ProgramError, match="is not a name"):
        export_gguf(files, tmp_path / "x.gguf")


@pytest.mark.slow  # reads the 98 MB file's 49,152 tokens three times
@local_model
def test_the_support_lora_seed_exports_as_the_bundled_model(tmp_path: Path) -> None:
    import gguf

    from hyperagents.tasks import load_task
    from hyperagents.weights import model_files

    seed = load_task("support-lora").seed_program()
    done = export_gguf(model_files(seed), tmp_path / "seed.gguf")
    assert done.base.name == "SmolLM2-135M-Instruct.Q4_1.gguf" and done.merged == ()
    base, out = gguf.GGUFReader(done.base), gguf.GGUFReader(done.path)
    assert len(out.tensors) == len(base.tensors) == 272
    for mine, theirs in zip(out.tensors, base.tensors, strict=True):
        assert mine.name == theirs.name and mine.tensor_type == theirs.tensor_type
        assert mine.data.tobytes() == theirs.data.tobytes()
    assert out.get_field("tokenizer.chat_template").contents().startswith("{% for message")
