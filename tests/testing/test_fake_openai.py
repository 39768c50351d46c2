"""The fake OpenAI-compatible server, driven by the real ``openai`` client over real HTTP."""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import openai
import pytest

from hyperagents.testing import FakeOpenAIServer, FakeReply

pytestmark = pytest.mark.timeout(300)  # a hang guard, far past what a busy machine needs

MESSAGES: list[Any] = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "Say hello."},
]


@pytest.fixture
def server() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer() as fake:
        yield fake


def client_for(server: FakeOpenAIServer, *, timeout: float = 60.0, key: str = "test") -> Any:
    return openai.OpenAI(base_url=server.base_url, api_key=key, max_retries=0, timeout=timeout)


def ask(client: Any, content: str = "Say hello.", model: str = "gpt-test") -> Any:
    return client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": content}]
    )


def raw_request(
    server: FakeOpenAIServer,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, Any]]:
    """Send one request with the standard library; returns the status and the JSON body."""
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


def test_scripted_replies_come_back_in_order(server: FakeOpenAIServer) -> None:
    server.add_reply("first")
    server.add_reply(FakeReply(content="second", finish_reason="length"))
    client = client_for(server)

    one = ask(client)
    two = ask(client)

    assert one.choices[0].message.content == "first"
    assert one.choices[0].message.role == "assistant"
    assert one.choices[0].finish_reason == "stop"
    assert two.choices[0].message.content == "second"
    assert two.choices[0].finish_reason == "length"
    assert (one.id, two.id) == ("chatcmpl-fake-1", "chatcmpl-fake-2")
    assert one.model == "gpt-test"
    assert server.calls == 2


def test_constructor_script_is_used_before_added_replies() -> None:
    with FakeOpenAIServer(["a", FakeReply(content="b")]) as server:
        server.add_reply("c")
        client = client_for(server)
        assert [ask(client).choices[0].message.content for _ in range(3)] == ["a", "b", "c"]


def test_explicit_usage_reaches_the_client(server: FakeOpenAIServer) -> None:
    server.add_reply(FakeReply(content="ok", usage={"prompt_tokens": 123, "completion_tokens": 7}))

    usage = ask(client_for(server)).usage

    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (123, 7, 130)


def test_default_usage_is_a_deterministic_estimate(server: FakeOpenAIServer) -> None:
    server.add_reply("x" * 9)  # 9 characters: 3 tokens
    server.add_reply("x" * 9)
    client = client_for(server)

    first = client.chat.completions.create(model="m", messages=MESSAGES).usage
    second = client.chat.completions.create(model="m", messages=MESSAGES).usage

    prompt_chars = sum(len(m["content"]) for m in MESSAGES)
    assert first.prompt_tokens == -(-prompt_chars // 4)
    assert first.completion_tokens == 3
    assert first.total_tokens == first.prompt_tokens + 3
    assert second == first


def test_rate_limit_with_retry_after(server: FakeOpenAIServer) -> None:
    server.add_reply(FakeReply(status=429, content="slow down", headers={"retry-after": "0"}))

    with pytest.raises(openai.RateLimitError) as caught:
        ask(client_for(server))

    assert caught.value.status_code == 429
    assert caught.value.response.headers["retry-after"] == "0"
    assert "slow down" in caught.value.message
    assert caught.value.body == {
        "message": "slow down",
        "type": "rate_limit_error",
        "code": "rate_limit_exceeded",
    }


def test_server_error_fault(server: FakeOpenAIServer) -> None:
    server.add_fault(500, message="boom")
    server.add_reply("recovered")
    client = client_for(server)

    with pytest.raises(openai.InternalServerError, match="boom"):
        ask(client)
    assert ask(client).choices[0].message.content == "recovered"


def test_delay_past_the_client_timeout_times_out_and_the_server_survives(
    server: FakeOpenAIServer,
) -> None:
    server.add_reply(FakeReply(content="too late", delay=0.6))
    server.add_reply("on time")
    server.add_reply("after")
    impatient = client_for(server, timeout=0.2)

    # It gives up before the answer, which cannot come sooner than 0.6 s after the request.
    with pytest.raises(openai.APITimeoutError):
        ask(impatient)

    client = client_for(server)
    assert ask(client).choices[0].message.content == "on time"
    time.sleep(0.6)  # the abandoned request now writes to a socket its client has closed
    assert ask(client).choices[0].message.content == "after"
    assert server.calls == 3


def test_short_delay_within_the_timeout_is_answered(server: FakeOpenAIServer) -> None:
    server.add_reply(FakeReply(content="patient", delay=0.2))

    started = time.monotonic()
    reply = ask(client_for(server))

    assert reply.choices[0].message.content == "patient"
    assert time.monotonic() - started >= 0.2


def test_malformed_body_makes_the_client_raise(server: FakeOpenAIServer) -> None:
    server.add_reply(FakeReply(malformed=True))
    server.add_reply("fine")
    client = client_for(server)

    # The client fails to decode the truncated JSON (a ValueError such as JSONDecodeError in
    # the openai versions we know; a validation error is accepted too).
    with pytest.raises((openai.APIResponseValidationError, ValueError)):
        ask(client)
    assert ask(client).choices[0].message.content == "fine"


def test_exhausted_script_answers_500(server: FakeOpenAIServer) -> None:
    with pytest.raises(openai.InternalServerError, match="fake server: script exhausted"):
        ask(client_for(server))
    assert server.calls == 1


def test_default_reply_after_the_script() -> None:
    with FakeOpenAIServer(["scripted"], default="fallback") as server:
        client = client_for(server)
        contents = [ask(client).choices[0].message.content for _ in range(3)]
    assert contents == ["scripted", "fallback", "fallback"]


def test_handler_answers_after_the_script_and_before_the_default() -> None:
    seen: list[dict[str, Any]] = []

    def echo(body: dict[str, Any]) -> FakeReply | str:
        seen.append(body)
        return f"echo: {body['messages'][-1]['content']}"

    with FakeOpenAIServer(["scripted"], handler=echo, default="unused") as server:
        client = client_for(server)
        first = ask(client, "one").choices[0].message.content
        second = ask(client, "two").choices[0].message.content
        server.set_handler(lambda body: FakeReply(content="swapped"))
        third = ask(client, "three").choices[0].message.content
        server.set_handler(None)
        fourth = ask(client, "four").choices[0].message.content

    assert [first, second, third, fourth] == ["scripted", "echo: two", "swapped", "unused"]
    assert [body["messages"][-1]["content"] for body in seen] == ["two"]


def test_a_failing_handler_answers_500_and_the_server_keeps_serving() -> None:
    def broken(body: dict[str, Any]) -> str:
        raise KeyError("nope")

    with FakeOpenAIServer(handler=broken) as server:
        client = client_for(server)
        with pytest.raises(openai.InternalServerError, match="handler raised KeyError"):
            ask(client)
        server.add_reply("still alive")
        assert ask(client).choices[0].message.content == "still alive"


def test_requests_are_recorded(server: FakeOpenAIServer) -> None:
    server.add_reply("a")
    server.add_reply("b")
    client = client_for(server)

    client.chat.completions.create(model="model-one", messages=MESSAGES, temperature=0.5)
    ask(client, "second", model="model-two")

    assert [body["model"] for body in server.requests] == ["model-one", "model-two"]
    assert server.requests[0]["messages"] == MESSAGES
    assert server.requests[0]["temperature"] == 0.5
    assert server.requests[1]["messages"] == [{"role": "user", "content": "second"}]


def test_api_key_is_enforced() -> None:
    with FakeOpenAIServer(["secret reply"], api_key="sk-right") as server:
        with pytest.raises(openai.AuthenticationError):
            ask(client_for(server, key="sk-wrong"))
        with pytest.raises(openai.AuthenticationError):
            client_for(server, key="sk-wrong").models.list()
        assert server.requests == []
        assert ask(client_for(server, key="sk-right")).choices[0].message.content == (
            "secret reply"
        )


def test_models_endpoint_lists_the_model() -> None:
    with FakeOpenAIServer(model="tiny-model") as server:
        models = client_for(server).models.list()
        assert [model.id for model in models.data] == ["tiny-model"]
        assert server.calls == 0


def test_the_model_defaults_to_the_server_model() -> None:
    with FakeOpenAIServer(["x"], model="tiny-model") as server:
        status, body = raw_request(
            server,
            "POST",
            "/v1/chat/completions",
            json.dumps({"messages": []}).encode(),
            {"Content-Type": "application/json"},
        )
    assert status == 200
    assert body["model"] == "tiny-model"
    assert body["object"] == "chat.completion"


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "message"),
    [
        ("GET", "/v1/nope", None, 404, "unknown path"),
        ("POST", "/v2/chat/completions", b"{}", 404, "unknown path"),
        ("POST", "/v1/chat/completions", b"{not json", 400, "not valid JSON"),
        ("POST", "/v1/chat/completions", b"[1, 2]", 400, "JSON object"),
        (
            "POST",
            "/v1/chat/completions",
            b'{"model": "m", "messages": [], "stream": true}',
            400,
            "streaming not supported by the fake server",
        ),
        ("GET", "/v1/chat/completions", None, 405, "POST"),
    ],
)
def test_bad_requests_get_openai_style_errors(
    server: FakeOpenAIServer,
    method: str,
    path: str,
    body: bytes | None,
    status: int,
    message: str,
) -> None:
    server.add_reply("never sent")

    got_status, got_body = raw_request(server, method, path, body)

    assert got_status == status
    assert message in got_body["error"]["message"]
    assert set(got_body["error"]) == {"message", "type", "code"}
    assert server.requests == []
    assert server.calls == 0


def test_concurrent_requests_from_threads(server: FakeOpenAIServer) -> None:
    # Served in parallel, not in a row: no request is answered before all 8 are in.
    all_in = threading.Barrier(8, timeout=60)

    def handler(body: dict[str, Any]) -> FakeReply:
        all_in.wait()
        return FakeReply(content=body["messages"][0]["content"])

    server.set_handler(handler)
    client = client_for(server, timeout=120)
    results: dict[int, str] = {}

    def worker(index: int) -> None:
        results[index] = ask(client, f"request {index}").choices[0].message.content

    threads = [threading.Thread(target=worker, args=(index,)) for index in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=180)

    assert results == {index: f"request {index}" for index in range(8)}
    assert server.calls == 8
    assert len(server.requests) == 8


def test_the_context_manager_frees_the_port() -> None:
    with FakeOpenAIServer(["x"]) as server:
        port = server.port
        assert server.base_url == f"http://127.0.0.1:{port}/v1"
        assert ask(client_for(server)).choices[0].message.content == "x"

    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
        pass
    # The port is free again: a new server can listen on it (with SO_REUSEADDR, like any
    # server, since the closed connections may linger in TIME_WAIT).
    with FakeOpenAIServer(["y"], port=port) as again:
        assert again.port == port
        assert ask(client_for(again)).choices[0].message.content == "y"


def test_stop_cuts_a_pending_delay_short() -> None:
    # Neither the hour-long delay nor the client's patience would end the call before the
    # test's own timeout: only the server's stop can.
    server = FakeOpenAIServer([FakeReply(content="slow", delay=3600)]).start()
    client = client_for(server, timeout=3600)
    errors: list[BaseException] = []

    def call() -> None:
        try:
            ask(client)
        except openai.APIError as exc:
            errors.append(exc)

    thread = threading.Thread(target=call, daemon=True)
    thread.start()
    while server.calls == 0:
        time.sleep(0.01)
    server.stop()
    thread.join(timeout=120)

    assert not thread.is_alive()
    assert len(errors) == 1
    assert isinstance(errors[0], openai.APIConnectionError)
    assert not isinstance(errors[0], openai.APITimeoutError)  # dropped, not timed out


def test_start_twice_is_an_error_and_restart_works() -> None:
    server = FakeOpenAIServer(default="again")
    with pytest.raises(RuntimeError):
        _ = server.base_url
    with server, pytest.raises(RuntimeError):
        server.start()
    server.stop()  # stopping a stopped server does nothing
    with server:
        assert ask(client_for(server)).choices[0].message.content == "again"


def test_invalid_replies_are_rejected() -> None:
    with pytest.raises(ValueError):
        FakeReply(status=99)
    with pytest.raises(ValueError):
        FakeReply(delay=-1)
    with pytest.raises(TypeError):
        FakeOpenAIServer([42])  # type: ignore[list-item]
