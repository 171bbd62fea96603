"""Scripted models for the demo: a competent log analyst and a stubborn one that causes the runaway incident.

Both are emulator policies (``leanloop.emulator.policies.Policy``): pure functions of the request body. Where a run
stands is read from ``messages`` alone (which tools were called, what came back), so one policy serves any number of
concurrent runs and a resumed run picks up where it stopped.

``analyst_policy`` works like an on-call engineer with the four ``LogTools``:

    list_namespaces -> list_pods (every namespace, one turn) -> read_pod_logs (every pod, one turn)
      -> retry each read that failed, once -> search_logs for the most frequent error -> summary

Its summary's numbers are counted from the tool results it received, never from what the demo generated, so they
stay true on any log directory and show exactly what the model was given (a truncated result counts as truncated).

``stubborn_policy`` is the incident from DESIGN.md: it reads the pod named in the task and, when that read fails,
repeats the identical call forever, including once after being told it keeps failing. Only the agent's loop guard
(or max_iterations) ends it.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from leanloop.emulator.policies import Reply

__all__ = [
    "SYSTEM_PROMPT",
    "TRIAGE_TASK",
    "PodReading",
    "analyst_policy",
    "error_signature",
    "incident_task",
    "line_level",
    "read_log_text",
    "stubborn_policy",
]

SYSTEM_PROMPT = (
    "You are the on-call site reliability engineer, triaging an incident from pod logs. You can only read: list the "
    "namespaces, list the pods of a namespace, read the tail of a pod's log, and search all logs with a pattern. "
    "Work breadth first: get the whole picture before digging into one pod, and call independent tools in parallel. "
    "A tool error is information: retry a failed call at most once, then report it instead of repeating it. "
    "Every number you give (error and warning counts, how often a message occurs) must be counted from the log "
    "lines you actually read, and you say how many lines that was. Finish with a short markdown incident summary: "
    "what is broken, where it starts, what is only a symptom, what you could not read, and the next steps."
)

TRIAGE_TASK = (
    "Something in this system is failing. Go through the logs of every pod, find what is broken and where it "
    "starts, and write a short incident summary with the error and warning counts per pod and the most frequent "
    "error messages."
)

_TOP_MESSAGES = 5
_SEARCH_FRAGMENT_CHARS = 60

# The first level word on a line is its level ("... INFO http GET /error-page" is an INFO line).
_LEVEL = re.compile(
    r"(?<![\w./-])(emerg|alert|crit(?:ical)?|fatal|panic|severe|err(?:or)?|warn(?:ing)?|notice|info|debug|trace)"
    r"(?![\w/-])",
    re.IGNORECASE,
)
_ERROR_WORDS = frozenset({"emerg", "alert", "crit", "critical", "fatal", "panic", "severe", "err", "error"})
_WARNING_WORDS = frozenset({"warn", "warning"})

# Parts of a message that change from line to line; replacing them groups the lines that say the same thing.
_VOLATILE: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"\[req-[^\]]*\]"), ""),  # OpenStack request context
    (re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b", re.I), "<uuid>"),
    (re.compile(r"\b(req(?:uest)?(?:_?id)?|trace_?id|span_?id)([=:])[\w-]+", re.I), r"\1\2<id>"),
    (re.compile(r"\b\d{1,3}(?:\.\d{1,3}){3}(?::\d+)?\b"), "<ip>"),
    (re.compile(r"\b(?=[0-9a-f]*\d)[0-9a-f]{8,}\b", re.I), "<id>"),
    (re.compile(r"(?<==)\d+(?:\.\d+)?\b"), "<n>"),
    (re.compile(r"\b\d+\.\d{3,}\b"), "<n>"),
    (re.compile(r"(?<![\w:.])\d{4,}\b"), "<n>"),
)
_HEADER = re.compile(r"^==> .* <==$")
_PLACEHOLDER = re.compile(r"<(?:uuid|id|ip|n)>")
_KEEPS_FAILING = re.compile(
    r"keeps? failing|failed \d+ times|same (?:error|arguments)|change (?:your )?approach|stop (?:calling|retrying)",
    re.IGNORECASE,
)
_SEARCH_HIT = re.compile(r"^([^\s/]+/[^\s:]+):\d+: ")
_BACKTICKED_POD = re.compile(r"`([^`/\s]+)/([^`/\s]+)`")


# -- reading log text -------------------------------------------------------------------------------------------------


def line_level(line: str) -> str | None:
    """``"error"``, ``"warning"``, another level word in lower case, or None when the line has no level."""
    match = _LEVEL.search(line)
    if match is None:
        return None
    word = match.group(1).lower()
    if word in _ERROR_WORDS:
        return "error"
    return "warning" if word in _WARNING_WORDS else word


def error_signature(line: str) -> str:
    """What a log line says, without its timestamp, level and per-request details, so equal errors group."""
    match = _LEVEL.search(line)
    text = line[match.end() :] if match else line
    for pattern, replacement in _VOLATILE:
        text = pattern.sub(replacement, text)
    return " ".join(text.strip(" ]:|-\t").split())[:160]


@dataclass(frozen=True)
class PodReading:
    """Counts over the log lines of one pod as a tool result showed them."""

    key: str  # namespace/pod
    lines: int
    errors: int
    warnings: int
    error_messages: Counter[str] = field(default_factory=Counter[str])


def read_log_text(key: str, text: str) -> PodReading:
    """Count the lines, errors and warnings in a ``read_pod_logs`` result (its ``==> ... <==`` header excluded)."""
    lines = [line for line in text.splitlines() if not _HEADER.match(line)]
    messages: Counter[str] = Counter()
    warnings = 0
    for line in lines:
        level = line_level(line)
        if level == "error":
            messages[error_signature(line)] += 1
        elif level == "warning":
            warnings += 1
    return PodReading(key, len(lines), messages.total(), warnings, messages)


# -- what the conversation holds ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Call:
    name: str
    input: Mapping[str, Any]
    result: str | None  # None while unanswered
    is_error: bool

    @property
    def pod_key(self) -> str:
        return f"{self.input.get('namespace')}/{self.input.get('pod')}"


def _blocks(content: Any) -> list[Mapping[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if not isinstance(content, list):
        return []
    items = cast(list[Any], content)
    return [cast(Mapping[str, Any], item) for item in items if isinstance(item, Mapping)]


def _text(content: Any) -> str:
    """The text of a message's or tool_result's content (a string or a list of blocks)."""
    return "\n".join(str(block.get("text", "")) for block in _blocks(content) if block.get("type") == "text")


def _calls(messages: Sequence[Mapping[str, Any]]) -> list[_Call]:
    """Every tool_use of the conversation, in order, with its result when there is one."""
    results: dict[str, tuple[str, bool]] = {}
    for message in messages:
        for block in _blocks(message.get("content")):
            if block.get("type") == "tool_result":
                results[str(block.get("tool_use_id"))] = (_text(block.get("content")), bool(block.get("is_error")))
    calls: list[_Call] = []
    for message in messages:
        if message.get("role") != "assistant":
            continue
        for block in _blocks(message.get("content")):
            if block.get("type") == "tool_use":
                result, is_error = results.get(str(block.get("id")), (None, False))
                arguments = cast(Mapping[str, Any], block.get("input") or {})
                calls.append(_Call(str(block.get("name")), arguments, result, is_error))
    return calls


def _names(result: str) -> list[str]:
    """Names from a listing result: a JSON list (how the agent serialises ``list[str]``) or one name per line."""
    try:
        value = json.loads(result)
    except ValueError:
        value = None
    if isinstance(value, list):
        return [str(item) for item in cast(list[Any], value)]
    return [line.strip(" -*\t\"'") for line in result.splitlines() if line.strip(" -*\t\"'")]


def _offered(request: Mapping[str, Any], name: str) -> bool:
    tools = request.get("tools")
    if not isinstance(tools, list):
        return True
    offered = [cast(Mapping[str, Any], tool) for tool in cast(list[Any], tools) if isinstance(tool, Mapping)]
    return any(tool.get("name") == name for tool in offered)


# -- replies ----------------------------------------------------------------------------------------------------------


def _tool_use(name: str, arguments: Mapping[str, Any]) -> dict[str, Any]:
    return {"type": "tool_use", "name": name, "input": dict(arguments)}  # the emulator adds the id


def _reply(text: str, uses: Iterable[dict[str, Any]] = ()) -> Reply:
    return Reply([{"type": "text", "text": text}, *uses])


@dataclass(frozen=True)
class _State:
    """Where the analyst stands, derived from the calls so far."""

    calls: list[_Call]

    def named(self, name: str) -> list[_Call]:
        return [call for call in self.calls if call.name == name]

    @property
    def namespaces(self) -> list[str]:
        listed = [call for call in self.named("list_namespaces") if call.result is not None and not call.is_error]
        return _names(listed[-1].result or "") if listed else []

    @property
    def pods(self) -> list[tuple[str, str]]:
        pods: list[tuple[str, str]] = []
        for call in self.named("list_pods"):
            if call.result is not None and not call.is_error:
                pods.extend((str(call.input.get("namespace")), pod) for pod in _names(call.result))
        return pods

    def reads(self) -> dict[str, list[_Call]]:
        """Read attempts per pod (namespace/pod), in the order the pods were first read."""
        attempts: dict[str, list[_Call]] = {}
        for call in self.named("read_pod_logs"):
            attempts.setdefault(call.pod_key, []).append(call)
        return attempts

    def readings(self) -> list[PodReading]:
        readings: list[PodReading] = []
        for key, attempts in self.reads().items():
            good = [call for call in attempts if call.result is not None and not call.is_error]
            if good:
                readings.append(read_log_text(key, good[-1].result or ""))
        return readings

    def unreadable(self) -> dict[str, list[_Call]]:
        return {key: calls for key, calls in self.reads().items() if all(call.is_error for call in calls)}


def _top_messages(readings: Sequence[PodReading]) -> list[tuple[str, int, list[str]]]:
    """The most frequent error messages over all pods: (message, count, pods where it appears)."""
    total: Counter[str] = Counter()
    for reading in readings:
        total.update(reading.error_messages)
    ranked = sorted(total.items(), key=lambda item: (-item[1], item[0]))[:_TOP_MESSAGES]
    return [(message, count, [r.key for r in readings if message in r.error_messages]) for message, count in ranked]


def _search_pattern(message: str) -> str:
    """A literal, regex-escaped piece of ``message`` that identifies it: its longest run between placeholders."""
    fragment = max(_PLACEHOLDER.split(message), key=len).strip(" :()[],")
    if len(fragment) > _SEARCH_FRAGMENT_CHARS:
        fragment = fragment[:_SEARCH_FRAGMENT_CHARS].rsplit(" ", 1)[0]
    return re.sub(r"([\^$*+?{}\[\]\\|()])", r"\\\1", fragment)  # "." may stay: it matches itself too


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def _next_tools(state: _State, request: Mapping[str, Any]) -> Reply | None:
    """The next round of tool calls, or None when the analyst has what it needs."""
    if not state.named("list_namespaces"):
        return _reply(
            "I'll start with an overview of the cluster: the namespaces first, then the pods in each of them, then "
            "their recent logs, so I can compare error rates before digging into any single pod.",
            [_tool_use("list_namespaces", {})],
        )
    namespaces = state.namespaces
    if namespaces and not state.named("list_pods"):
        return _reply(
            f"There {'is' if len(namespaces) == 1 else 'are'} {_plural(len(namespaces), 'namespace')}: "
            f"{', '.join(namespaces)}. "
            + ("Listing its pods." if len(namespaces) == 1 else "Listing the pods of each one in parallel."),
            [_tool_use("list_pods", {"namespace": name}) for name in namespaces],
        )
    pods = state.pods
    if pods and not state.named("read_pod_logs"):
        return _reply(
            f"Found {_plural(len(pods), 'pod')}. Reading the recent log lines of every pod in parallel, so the "
            "error counts are comparable across the cluster.",
            [_tool_use("read_pod_logs", {"namespace": ns, "pod": pod}) for ns, pod in pods],
        )
    retry = [calls[0] for calls in state.unreadable().values() if len(calls) == 1 and calls[0].result is not None]
    if retry:
        failures = "; ".join(f"`{call.pod_key}`: {(call.result or '').strip()[:120]}" for call in retry)
        return _reply(
            f"Some reads failed ({failures}). A failure like this can be transient (a log being rotated, a volume "
            "remounting), so I'll retry each once before reporting it as unreadable.",
            [_tool_use("read_pod_logs", dict(call.input)) for call in retry],
        )
    top = _top_messages(state.readings())
    if top and not state.named("search_logs") and _offered(request, "search_logs"):
        message, count, where = top[0]
        return _reply(
            f"The most frequent error is `{message}` ({count}x, in {', '.join(where)}). Searching every namespace "
            "for it to see how far it spreads.",
            [_tool_use("search_logs", {"pattern": _search_pattern(message)})],
        )
    return None


def _next_steps(top: Sequence[tuple[str, int, list[str]]], unreadable: Sequence[str]) -> list[str]:
    """Advice that follows from the messages seen; each line names where the evidence is."""
    steps: list[str] = []
    for message, _, where in top:
        pods = ", ".join(f"`{key}`" for key in where)
        if re.search(r"OOMKilled|OutOfMemory|exit code 137", message, re.IGNORECASE):
            steps.append(f"{pods} runs out of memory and restarts: raise its memory limit or cut its working set.")
        elif host := re.search(r"(?:to|from|upstream) ([\w.-]+:\d{2,5})", message):
            steps.append(f"Check `{host.group(1)}`: calls to it fail or time out ({pods}).")
        elif re.search(r"\b5\d\d\b", message):
            steps.append(
                f"The 5xx answers in {pods} are likely a symptom; they should clear once the upstream recovers."
            )
    if top and not steps:
        message, count, where = top[0]
        steps.append(f"Start with `{message}`: the most frequent error ({count}x in {', '.join(where)}).")
    steps.extend(f"Fix the permissions of `{key}`'s log so it can be read, then triage it too." for key in unreadable)
    return list(dict.fromkeys(steps)) or [
        "Nothing in the lines read needs action; widen the window if the issue persists."
    ]


def _search_summary(state: _State) -> list[str]:
    searches = [call for call in state.named("search_logs") if call.result is not None]
    if not searches:
        return []
    call = searches[-1]
    first = (call.result or "").splitlines()[0] if call.result else ""
    if call.is_error:
        return ["", "### Search", f"`search_logs` for `{call.input.get('pattern')}` failed: {first}"]
    pods = sorted({hit.group(1) for hit in map(_SEARCH_HIT.match, (call.result or "").splitlines()) if hit})
    spread = f" (shown hits in {', '.join(f'`{p}`' for p in pods)})" if pods else ""
    return ["", "### Search", f"`search_logs` for `{call.input.get('pattern')}`: {first}{spread}."]


def _summary(state: _State) -> str:
    readings = sorted(state.readings(), key=lambda r: (-r.errors, -r.warnings, r.key))
    unreadable = state.unreadable()
    top = _top_messages(readings)
    total_lines = sum(r.lines for r in readings)
    out = [
        f"## Incident summary: {_plural(len(readings), 'pod')} read, {len(unreadable)} unreadable",
        "",
        f"All numbers below are counted from the {_plural(total_lines, 'log line')} I read (the recent tail of each "
        "pod's log), not from the full history.",
    ]
    if readings and readings[0].errors:
        worst = readings[0]
        out.append(f"The most errors are in `{worst.key}`: {worst.errors} of its {worst.lines} lines.")
    out += ["", "### Errors and warnings per pod", "| pod | lines read | errors | warnings |", "|---|---:|---:|---:|"]
    out += [f"| `{r.key}` | {r.lines} | {r.errors} | {r.warnings} |" for r in readings]
    if top:
        out += ["", "### Most frequent error messages"]
        out += [
            f"{rank}. {count}x `{message}` ({', '.join(where)})" for rank, (message, count, where) in enumerate(top, 1)
        ]
    if unreadable:
        out += ["", "### Could not read"]
        out += [
            f"- `{key}`: {(calls[-1].result or '').strip()[:160]} ({_plural(len(calls), 'attempt')}, retried "
            f"{'once' if len(calls) > 1 else 'never'}; treating it as a real fault, not a transient one)"
            for key, calls in unreadable.items()
        ]
    out += _search_summary(state)
    out += ["", "### Next steps", *(f"- {step}" for step in _next_steps(top, list(unreadable)))]
    return "\n".join(out)


def analyst_policy(request: Mapping[str, Any]) -> Reply:
    """The next turn of a competent log analyst, decided from the conversation in ``request["messages"]``."""
    state = _State(_calls(cast(Sequence[Mapping[str, Any]], request.get("messages") or [])))
    if state.named("list_namespaces") and not state.namespaces and not state.named("list_pods"):
        listing = state.named("list_namespaces")[-1].result or "no namespaces"
        return _reply(f"## Incident summary\n\nI could not find any logs to triage: {listing.strip()[:200]}")
    return _next_tools(state, request) or _reply(_summary(state))


# -- the runaway incident ---------------------------------------------------------------------------------------------


def incident_task(namespace: str, pod: str) -> str:
    """The user's request that starts the runaway incident: it names the pod the stubborn model will insist on."""
    return (
        f"The team that owns `{namespace}/{pod}` says it went quiet about an hour ago and nobody can see why. "
        "Read that pod's logs and tell me what is wrong with it."
    )


def _incident_target(messages: Sequence[Mapping[str, Any]], state: _State) -> tuple[str, str] | None:
    """The pod the stubborn model fixates on: the one the task names, else the first read that failed."""
    first_user = next((m for m in messages if m.get("role") == "user"), None)
    if first_user is not None and (match := _BACKTICKED_POD.search(_text(first_user.get("content")))):
        return match.group(1), match.group(2)
    reads = state.reads()
    failed = [key for key, calls in reads.items() if any(call.is_error for call in calls)]
    chosen = failed[0] if failed else next(iter(reads), None)
    if chosen is None:
        return None
    namespace, pod = chosen.split("/", 1)
    return namespace, pod


def stubborn_policy(request: Mapping[str, Any]) -> Reply:
    """The runaway model: reads one pod again and again with identical arguments, whatever comes back.

    With a task from ``incident_task`` it lists that namespace's pods once, then reads the named pod on every turn.
    Without one it surveys the cluster like the analyst until a read fails, then fixates on that pod. Told that the
    call keeps failing, it says it understands and repeats the call anyway: only a loop guard stops it.
    """
    messages = cast(Sequence[Mapping[str, Any]], request.get("messages") or [])
    state = _State(_calls(messages))
    target = _incident_target(messages, state)
    if target is None:
        return _next_tools(state, {"tools": []}) or _reply("I have nothing to read.")
    namespace, pod = target
    if not state.calls:
        return _reply(
            f"Let me first check which pods are running in `{namespace}`.",
            [_tool_use("list_pods", {"namespace": namespace})],
        )
    last_user = _blocks(messages[-1].get("content")) if messages else []
    told = any(_KEEPS_FAILING.search(str(block.get("text", "")) + _text(block.get("content"))) for block in last_user)
    failures = [call for call in state.reads().get(f"{namespace}/{pod}", []) if call.is_error]
    if told:
        text = (
            f"Understood that this call keeps failing, but `{namespace}/{pod}` is definitely there and a permission "
            "error on a log file is usually transient while it is being rotated. Trying the same read again."
        )
    elif failures:
        text = (
            f"Reading `{namespace}/{pod}` failed ({(failures[-1].result or '').strip()[:120]}). The log is probably "
            "being rotated right now; I'll retry the same read, it should succeed in a moment."
        )
    else:
        text = f"`{pod}` is in `{namespace}`. Reading its recent log lines to see why it went quiet."
    return _reply(text, [_tool_use("read_pod_logs", {"namespace": namespace, "pod": pod})])
