"""Claude Code session logs (``~/.claude/projects/<project>/<session>.jsonl``, sub-agents included) as CallRecords.

Claude Code writes one JSON line per content block of an assistant message and repeats the message's ``usage`` on
each, sometimes as a growing snapshot (a later line of the same message carries more output tokens). Summing lines
over-counts; keeping the first copy under-counts. Each model call is counted once, keyed by its message id (and
request id when present), with its most complete usage. A resumed session copies earlier messages into a new file:
the key makes those count once too, across every file of one import.

Calls come out while the file is read: a call is final once ``WINDOW`` newer calls have been seen (the lines of one
message, growing snapshots included, are never that far apart), and at the end of each file. What stays in memory
is a small set of hashed keys per call already out (to count copies once), the calls still open, and, with
``content``, the conversation path of each run plus the last ``NODE_WINDOW`` lines.

Entries whose model is ``<synthetic>`` are messages Claude Code wrote itself (an interruption notice, an API error):
they are not model calls and are skipped (counted). Each call is priced on its own, at its own timestamp.

With ``content=True`` the importer also follows the conversation (``uuid``/``parentUuid`` links) so ``explain`` and
``whatif`` can see, per call: whether the conversation prefix was rewritten since the previous call of the same run
(a rewind or edit: which message, before/after), compaction and slash commands in between, and an estimate of the
tokens of the messages sent (the rest of the prompt is system prompt and tool definitions, which the log does not
contain). Message texts are kept truncated to ``TEXT_LIMIT`` characters.
"""

from __future__ import annotations

import json
import re
import sys
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

from leanloop.analyze.changes import text_change
from leanloop.analyze.reading import top_level_scalars
from leanloop.errors import ConfigError
from leanloop.pricing import Pricing, default_pricing
from leanloop.tokens import count_text
from leanloop.trace import CallRecord
from leanloop.usage import Usage

__all__ = [
    "CLAUDE_CODE_LINE_TYPES",
    "NODE_WINDOW",
    "SESSION_END_LINES",
    "TEXT_LIMIT",
    "WINDOW",
    "ClaudeCodeImport",
    "agent_labels",
    "is_claude_code_line",
    "more_complete",
]

# Line types Claude Code writes (2.1.197's session writer and loader; older versions' too). Lines of these types
# that are not model calls are skipped silently; any other type is reported as an unknown line (Claude Code adds
# types over time: the report shows which).
CLAUDE_CODE_LINE_TYPES = frozenset(
    {
        # the conversation
        "user",
        "assistant",
        "system",
        "attachment",
        "progress",
        "summary",
        # session metadata, re-appended when a process ends and every 32 KB written (last-prompt: the resume
        # point; mode: the session's mode, once it is resumed or set)
        "last-prompt",
        "mode",
        "permission-mode",
        "custom-title",
        "ai-title",
        "tag",
        "relocated",
        "agent-name",
        "agent-color",
        "agent-setting",
        "isolation-latch",
        "worktree-state",
        "pr-link",
        "bridge-session",
        # undo, context management and bookkeeping
        "file-history-snapshot",
        "file-history-delta",
        "attribution-snapshot",
        "content-replacement",
        "fork-context-ref",
        "marble-origami-commit",
        "marble-origami-snapshot",
        "marble-origami-reset",
        "task-summary",
        "speculation-accept",
        "frame-link",
        "atis-latch",
        "queue-operation",
        # the last line of `claude -p --output-format stream-json`, when that output is saved as a log
        "result",
    }
)
# Metadata Claude Code re-appends when a process ends (and every 32 KB it writes): followed by a new prompt, they
# mark a session resumed or continued in a new process.
SESSION_END_LINES = frozenset({"last-prompt", "mode"})
SYNTHETIC_MODEL = "<synthetic>"
TEXT_LIMIT = 500
WINDOW = 256  # calls kept open for later lines of the same message
NODE_WINDOW = 20_000  # recent lines kept to follow the conversation (besides each run's current path)
_TOKEN_SAMPLE = 256  # characters counted per message; the rest is estimated in proportion
_COMMAND = re.compile(r"<command-name>\s*(/[^<\s]+)\s*</command-name>")


def is_claude_code_line(data: Mapping[str, Any]) -> bool:
    """True for a line that only Claude Code writes (used to detect the format from content). ``data`` may hold only
    the leading fields of a line too long to read whole: an assistant line names its type after its message, but
    starts with ``parentUuid`` and ``sessionId``."""
    if "kind" in data:
        return False
    kind = data.get("type")
    if kind is None:
        return "parentUuid" in data and "sessionId" in data and "userType" in data
    if not isinstance(kind, str) or kind not in CLAUDE_CODE_LINE_TYPES:
        return False
    return any(key in data for key in ("sessionId", "uuid", "parentUuid", "messageId", "leafUuid"))


_AGENT_META_KEYS = ("agentType", "toolUseId", "spawnDepth")


def agent_labels(meta: Any) -> dict[str, str] | None:
    """What a sub-agent's ``agent-<id>.meta.json`` (``agentType``, ``description``, ``toolUseId``, ``spawnDepth``)
    says about its run, as CallRecord notes (``agent_type``, ``agent_description``); None when ``meta`` is not
    such a file."""
    if not isinstance(meta, Mapping) or not any(key in meta for key in _AGENT_META_KEYS):
        return None
    meta = cast(Mapping[str, Any], meta)
    labels: dict[str, str] = {}
    for key, note in (("agentType", "agent_type"), ("description", "agent_description")):
        value = meta.get(key)
        if isinstance(value, str) and value.strip():
            labels[note] = sys.intern(value.strip())
    return labels


def more_complete(new: Usage, old: Usage) -> bool:
    """Whether ``new`` is a more complete snapshot of the same message's usage than ``old``.

    Snapshots only grow: more output, then more prompt tokens, then an explicit 5m/1h split, wins.
    """
    return (new.output_tokens, new.prompt_tokens, not new.split_estimated) > (
        old.output_tokens,
        old.prompt_tokens,
        not old.split_estimated,
    )


def _timestamp(value: Any) -> float | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value).timestamp()
    except ValueError:
        return None


@dataclass(slots=True)
class _Call:
    """One model call as seen so far (merged from every line that carries it)."""

    message_id: str
    request_id: str | None
    model: str
    usage: Usage
    started_at: float | None
    run_id: str
    path: str
    line: int
    stop_reason: str | None
    project: str | None
    notes: dict[str, Any] | None
    agent: Mapping[str, str] | None = None  # the sub-agent's labels, from its .meta.json


@dataclass(slots=True)
class _Node:
    """A line of the conversation tree. ``text`` is None for lines never sent to the model (progress, system)."""

    parent: str | None
    role: str
    text: str | None = None
    tokens: int = 0


@dataclass
class _Chain:
    """The messages sent by the latest call of one run, in order (uuids of content lines), at absolute positions
    (``messages.N``). Only the last ``NODE_WINDOW`` or so are kept: ``base`` is the position of the first kept."""

    base: int = 0
    uuids: list[str] = field(default_factory=list[str])
    index: dict[str, int] = field(default_factory=dict[str, int])  # uuid -> absolute position
    tokens: list[int] = field(default_factory=list[int])  # cumulative, from position 0
    events: list[str] = field(default_factory=list[str])
    ended: bool = False  # session-end metadata was written since the last conversation line

    def __len__(self) -> int:
        return self.base + len(self.uuids)

    def uuid_at(self, position: int) -> str:
        return self.uuids[position - self.base]

    def truncate(self, keep: int) -> None:
        """Keep positions before ``keep`` (``keep`` is never inside the part no longer kept but 0)."""
        cut = max(keep - self.base, 0)
        for uuid in self.uuids[cut:]:
            del self.index[uuid]
        del self.uuids[cut:], self.tokens[cut:]
        if keep == 0:
            self.base = 0

    def append(self, uuid: str, tokens: int) -> None:
        self.index[uuid] = len(self)
        self.uuids.append(uuid)
        self.tokens.append((self.tokens[-1] if self.tokens else 0) + tokens)
        if len(self.uuids) > 2 * NODE_WINDOW:  # a long session never compacted: forget its oldest messages
            for old in self.uuids[:NODE_WINDOW]:
                del self.index[old]
            del self.uuids[:NODE_WINDOW], self.tokens[:NODE_WINDOW]
            self.base += NODE_WINDOW

    def note(self, event: str) -> None:
        if event not in self.events:
            self.events.append(event)


def _is_prompt(data: Mapping[str, Any], content: Any) -> bool:
    """A user line that is a new prompt (not a tool result, not a line Claude Code adds itself)."""
    if data.get("isMeta") or data.get("isCompactSummary"):
        return False
    if isinstance(content, str):
        return True
    blocks = cast(list[Any], content) if isinstance(content, list) else []
    return not any(isinstance(b, Mapping) and cast(Mapping[str, Any], b).get("type") == "tool_result" for b in blocks)


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    return json.dumps(content, ensure_ascii=False, separators=(",", ":"), sort_keys=False)


class _Conversations:
    """Follows the uuid tree of one file to describe, per call, what changed since the run's previous call.

    Memory is bounded: besides each run's current path (the messages its latest call sent), only the last
    ``NODE_WINDOW`` lines are kept. A call whose path leads to a line no longer kept (or never seen: a resumed
    session's parent is in another file) is not reported as a rewrite: the path is taken as it is from there.
    """

    def __init__(self) -> None:
        self.nodes: dict[str, _Node] = {}
        self.chains: dict[str, _Chain] = {}
        self._lines = 0
        self._seen: dict[str, int] = {}  # run -> the line count when it was last seen
        self._limit = 2 * NODE_WINDOW

    def add_line(self, data: Mapping[str, Any], run_id: str) -> None:
        uuid = data.get("uuid")
        parent = data.get("parentUuid")
        parent = parent if isinstance(parent, str) else None
        kind = str(data.get("type"))
        chain = self._chain(run_id)
        message = data.get("message")
        node = _Node(parent, sys.intern(kind))
        if kind in ("user", "assistant") and isinstance(message, Mapping):
            content = cast(Mapping[str, Any], message).get("content")
            full = _content_text(content)
            node.text = full[:TEXT_LIMIT]
            sample = full[:_TOKEN_SAMPLE]
            node.tokens = count_text(sample) * len(full) // max(len(sample), 1) + 3
            if kind == "user":
                self._user_events(data, full, chain)
                if chain.ended and _is_prompt(data, content):
                    chain.note("resumed")
            chain.ended = chain.ended and kind == "user" and bool(data.get("isMeta"))
        elif kind in SESSION_END_LINES:
            chain.ended = True
        elif kind == "system" and data.get("subtype") == "compact_boundary":
            chain.note("compaction")
        elif kind == "system" and isinstance(data.get("content"), str):
            self._user_events(data, str(data["content"]), chain)
        if isinstance(uuid, str):
            self._keep(uuid, node)

    def add_unread(self, fields: Mapping[str, Any], run_id: str, size: int) -> None:
        """A line too long to read (pasted images): linked in, its size unknown (never counted as text)."""
        uuid, parent = fields.get("uuid"), fields.get("parentUuid")
        if isinstance(uuid, str):
            kind = str(fields.get("type", "user"))
            node = _Node(parent if isinstance(parent, str) else None, sys.intern(kind))
            if kind in ("user", "assistant"):
                node.text = f"[a line of {size:,} bytes, not read]"
            self._keep(uuid, node)
        self._chain(run_id)

    def _chain(self, run_id: str) -> _Chain:
        self._lines += 1
        self._seen[run_id] = self._lines
        return self.chains.setdefault(run_id, _Chain())

    def _keep(self, uuid: str, node: _Node) -> None:
        """Keep the node; past the limit, drop all but the last ``NODE_WINDOW`` lines and the current paths of the
        runs seen among them (a run idle that long is done, or will be followed afresh). The limit then doubles what
        is kept, so dropping costs O(1) per line."""
        self.nodes[uuid] = node
        if len(self.nodes) <= self._limit:
            return
        idle = [run for run, seen in self._seen.items() if seen < self._lines - NODE_WINDOW]
        for run in idle:
            del self._seen[run]
            self.chains.pop(run, None)
        kept = {u: self.nodes[u] for chain in self.chains.values() for u in chain.uuids if u in self.nodes}
        kept.update(list(self.nodes.items())[-NODE_WINDOW:])
        self.nodes = kept
        self._limit = max(2 * NODE_WINDOW, 2 * len(kept))

    @staticmethod
    def _user_events(data: Mapping[str, Any], text: str, chain: _Chain) -> None:
        if data.get("isCompactSummary"):
            chain.note("compaction")
        for command in _COMMAND.findall(text[:TEXT_LIMIT]):
            chain.note(command)
            if command == "/compact":
                chain.note("compaction")
        if "[Request interrupted by user" in text[:200]:
            chain.note("interrupted")

    def call_context(self, parent: str | None, run_id: str) -> dict[str, Any]:
        """Notes for a call whose request ends at ``parent``: events since the run's previous call, a prefix
        change if the conversation was rewritten, and the estimated tokens of the messages sent."""
        chain = self._chain(run_id)
        walked: list[str] = []
        cursor = parent
        seen = 0
        while cursor is not None and cursor not in chain.index and seen < 1_000_000:
            node = self.nodes.get(cursor)
            if node is None:
                break
            if node.text is not None:
                walked.append(cursor)
            cursor = node.parent
            seen += 1
        joined = cursor is not None and cursor in chain.index
        lost = cursor is not None and not joined  # the path leads to a line not kept (or in another file)
        keep = chain.index[cursor] + 1 if joined else 0  # pyright: ignore[reportArgumentType]
        notes: dict[str, Any] = {}
        if chain.events:
            notes["events"] = list(chain.events)
            chain.events.clear()
        if keep < len(chain) and not lost:
            notes["prefix_change"] = self._change(chain, keep, walked[-1] if walked else None)
        chain.truncate(keep)
        for uuid in reversed(walked):
            chain.append(uuid, self.nodes[uuid].tokens)
        notes["message_tokens"] = chain.tokens[-1] if chain.tokens else 0
        return notes

    def _change(self, chain: _Chain, position: int, new_uuid: str | None) -> dict[str, Any]:
        old = self.nodes.get(chain.uuid_at(position)) if position >= chain.base else None
        new = self.nodes.get(new_uuid) if new_uuid is not None else None
        before = old.text if old is not None else None
        return text_change(
            index=position,
            path=f"messages.{position}",
            section="messages",
            before=before or "",
            after=new.text if new is not None else None,
            known=before is not None,
        )


_UUID_AT_END = re.compile(rb'"uuid"\s*:\s*"([^"]+)"')


def unread_line_fields(head: bytes, tail: bytes) -> dict[str, Any]:
    """What can be told of a Claude Code line too long to read: its leading fields, and its ``uuid`` (written after
    the message, so found in the line's last bytes)."""
    fields = top_level_scalars(head.decode(errors="replace"))
    ids = _UUID_AT_END.findall(tail)
    if ids and "uuid" not in fields:
        fields["uuid"] = ids[-1].decode(errors="replace")
    return fields


_Key = int  # hash of (message id, request id): calls already out are remembered by this alone


class ClaudeCodeImport:
    """Collects the model calls of one or more Claude Code logs, line by line; each call comes out once.

    ``feed`` returns a problem message for a line it cannot use (the caller reports it with file and line number);
    ``skipped`` counts lines that are valid but are not model calls. ``ready()`` yields the calls that can no longer
    change; ``end_file()`` (or ``records()``) yields the rest.
    """

    def __init__(self, *, content: bool = False, pricing: Pricing | None = None) -> None:
        self.content = content
        self.pricing = pricing or default_pricing()
        self.skipped: Counter[str] = Counter()
        self.duplicate_lines = 0
        self.count = 0
        self._open: dict[_Key, _Call] = {}
        self._done: set[_Key] = set()
        self._first_request: dict[int, int | None] = {}  # message id -> the request id first seen with it
        self._iterations: Counter[str] = Counter()
        self._cwd: dict[str, str] = {}  # run -> its working directory (the project), as last seen
        self._conversations = _Conversations()
        self._agent: Mapping[str, str] | None = None

    def start_file(self, *, agent: Mapping[str, str] | None = None) -> None:
        """Conversation links (uuids) are followed within one file. ``agent``: the labels of a sub-agent's file
        (``agent_labels`` of its .meta.json), put on each of its calls."""
        self._conversations = _Conversations()
        self._agent = agent

    def feed(self, data: Any, *, path: str, line: int) -> str | None:
        if not isinstance(data, Mapping):
            return "not a JSON object"
        data = cast(Mapping[str, Any], data)
        kind = data.get("type")
        if not isinstance(kind, str):
            return "unknown line (no 'type')"
        if kind not in CLAUDE_CODE_LINE_TYPES:
            return f"unknown line type {kind!r} (ignored)"
        run_id = _run_id(data)
        cwd = data.get("cwd")
        if isinstance(cwd, str) and self._cwd.get(run_id) != cwd:
            self._cwd[run_id] = sys.intern(cwd)
        if kind != "assistant":
            if self.content:
                self._conversations.add_line(data, run_id)
            return None
        problem = self._assistant(data, path=path, line=line, run_id=run_id)
        if self.content:
            self._conversations.add_line(data, run_id)
        return problem

    def feed_unread(self, head: bytes, tail: bytes, *, size: int) -> str:
        """A line too long to read: linked into the conversation when it can be; returns what it was."""
        fields = unread_line_fields(head, tail)
        kind = fields.get("type")
        if self.content and is_claude_code_line(fields):
            self._conversations.add_unread(fields, _run_id(fields), size)
        if kind == "assistant" or (kind is None and "parentUuid" in fields):
            return "an assistant line: its model call, if any, is not counted"
        return f"a {kind} line" if isinstance(kind, str) else "not a Claude Code line"

    def _assistant(self, data: Mapping[str, Any], *, path: str, line: int, run_id: str) -> str | None:
        message = data.get("message")
        if not isinstance(message, Mapping):
            return "assistant line without a message object"
        message = cast(Mapping[str, Any], message)
        model = message.get("model")
        if model == SYNTHETIC_MODEL:
            self.skipped["synthetic message(s) (written by Claude Code, not a model call)"] += 1
            return None
        raw_usage = message.get("usage")
        message_id = message.get("id")
        if raw_usage is None:
            self.skipped["assistant line(s) without usage"] += 1
            return None
        if not isinstance(model, str) or not isinstance(message_id, str):
            return "assistant message without a model or an id"
        try:
            usage = Usage.from_api(raw_usage)
        except ConfigError as error:
            return f"unusable usage: {error}"
        request = data.get("requestId")
        request_id = request if isinstance(request, str) else None
        key = self._key(message_id, request_id)
        stop = message.get("stop_reason")
        stop_reason = stop if isinstance(stop, str) else None
        started = _timestamp(data.get("timestamp"))
        known = self._open.get(key)
        if known is not None:
            self.duplicate_lines += 1
            if more_complete(usage, known.usage):
                known.usage = usage
            known.stop_reason = stop_reason or known.stop_reason
            if started is not None and (known.started_at is None or started < known.started_at):
                known.started_at = started
            return None
        if key in self._done:  # a copy (a resumed session) or a late line of a call already out
            self.duplicate_lines += 1
            return None
        notes: dict[str, Any] | None = None
        if self.content:
            parent = data.get("parentUuid")
            notes = self._conversations.call_context(parent if isinstance(parent, str) else None, run_id)
        self._open[key] = _Call(
            message_id=message_id,
            request_id=request_id,
            model=sys.intern(model),
            usage=usage,
            started_at=started,
            run_id=sys.intern(run_id),
            path=path,
            line=line,
            stop_reason=stop_reason,
            project=self._cwd.get(run_id),
            notes=notes,
            agent=self._agent,
        )
        self.count += 1
        return None

    def _key(self, message_id: str, request_id: str | None) -> _Key:
        """The message id, refined by the request id when one is known; a line missing the request id joins the
        call that has one (and the other way round)."""
        message = hash(message_id)
        request = hash(request_id) if request_id is not None else None
        if message not in self._first_request:
            self._first_request[message] = request
            return hash((message, request))
        known = self._first_request[message]
        if request is None or known == request:
            return hash((message, known))
        if known is None:  # the lines seen so far had no request id: they were this request
            old, new = hash((message, None)), hash((message, request))
            call = self._open.pop(old, None)
            if call is not None:
                call.request_id = request_id
                self._open[new] = call
            elif old in self._done:
                self._done.add(new)
            self._first_request[message] = request
            return new
        return hash((message, request))  # the same message id answered twice: two requests, two calls

    def __len__(self) -> int:
        return self.count

    def ready(self) -> Iterator[CallRecord]:
        """The calls that can no longer change (``WINDOW`` newer calls were seen since), oldest first."""
        while len(self._open) > WINDOW:
            yield self._emit(next(iter(self._open)))

    def end_file(self) -> Iterator[CallRecord]:
        """Every call still open, in the order first seen (at the end of a file: its messages are complete)."""
        while self._open:
            yield self._emit(next(iter(self._open)))

    def records(self) -> Iterator[CallRecord]:
        """Each call not yet out, once, in the order first seen, numbered per run and priced at its own time."""
        return self.end_file()

    def _emit(self, key: _Key) -> CallRecord:
        call = self._open.pop(key)
        self._done.add(key)
        self._iterations[call.run_id] += 1
        at = datetime.fromtimestamp(call.started_at, tz=UTC) if call.started_at is not None else None
        notes: dict[str, Any] = {"format": "claude_code", "interactive": True}
        if call.project is not None:
            notes["project"] = call.project
        if call.agent:
            notes.update(call.agent)
        return CallRecord(
            model=call.model,
            usage=call.usage,
            cost=self.pricing.cost(call.model, call.usage, at=at),
            iteration=self._iterations[call.run_id],
            run_id=call.run_id,
            started_at=call.started_at,
            stop_reason=call.stop_reason,
            message_id=call.message_id,
            request_id=call.request_id,
            source=f"{call.path}:{call.line}",
            notes={**notes, **(call.notes or {})},
        )


def _run_id(data: Mapping[str, Any]) -> str:
    session = data.get("sessionId")
    run = session if isinstance(session, str) else "claude-code"
    agent = data.get("agentId")
    if isinstance(agent, str):
        return f"{run}/agent-{agent}"
    if data.get("isSidechain"):
        return f"{run}/sidechain"
    return run
