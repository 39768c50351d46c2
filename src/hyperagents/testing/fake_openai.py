"""A fake OpenAI-compatible HTTP server for tests: real HTTP, scripted replies, injected faults.

:class:`FakeOpenAIServer` speaks enough of the OpenAI REST API (``POST /v1/chat/completions`` and
``GET /v1/models``) for the real ``openai`` client, and any other OpenAI-compatible client, to talk
to it over a real socket. Each chat completion request takes the next reply of a script
(:class:`FakeReply` or a plain string); a reply can also be an HTTP error (429 with a
``retry-after`` header, 500, ...), a delay longer than the client's timeout, or a body that is not
valid JSON. When the script runs out, a ``handler`` function of the request body answers, else a
``default`` reply, else an HTTP 500 error ("fake server: script exhausted").

Every request body is recorded in :attr:`FakeOpenAIServer.requests`, so tests can assert what the
client sent. The server runs in a daemon thread and handles requests concurrently. It uses only
the standard library.

Example:
    >>> import openai
    >>> from hyperagents.testing import FakeOpenAIServer, FakeReply
    >>> with FakeOpenAIServer(["hello", FakeReply(status=429)]) as server:  # doctest: +SKIP
    ...     client = openai.OpenAI(base_url=server.base_url, api_key="test", max_retries=0)
    ...     reply = client.chat.completions.create(
    ...         model="m", messages=[{"role": "user", "content": "hi"}]
    ...     )
    ...     reply.choices[0].message.content
    'hello'
"""

from __future__ import annotations

import collections
import json
import math
import sys
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, cast

__all__ = ["FakeOpenAIServer", "FakeReply", "ReplyHandler"]

CREATED = 1_700_000_000
"""The fixed ``created`` timestamp of every response, so that responses are deterministic."""

MALFORMED_BODY = '{"choices": ['
"""The body sent for a :attr:`FakeReply.malformed` reply: truncated, not valid JSON."""

_ERROR_TYPES: dict[int, tuple[str, str | None]] = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("permission_error", None),
    404: ("invalid_request_error", "unknown_url"),
    405: ("invalid_request_error", "method_not_allowed"),
    408: ("timeout_error", None),
    409: ("conflict_error", None),
    422: ("invalid_request_error", None),
    429: ("rate_limit_error", "rate_limit_exceeded"),
}
_MAX_BODY_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class FakeReply:
    """One scripted answer of :class:`FakeOpenAIServer`.

    Attributes:
        content: The assistant message text. For an error reply (``status != 200``) it is the
            error message, ``"fake server error"`` when empty.
        status: The HTTP status. Anything but 200 answers with an OpenAI-style error body
            ``{"error": {"message", "type", "code"}}``.
        delay: Seconds to wait before answering; longer than the client's timeout, it simulates
            a timeout. Stopping the server cuts the wait short.
        malformed: Answer with :data:`MALFORMED_BODY`, which is not valid JSON, and the
            status ``status`` (200 by default).
        usage: Token counts ``{"prompt_tokens", "completion_tokens"}`` (``"total_tokens"``
            optional) to report. Missing counts are estimated deterministically: a quarter of
            the characters of the request messages and of ``content``, rounded up.
        finish_reason: The choice's ``finish_reason`` (``"stop"``, ``"length"``, ...).
        headers: Extra response headers, e.g. ``{"retry-after": "0"}`` for a 429.

    Raises:
        ValueError: If ``status`` is not an HTTP status (100 to 599) or ``delay`` is negative.
    """

    content: str = ""
    status: int = 200
    delay: float = 0.0
    malformed: bool = False
    usage: Mapping[str, int] | None = None
    finish_reason: str = "stop"
    headers: Mapping[str, str] | None = None

    def __post_init__(self) -> None:
        if not 100 <= self.status <= 599:
            raise ValueError(f"status must be an HTTP status (100-599), got {self.status}")
        if self.delay < 0:
            raise ValueError(f"delay must be >= 0, got {self.delay}")


ReplyHandler = Callable[[dict[str, Any]], FakeReply | str]
"""A function of a chat completion request body that returns the reply to send."""


def _as_reply(reply: FakeReply | str) -> FakeReply:
    """Turn a plain string into a successful reply with that content."""
    if isinstance(reply, FakeReply):
        return reply
    if isinstance(reply, str):
        return FakeReply(content=reply)
    raise TypeError(f"a reply must be a FakeReply or a str, got {type(reply).__name__}")


def _estimate_tokens(text: str) -> int:
    """A deterministic token estimate: one token per four characters, rounded up."""
    return math.ceil(len(text) / 4)


def _message_text(body: Mapping[str, Any]) -> str:
    """The text of every message of a chat completion request, concatenated."""
    messages = body.get("messages")
    if not isinstance(messages, list):
        return ""
    parts: list[str] = []
    for message in messages:
        if not isinstance(message, dict):
            continue
        content = message.get("content")
        if isinstance(content, str):
            parts.append(content)
        elif isinstance(content, list):
            parts.extend(
                part["text"]
                for part in content
                if isinstance(part, dict) and isinstance(part.get("text"), str)
            )
    return "".join(parts)


def _error_body(status: int, message: str) -> dict[str, Any]:
    """An OpenAI-style error body for an HTTP status.

    Args:
        status: The HTTP status of the response.
        message: The human-readable error message.

    Returns:
        ``{"error": {"message": message, "type": ..., "code": ...}}``.
    """
    error_type, code = _ERROR_TYPES.get(
        status, ("server_error", None) if status >= 500 else ("invalid_request_error", None)
    )
    return {"error": {"message": message, "type": error_type, "code": code}}


class FakeOpenAIServer:
    """An OpenAI-compatible HTTP server on localhost that answers from a script.

    Use it as a context manager (or call :meth:`start` and :meth:`stop`)::

        with FakeOpenAIServer(["first reply", FakeReply(status=429)]) as server:
            client = openai.OpenAI(base_url=server.base_url, api_key="x", max_retries=0)
            ...

    Endpoints: ``POST /v1/chat/completions`` answers the next reply (FIFO) of the script; when
    the script is empty, ``handler(body)`` answers if set, else ``default``, else an HTTP 500
    "fake server: script exhausted". A handler that raises gives an HTTP 500 naming the error.
    ``GET /v1/models`` lists ``models`` (by default ``model``), or answers 404 with
    ``list_models=False``, like a server without that endpoint. A request body that is not a
    JSON object gets a 400, a streaming request (``"stream": true``) a 400 (streaming is not
    supported), an unknown path a 404, and, when ``api_key`` is set, a request without
    ``Authorization: Bearer <api_key>`` a 401; all errors have OpenAI-style JSON bodies.

    Attributes:
        requests: The JSON bodies of the chat completion requests that were answered, in the
            order they arrived (requests rejected with a 400 or 401 are not recorded).
        model: The model reported when a request names none (and listed by default).
        models: The models ``/v1/models`` lists.
        models_requests: How many ``GET /v1/models`` requests arrived (any answer).

    Args:
        replies: The initial script; a ``str`` means ``FakeReply(content=that)``.
        handler: Answers requests once the script is empty (see :meth:`set_handler`).
        default: The reply once the script is empty and no handler is set.
        model: The model name to list and to report by default.
        host: The interface to listen on.
        port: The port to listen on; 0 picks a free port when the server starts.
        api_key: If set, the bearer token every request must carry.
        models: The models ``/v1/models`` lists; ``None``: just ``model``.
        list_models: Whether ``/v1/models`` exists (False: it answers 404).
    """

    def __init__(
        self,
        replies: Iterable[FakeReply | str] = (),
        *,
        handler: ReplyHandler | None = None,
        default: FakeReply | str | None = None,
        model: str = "fake-model",
        host: str = "127.0.0.1",
        port: int = 0,
        api_key: str | None = None,
        models: Sequence[str] | None = None,
        list_models: bool = True,
    ) -> None:
        self._script: collections.deque[FakeReply] = collections.deque(
            _as_reply(reply) for reply in replies
        )
        self._handler = handler
        self._default = None if default is None else _as_reply(default)
        self.model = model
        self.models: tuple[str, ...] = (model,) if models is None else tuple(models)
        self.models_requests = 0
        self._list_models = list_models
        self._host = host
        self._port = port
        self._api_key = api_key
        self.requests: list[dict[str, Any]] = []
        #: The headers of those requests (names lower-cased), in the same order.
        self.request_headers: list[dict[str, str]] = []
        self._calls = 0
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> FakeOpenAIServer:
        """Bind the port and start serving in a daemon thread.

        Returns:
            The server itself.

        Raises:
            RuntimeError: If the server is already running.
            OSError: If the port cannot be bound.
        """
        if self._server is not None:
            raise RuntimeError("the fake OpenAI server is already running")
        self._stopping.clear()
        server = _HTTPServer((self._host, self._port), _Handler)
        server.fake = self
        self._server = server
        self._port = server.server_address[1]
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"fake-openai-{self._port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and free the port; requests still waiting on a delay are cut short.

        Stopping a server that is not running does nothing.
        """
        server, thread = self._server, self._thread
        if server is None:
            return
        self._stopping.set()
        server.shutdown()
        server.server_close()
        if thread is not None:
            thread.join(timeout=5)
        self._server = None
        self._thread = None

    def __enter__(self) -> FakeOpenAIServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- properties ------------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The port the server listens on (0 before the first start when it was 0)."""
        return self._port

    @property
    def base_url(self) -> str:
        """The API base URL to give a client, e.g. ``"http://127.0.0.1:PORT/v1"``.

        Raises:
            RuntimeError: If the port is not known yet (port 0 and the server never started).
        """
        if self._port == 0:
            raise RuntimeError("start the fake OpenAI server before asking for its base_url")
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"http://{host}:{self._port}/v1"

    @property
    def calls(self) -> int:
        """The number of chat completion requests answered (scripted, handled or exhausted)."""
        with self._lock:
            return self._calls

    # -- scripting -------------------------------------------------------------------------

    def add_reply(self, reply: FakeReply | str) -> None:
        """Append a reply to the script.

        Args:
            reply: The reply; a ``str`` means ``FakeReply(content=reply)``.
        """
        reply = _as_reply(reply)
        with self._lock:
            self._script.append(reply)

    def add_fault(
        self,
        status: int = 500,
        *,
        message: str = "injected fault",
        delay: float = 0.0,
        malformed: bool = False,
    ) -> None:
        """Append a failing reply to the script.

        Args:
            status: The HTTP status of the error.
            message: The error message of the OpenAI-style error body.
            delay: Seconds to wait before answering.
            malformed: Send a body that is not valid JSON instead of the error body.
        """
        self.add_reply(FakeReply(content=message, status=status, delay=delay, malformed=malformed))

    def set_handler(self, handler: ReplyHandler | None) -> None:
        """Set the function that answers requests once the script is empty.

        Args:
            handler: A function of the request body (a ``dict``) that returns a
                :class:`FakeReply` or a ``str``; it may be called from several threads at once.
                ``None`` removes the handler.
        """
        with self._lock:
            self._handler = handler

    # -- request handling (called from the server's threads) -------------------------------

    def _authorized(self, authorization: str | None) -> bool:
        return self._api_key is None or authorization == f"Bearer {self._api_key}"

    def _next_reply(
        self, body: dict[str, Any], headers: Mapping[str, str] | None = None
    ) -> tuple[int, FakeReply]:
        """Record a request and choose its reply; returns the call number and the reply."""
        with self._lock:
            self.requests.append(body)
            self.request_headers.append({k.lower(): v for k, v in (headers or {}).items()})
            self._calls += 1
            number = self._calls
            scripted = self._script.popleft() if self._script else None
            handler = self._handler
        if scripted is not None:
            return number, scripted
        if handler is not None:
            try:
                return number, _as_reply(handler(body))
            except Exception as exc:  # report a broken handler to the client, keep serving
                message = f"fake server: handler raised {type(exc).__name__}: {exc}"
                return number, FakeReply(content=message, status=500)
        if self._default is not None:
            return number, self._default
        return number, FakeReply(content="fake server: script exhausted", status=500)

    def _completion(self, number: int, body: Mapping[str, Any], reply: FakeReply) -> bytes:
        """The JSON body of a successful chat completion."""
        usage = dict(reply.usage or {})
        prompt = usage.get("prompt_tokens", _estimate_tokens(_message_text(body)))
        completion = usage.get("completion_tokens", _estimate_tokens(reply.content))
        total = usage.get("total_tokens", prompt + completion)
        model = body.get("model")
        completion_body = {
            "id": f"chatcmpl-fake-{number}",
            "object": "chat.completion",
            "created": CREATED,
            "model": model if isinstance(model, str) and model else self.model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": reply.content},
                    "finish_reason": reply.finish_reason,
                }
            ],
            "usage": {
                "prompt_tokens": prompt,
                "completion_tokens": completion,
                "total_tokens": total,
            },
        }
        return json.dumps(completion_body).encode()

    def _models(self) -> bytes:
        """The JSON body of ``GET /v1/models``."""
        listing = {
            "object": "list",
            "data": [
                {"id": name, "object": "model", "created": CREATED, "owned_by": "fake"}
                for name in self.models
            ],
        }
        return json.dumps(listing).encode()


class _HTTPServer(ThreadingHTTPServer):
    """The HTTP server: one daemon thread per connection, quiet about vanished clients."""

    daemon_threads = True
    fake: FakeOpenAIServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Ignore clients that disconnect; report anything else as usual."""
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    """Answers one HTTP request on behalf of :class:`FakeOpenAIServer`."""

    server_version = "FakeOpenAI/1.0"
    timeout = 30  # seconds to wait on a silent client before dropping the connection

    @property
    def _fake(self) -> FakeOpenAIServer:
        return cast(_HTTPServer, self.server).fake

    def handle(self) -> None:
        """Handle the connection, ignoring clients that hang up (e.g. after their timeout)."""
        try:
            super().handle()
        except (ConnectionError, TimeoutError):
            self.close_connection = True

    def log_message(self, format: str, *args: Any) -> None:
        """Log nothing: tests stay quiet."""

    # -- HTTP methods ----------------------------------------------------------------------

    def do_GET(self) -> None:
        """``GET /v1/models``; anything else is a 404 (or a 405 for the chat endpoint)."""
        path = self._path()
        fake = self._fake
        if path == "/v1/models":
            with fake._lock:
                fake.models_requests += 1
        if not self._check_auth():
            return
        if path == "/v1/models" and not fake._list_models:
            self._send_error(404, f"fake server: unknown path {self.path}")
        elif path == "/v1/models":
            self._send(200, fake._models())
        elif path == "/v1/chat/completions":
            self._send_error(405, "use POST for /v1/chat/completions")
        else:
            self._send_error(404, f"fake server: unknown path {self.path}")

    def do_POST(self) -> None:
        """``POST /v1/chat/completions``; anything else is a 404 (or a 405 for the models)."""
        path = self._path()
        # Read the body first, so that an early answer never leaves it unread on the socket.
        raw = self._read_body()
        if raw is None or not self._check_auth():
            return
        if path == "/v1/models":
            self._send_error(405, "use GET for /v1/models")
            return
        if path != "/v1/chat/completions":
            self._send_error(404, f"fake server: unknown path {self.path}")
            return
        try:
            body = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            self._send_error(400, f"fake server: the request body is not valid JSON ({exc})")
            return
        if not isinstance(body, dict):
            self._send_error(400, "fake server: the request body must be a JSON object")
            return
        if body.get("stream"):
            self._send_error(400, "streaming not supported by the fake server")
            return
        self._answer(body)

    # -- helpers ---------------------------------------------------------------------------

    def _path(self) -> str:
        path = self.path.split("?", 1)[0]
        return path.rstrip("/") or "/"

    def _read_body(self) -> bytes | None:
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if not 0 <= length <= _MAX_BODY_BYTES:
            self._send_error(400, "fake server: bad Content-Length")
            self.close_connection = True
            return None
        return self.rfile.read(length)

    def _check_auth(self) -> bool:
        if self._fake._authorized(self.headers.get("Authorization")):
            return True
        self._send_error(401, "fake server: incorrect API key provided")
        return False

    def _answer(self, body: dict[str, Any]) -> None:
        fake = self._fake
        number, reply = fake._next_reply(body, dict(self.headers.items()))
        if reply.delay and fake._stopping.wait(reply.delay):
            self.close_connection = True  # the server is stopping: drop the request
            return
        headers = dict(reply.headers or {})
        headers.setdefault("x-request-id", f"req-fake-{number}")
        if reply.malformed:
            self._send(reply.status, MALFORMED_BODY.encode(), headers)
        elif reply.status != 200:
            message = reply.content or "fake server error"
            payload = json.dumps(_error_body(reply.status, message)).encode()
            self._send(reply.status, payload, headers)
        else:
            self._send(200, fake._completion(number, body, reply), headers)

    def _send_error(self, status: int, message: str) -> None:
        self._send(status, json.dumps(_error_body(status, message)).encode())

    def _send(self, status: int, payload: bytes, headers: Mapping[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)
        self.wfile.flush()
