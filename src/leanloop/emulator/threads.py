"""Message threads (beta ``message-threads-2026-08-12``): the server keeps a conversation so a client sends only the
new messages. The SDK's own tool runner (``client.beta.messages.tool_runner``) runs over a thread by default.

- ``thread: {"type": "create"}`` with the full request: the emulator stores it, with the reply, under the reply's id.
- ``thread: {"type": "continue", "previous_message_id": id}`` with only the new messages and no ``system``/``tools``:
  the emulator rebuilds the full request (the stored one, its reply, the new messages; the request's own settings
  such as ``max_tokens``, ``tool_choice``, ``thinking`` and top-level ``cache_control`` as sent) and serves that. The
  policy sees the full request, and prompt caching bills the full prefix, exactly as for the same conversation sent
  whole (threads change latency, not billing: API-FACTS 9). Stored messages lose their block-level
  ``cache_control``, as when the SDK replays them: each was set for the turn that sent it.
- Errors, with ``error.details.error_code`` as the SDK reads it: 404 ``thread_not_found`` (unknown id, or expired: 5
  minutes after the request that stored it, on the emulator's clock); 400 ``thread_already_continued`` (each reply
  can be continued once); 400 ``thread_continue_in_flight`` (another request is continuing from it right now); 400
  ``thread_fingerprint_mismatch`` (another model than the thread's). ``system`` or ``tools`` on a ``continue``, a
  ``thread`` field without the beta header, or a malformed one, are plain 400s.

A reply is stored only when it was served whole: a stream cut by a fault leaves the thread where it was, and the
SDK starts a new thread, as it does against the real API. Pure except for the store itself (no I/O, no clock).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

from leanloop.emulator.policies import content_blocks, messages_of
from leanloop.errors import InvalidRequestError

__all__ = ["THREADS_BETA", "THREAD_TTL_S", "ThreadError", "Threads"]

THREADS_BETA = "message-threads-2026-08-12"
THREAD_TTL_S = 300.0  # a thread expires 5 minutes after its last request
_CREATE_ONLY = ("system", "tools")
_PURGE_EVERY = 256  # stores between sweeps of expired threads


class ThreadError(InvalidRequestError):
    """A thread request the API refuses, with the ``error_code`` it puts in ``error.details``."""

    def __init__(self, message: str, error_code: str, *, status: int = 400) -> None:
        error_type = "not_found_error" if status == 404 else "invalid_request_error"
        super().__init__(message, status=status, error_type=error_type)
        self.error_code = error_code


@dataclass
class _Stored:
    """A reply the thread can continue from: the full request it answered, its content, when it was stored."""

    request: Mapping[str, Any] | None  # None once continued: only the newest reply needs its request
    content: list[dict[str, Any]]
    stored_at: float
    continued: bool = False
    in_flight: bool = False


@dataclass(frozen=True, slots=True)
class Resolved:
    """A request as the model sees it: the full body, and the reply it continues (None for no thread or create)."""

    body: dict[str, Any]
    kind: str | None = None  # "create" or "continue"
    continues: str | None = None


class Threads:
    """The threads of one emulator, by reply id."""

    def __init__(self, ttl_s: float = THREAD_TTL_S) -> None:
        self.ttl_s = ttl_s
        self._stored: dict[str, _Stored] = {}
        self._stores = 0

    def __len__(self) -> int:
        return len(self._stored)

    def resolve(self, body: Mapping[str, Any], betas: Collection[str], now: float) -> Resolved:
        """The full request ``body`` stands for at emulated time ``now``. Raises ``ThreadError``.

        A ``continue`` holds its previous reply until ``store`` or ``release`` says how it ended.
        """
        thread = body.get("thread")
        if thread is None:
            return Resolved(dict(body))
        kind = _kind(thread, betas)
        plain = {k: v for k, v in body.items() if k != "thread"}
        if kind == "create":
            return Resolved(plain, "create")
        previous = cast(Mapping[str, Any], thread).get("previous_message_id")
        if not isinstance(previous, str) or not previous:
            raise InvalidRequestError("thread.continue.previous_message_id: Field required")
        stored = self._continuable(previous, plain, now)
        request = cast(Mapping[str, Any], stored.request)
        full = {**plain, "messages": _rebuilt(request, stored.content, messages_of(plain))}
        for name in _CREATE_ONLY:
            if name in request:
                full[name] = request[name]
        stored.in_flight = True
        return Resolved(full, "continue", previous)

    def _continuable(self, previous: str, body: Mapping[str, Any], now: float) -> _Stored:
        for name in _CREATE_ONLY:
            if body.get(name) is not None:
                raise InvalidRequestError(
                    f"{name}: leave it out of a `continue` request: the thread keeps the {name} of its create request"
                )
        stored = self._stored.get(previous)
        if stored is None or now - stored.stored_at > self.ttl_s:
            self._stored.pop(previous, None)
            raise ThreadError(
                f"thread.continue.previous_message_id: no thread holds {previous} (unknown, or expired {self.ttl_s:g} "
                "s after its last request): replay the full conversation with thread {type: create}",
                "thread_not_found",
                status=404,
            )
        if stored.continued:
            raise ThreadError(
                f"thread.continue.previous_message_id: {previous} was already continued; continue from the thread's "
                "most recent response id",
                "thread_already_continued",
            )
        if stored.in_flight:
            raise ThreadError(
                f"thread.continue.previous_message_id: another request is still continuing from {previous}",
                "thread_continue_in_flight",
            )
        model = cast(Mapping[str, Any], stored.request).get("model")
        if body.get("model") != model:
            raise ThreadError(
                f"model: the thread was created with {model}; replay the conversation with thread {{type: create}} "
                "to change it",
                "thread_fingerprint_mismatch",
            )
        return stored

    def store(self, message_id: str, resolved: Resolved, content: list[dict[str, Any]], now: float) -> None:
        """Keep the reply ``message_id`` to ``resolved`` (a create or a continue) for the next ``continue``."""
        if resolved.kind is None:
            return
        self._stored[message_id] = _Stored(resolved.body, content, now)
        if resolved.continues is not None and (previous := self._stored.get(resolved.continues)) is not None:
            previous.continued, previous.in_flight, previous.request = True, False, None
        self._stores += 1
        if self._stores % _PURGE_EVERY == 0:
            expired = [key for key, stored in self._stored.items() if now - stored.stored_at > self.ttl_s]
            for key in expired:
                del self._stored[key]

    def release(self, resolved: Resolved) -> None:
        """A ``continue`` ended without a stored reply (an error, a fault): its previous reply is continuable again."""
        if resolved.continues is not None and (previous := self._stored.get(resolved.continues)) is not None:
            previous.in_flight = False


def _kind(thread: Any, betas: Collection[str]) -> str:
    if THREADS_BETA not in betas:
        raise InvalidRequestError(f"thread: requires the anthropic-beta header {THREADS_BETA}")
    if not isinstance(thread, Mapping):
        raise InvalidRequestError("thread: Input should be a valid dictionary")
    kind = cast(Mapping[str, Any], thread).get("type")
    if kind not in ("create", "continue"):
        expected = "'create', 'continue'"
        raise InvalidRequestError(
            f"thread: Input tag '{kind}' found using 'type' does not match any of the expected tags: {expected}"
        )
    return str(kind)


def _rebuilt(
    request: Mapping[str, Any], reply: list[dict[str, Any]], new: Sequence[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """The stored messages (without their block-level cache_control), the stored reply, then the new messages."""
    stored = [{**m, "content": _unmarked(content_blocks(m))} for m in messages_of(request)]
    return [*stored, {"role": "assistant", "content": reply}, *(dict(m) for m in new)]


def _unmarked(blocks: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    unmarked: list[dict[str, Any]] = []
    for block in blocks:
        copy = {k: v for k, v in block.items() if k != "cache_control"}
        if isinstance(copy.get("content"), list):
            copy["content"] = _unmarked(content_blocks({"content": copy["content"]}))
        unmarked.append(copy)
    return unmarked
