"""A scripted model read from a YAML or JSON file: what it says and which tools it calls, turn by turn.

Format (``example_scenario.yaml`` beside this module is a complete one)::

    name: log-triage                 # optional, for messages
    after_last: finish               # past the last step: finish (say "Done."), repeat (the last step), or error
    steps:
      - text: "I'll read both logs."         # a text block
        tool_calls:                          # tool_use blocks; several in one step are parallel calls
          - {name: read_log, input: {path: app.log}}
          - {name: read_log, input: {path: db.log}}
      - id: check                            # a label that `next:` can jump to
        branches:                            # checked in order against the request's last (user) message
          - when: {tool_error: true}         # any of its tool_result blocks has is_error: true
            text: "A read failed, trying again."
            tool_calls: [{name: read_log, input: {path: db.log}}]
            next: stay                       # next (default) | stay | end | <step id>
      - text: "The database ran out of connections."
        stop_reason: end_turn                # optional; default tool_use when there are tool calls, else end_turn
    faults: [...]                            # optional, used by `leanloop emulator --scenario` (see faults.py)

A step answers with its own ``text``/``tool_calls``/``content`` (raw API blocks) unless one of its branches matches.
A step with branches but no reply of its own is skipped when none matches, so "retry while it fails, else go on" is
one step of branches followed by the next step. Conditions in ``when`` (all must hold) look at the user turn the
request ends with (consecutive user messages are one turn, as the API merges them): ``tool_error`` (true/false: a
tool_result has ``is_error: true``), ``result_contains`` (text in a tool result), ``user_contains`` (text anywhere in
the turn; ``role: "system"`` messages are not part of it). Values are checked when the file is loaded. The full
format: docs/emulator.md.

The policy is a pure function of the request: it finds its step by replaying its own choices over the assistant turns
already in ``messages``. So a run can be repeated, and a thousand concurrent conversations share one scenario.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, cast

import yaml

from leanloop.emulator.faults import Faults, described
from leanloop.emulator.policies import Reply, block_text, content_blocks, finisher, messages_of
from leanloop.errors import ConfigError, UsageError

__all__ = [
    "EXAMPLE_SCENARIO",
    "Branch",
    "Condition",
    "Scenario",
    "ScenarioExhausted",
    "Step",
    "load_scenario",
    "read_data",
    "user_turn",
]

EXAMPLE_SCENARIO = Path(__file__).with_name("example_scenario.yaml")
AfterLast = Literal["finish", "repeat", "error"]
_STEP_KEYS = {"id", "text", "tool_calls", "content", "stop_reason", "branches", "next"}
_BRANCH_KEYS = {"when", "text", "tool_calls", "content", "stop_reason", "next"}
_CONDITION_KEYS = {"tool_error", "result_contains", "user_contains"}


class ScenarioExhausted(UsageError):
    """The conversation went past the last step of a scenario whose ``after_last`` is ``error``."""


@dataclass(frozen=True, slots=True)
class Condition:
    """What the user turn must hold for a branch to be taken (every given field must match)."""

    tool_error: bool | None = None
    result_contains: str | None = None
    user_contains: str | None = None

    def holds(self, turn: Sequence[Mapping[str, Any]]) -> bool:
        """Whether the blocks of the user turn ``turn`` match."""
        results = [b for b in turn if b.get("type") == "tool_result"]
        if self.tool_error is not None and any(r.get("is_error") is True for r in results) != self.tool_error:
            return False
        if self.result_contains is not None and not any(self.result_contains in block_text(r) for r in results):
            return False
        return self.user_contains is None or self.user_contains in "\n".join(block_text(b) for b in turn)


def user_turn(messages: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The blocks of the user messages ``messages`` ends with, merged as the API merges them.

    ``role: "system"`` messages among them are stepped over, not part of the turn: Claude Code on Opus 4.8 ends its
    requests with one after the user's prompt or tool results.
    """
    start = len(messages)
    while start > 0 and messages[start - 1].get("role") in ("user", "system"):
        start -= 1
    return [block for m in messages[start:] if m.get("role") == "user" for block in content_blocks(m)]


@dataclass(frozen=True, slots=True)
class Branch:
    when: Condition
    reply: Reply
    next: str = "next"


@dataclass(frozen=True, slots=True)
class Step:
    id: str | None
    reply: Reply | None
    branches: tuple[Branch, ...] = ()
    next: str = "next"


class Scenario:
    """A ``Policy`` that plays ``steps`` (see the module docstring)."""

    def __init__(
        self,
        steps: Sequence[Step],
        *,
        name: str = "scenario",
        after_last: AfterLast = "finish",
        faults: Faults | None = None,
    ) -> None:
        if not steps:
            raise ConfigError(f"scenario {name!r} has no steps")
        if after_last not in ("finish", "repeat", "error"):
            raise ConfigError(f"scenario {name!r}: after_last must be finish, repeat or error, got {after_last!r}")
        self.steps = tuple(steps)
        self.name = name
        self.after_last: AfterLast = after_last
        self.faults = faults
        self._ids = {step.id: i for i, step in enumerate(self.steps) if step.id is not None}
        targets = [step.next for step in self.steps] + [b.next for step in self.steps for b in step.branches]
        for target in targets:
            if target not in ("next", "stay", "end") and target not in self._ids:
                raise ConfigError(f"scenario {name!r}: next: {target!r} names no step")

    def __call__(self, request: Mapping[str, Any]) -> Reply:
        messages = messages_of(request)
        step = self.position(messages)
        _, reply, _ = self._choose(step, messages)
        return reply

    def position(self, messages: Sequence[Mapping[str, Any]]) -> int:
        """The step the next reply comes from, replaying this scenario's choices over the past assistant turns."""
        step = 0
        for index, message in enumerate(messages):
            if message.get("role") == "assistant":
                chosen, _, target = self._choose(step, messages[:index])
                step = self._target(chosen, target)
        return step

    def _choose(self, step: int, seen: Sequence[Mapping[str, Any]]) -> tuple[int, Reply, str]:
        """(step that answered, its reply, where to go next) for a request holding ``seen``."""
        last = user_turn(seen)
        while step < len(self.steps):
            current = self.steps[step]
            for branch in current.branches:
                if branch.when.holds(last):
                    return step, branch.reply, branch.next
            if current.reply is not None:
                return step, current.reply, current.next
            step += 1
        if self.after_last == "repeat":
            final = self.steps[-1]
            taken = next((b for b in final.branches if b.when.holds(last)), None)
            reply = taken.reply if taken is not None else final.reply or finisher({})
            return len(self.steps) - 1, reply, "stay"
        if self.after_last == "error":
            raise ScenarioExhausted(f"scenario {self.name!r} has no step left for this request ({len(seen)} messages)")
        return len(self.steps), finisher({}), "end"

    def _target(self, step: int, target: str) -> int:
        if target == "stay":
            return step
        if target == "end":
            return len(self.steps)
        if target == "next":
            return step + 1
        return self._ids[target]

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> Scenario:
        """From the parsed file (the format in the module docstring). Raises ``ConfigError`` naming what is wrong."""
        name = str(data.get("name", "scenario"))
        raw_steps = data.get("steps")
        if not isinstance(raw_steps, list):
            raise ConfigError(f"scenario {name!r} needs a list of steps")
        steps = [_step(name, i, s) for i, s in enumerate(cast(list[Any], raw_steps))]
        faults_config = data.get("faults")
        faults = Faults.from_config(faults_config) if faults_config else None
        return cls(steps, name=name, after_last=data.get("after_last", "finish"), faults=faults)


def load_scenario(path: str | Path) -> Scenario:
    """Read a scenario from a ``.yaml``/``.yml`` or ``.json`` file. Raises a one-line ``ConfigError`` naming it."""
    path = Path(path)
    data = read_data(path, "scenario")
    if not isinstance(data, Mapping):
        raise ConfigError(f"scenario {path} must hold a mapping with 'steps'")
    try:
        return Scenario.from_mapping(cast(Mapping[str, Any], data))
    except (TypeError, ValueError) as error:  # ConfigError is a ValueError; the others come from values of a wrong type
        raise ConfigError(f"scenario {path}: {_one_line(error)}") from None


def read_data(path: Path, what: str) -> Any:
    """The JSON (``.json``), JSON Lines (``.jsonl``, a list) or YAML (any other suffix) in ``path``.

    Raises a one-line ``ConfigError`` naming the file; ``what`` says what it is for (scenario, trajectory).
    """
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError(f"cannot read {what} {path}: {error.strerror}") from None
    except UnicodeDecodeError as error:
        raise ConfigError(
            f"{what} {path} is not UTF-8 text (byte {error.start} is {error.object[error.start]:#x})"
        ) from None
    try:
        if path.suffix == ".jsonl":
            return [json.loads(line) for line in text.splitlines() if line.strip()]
        return json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as error:
        kind = path.suffix.lstrip(".").upper() if path.suffix in (".json", ".jsonl") else "YAML"
        raise ConfigError(f"{what} {path} is not valid {kind}: {_one_line(error)}") from None


def _one_line(error: Exception) -> str:
    return " ".join(str(error).split())


def _step(name: str, index: int, data: Any) -> Step:
    where = f"scenario {name!r}, step {index + 1}"
    data = _mapping(where, data, _STEP_KEYS)
    branches = tuple(_branch(f"{where}, branch {i + 1}", b) for i, b in enumerate(_items(where, data, "branches")))
    reply = _reply(where, data) if {"text", "tool_calls", "content"} & set(data) else None
    if reply is None and not branches:
        raise ConfigError(f"{where}: give it text, tool_calls, content or branches")
    step_id = data.get("id")
    if step_id is not None and not isinstance(step_id, str):
        raise ConfigError(f"{where}: id must be a string, got {type(step_id).__name__}")
    return Step(step_id, reply, branches, str(data.get("next", "next")))


def _branch(where: str, data: Any) -> Branch:
    data = _mapping(where, data, _BRANCH_KEYS)
    when = _mapping(f"{where}, when", data.get("when") or {}, _CONDITION_KEYS)
    tool_error = when.get("tool_error")
    if tool_error is not None and not isinstance(tool_error, bool):
        raise ConfigError(f"{where}: when.tool_error must be true or false, got {described(tool_error)}")
    for key in ("result_contains", "user_contains"):
        if when.get(key) is not None and not isinstance(when[key], str):
            raise ConfigError(f"{where}: when.{key} must be a string, got {described(when[key])}")
    condition = Condition(tool_error, when.get("result_contains"), when.get("user_contains"))
    return Branch(condition, _reply(where, data), str(data.get("next", "next")))


def _reply(where: str, data: Mapping[str, Any]) -> Reply:
    content = [_mapping(f"{where}, content block", b) for b in _items(where, data, "content")]
    if data.get("text"):
        content.append({"type": "text", "text": str(data["text"])})
    for raw in _items(where, data, "tool_calls"):
        call = _mapping(f"{where}, tool call", raw, {"name", "input", "id"})
        if "name" not in call:
            raise ConfigError(f"{where}: a tool call needs a name")
        tool_input = _mapping(f"{where}, tool call input", call.get("input") or {})
        block: dict[str, Any] = {"type": "tool_use", "name": call["name"], "input": tool_input}
        if call.get("id"):
            block["id"] = call["id"]
        content.append(block)
    stop_reason = data.get("stop_reason")
    if stop_reason is not None and not isinstance(stop_reason, str):
        raise ConfigError(f"{where}: stop_reason must be a string, got {type(stop_reason).__name__}")
    return Reply(content, stop_reason)


def _items(where: str, data: Mapping[str, Any], key: str) -> list[Any]:
    """The list under ``key`` (empty when absent)."""
    items: object = data.get(key) or []
    if not isinstance(items, list):
        raise ConfigError(f"{where}: {key} must be a list, got {type(items).__name__}")
    return cast(list[Any], items)


def _mapping(where: str, data: Any, known: set[str] | None = None) -> dict[str, Any]:
    """``data`` as a dict; with ``known``, one holding no other keys."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where} must be a mapping, got {type(data).__name__}")
    mapping = dict(cast(Mapping[str, Any], data))
    unknown = set(mapping) - known if known is not None else set[str]()
    if unknown:
        raise ConfigError(f"{where} has unknown keys {sorted(unknown)}; known: {sorted(known or ())}")
    return mapping
