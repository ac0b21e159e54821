"""The records of a run folder, defined once: the .jsonl lines, manifest.json, analysis.json.

Each record is a ``TypedDict``: what a key holds is written next to it, and
``NotRequired`` marks a key that only some records carry. The file names
are layout.py's; who writes what:

- ``<stem>.jsonl`` (writer.py, one conversation as it happens; reader.py
  reads it back): ``HeaderLine``, then one ``MessageLine`` per message,
  then ``FooterLine``.
- ``<stem>.log`` (writer.py too): the same conversation in the original
  tool's text layout, no JSON but the ``Full Config:`` line (see below).
- ``manifest.json`` (manifest.py, for parrot.sh): ``ManifestFile``.
- ``analysis.json`` (broken_record.analysis): ``AnalysisFile``.

``<stem>.jsonl``: one JSON object per line, each with a ``"type"``:

- header: the tool's version, when the conversation started, the config as
  loaded, both prefixes, and per role what it ran on (``RoleInfo``: engine,
  url, model, n_ctx, template, the sampler settings sent in the engine's
  names, the conversation's seed, the server's defaults for the rest as it
  reported them or null, warnings, and the notes of starting an embedded
  server: its context capped or stretched).
- message: one per message, in conversation order, appended, flushed and
  fsync'ed as soon as it exists. Messages from the config come first with
  ``"source": "config"``; generated ones have ``"source": "model"`` (or
  ``"human"``, typed with ``parrot.py --human``). ``text`` is the message as
  the other side sees it, prefix included (``"Skye: Hi"``); ``generated`` is
  what came after the prefix. Generated turns add the server's token count,
  how the turn stopped, the request's timings and attempts, the server's
  URL, and (first turn of each role, when the server reports them) the
  settings it applied, ``applied_settings``.
- footer: how the conversation ended (``END_REASONS``), whether it is
  complete, the token total and message count. A file with no footer is a
  conversation that was killed: keep it, read it as partial.

``<stem>.log``, the original tool's text layout, so old tooling still reads it::

    \\n--- 0 ---\\n\\n            (token marker before each assistant turn)
    Skye: ...                    (streamed assistant line)
    Mark: ...                    (streamed user line)
    --- DONE ---
    Full Config:
    {"conversation": ..., "agent_prefix": "Skye:", ...}      (one JSON line)
    Assistant Model: <name>
    User Model: <name>

    === system @ 0 ===
    <text>
    === assistant @ <tokens before> ===
    <text>
    ...

    --- <T> tokens, <N> turns ---

``manifest.json``: what parrot.sh did with the folder. One entry per
conversation it started (``ManifestConversation``, ``"outcome": "running"``
until it ends), one per session (``Session``: one ``parrot.sh`` command on
the folder, the first or a ``--resume``), the engines of the first
conversation, and the folder's count of complete conversations.

``analysis.json``: ``analyze.py``'s figures for a folder, one entry per
conversation log it could read (``ConversationAnalysis``) and a summary
over them (``AnalysisSummary``).
"""

# No ``from __future__ import annotations`` here: TypedDict reads NotRequired
# from evaluated annotations only, for __required_keys__ and __optional_keys__.
from typing import Any, Literal, NotRequired, TypedDict

JSONL_VERSION = 2  # the header's "version" (2: seed, server_defaults, applied_settings)

Source = Literal["config", "model", "human"]
EndReason = Literal["total_tokens", "context_full", "interrupted", "error"]
END_REASONS: tuple[EndReason, ...] = ("total_tokens", "context_full", "interrupted", "error")
ConversationOutcome = Literal["running", "complete", "interrupted", "failed"]


# --- <stem>.jsonl --------------------------------------------------------------------


class RoleInfo(TypedDict):
    """One role of a conversation: the header's ``assistant`` and ``user``, the manifest's ``engines``."""

    engine: str                       # "llama-server", "koboldcpp", "openai", ...
    url: str
    model: str | None
    n_ctx: int | None                 # context budget per request (per slot)
    template: str                     # the chat template's name
    sampler: dict[str, Any]           # the sampler settings parrot sends, in the engine's names
    seed: int | None                  # this conversation's sampler seed (None: the engine takes none)
    server_defaults: dict[str, Any] | None  # the server's defaults (for what is not sent), as it reported them
    warnings: list[str]               # settings the engine cannot honour
    server_notes: list[str]           # an embedded server's context capped or stretched


class Header(TypedDict):
    """What a conversation states about itself before its first message."""

    tool_version: str
    started: str                      # ISO 8601, UTC, milliseconds
    config: dict[str, Any]            # the config as loaded
    agent_prefix: str
    user_prefix: str
    assistant: RoleInfo
    user: RoleInfo
    versions: dict[str, str]          # {"python": "3.11.7"}


class HeaderLine(Header):
    """The .jsonl's first line: ``{"type": "header", "version": 1, **Header}``."""

    type: Literal["header"]
    version: int                      # JSONL_VERSION


class Message(TypedDict):
    """One message of a conversation, as the turn loop keeps it and the .jsonl holds it."""

    index: int                        # 0-based position in the conversation
    role: str                         # "system" | "assistant" | "user"
    text: str                         # as the other side sees it, prefix included
    prefix: str
    generated: str                    # what came after the prefix
    source: Source
    tokens_before: int                # token total before this message
    # generated turns ("model"; "human" turns carry tokens only):
    tokens: NotRequired[int]          # the server's count
    stop: NotRequired[str]            # "eos" | "limit" | "word" | "error"
    prompt_tokens: NotRequired[int | None]
    cached_tokens: NotRequired[int | None]
    ttft_ms: NotRequired[float | None]
    wall_ms: NotRequired[float | None]
    server_prompt_ms: NotRequired[float | None]
    server_gen_ms: NotRequired[float | None]
    tokens_per_second: NotRequired[float | None]
    attempts: NotRequired[int]        # 1, or more after a retry or a failover
    server: NotRequired[str]          # the URL that generated it
    applied_settings: NotRequired[dict[str, Any]]  # what the server says it applied: first turn of each role


class MessageLine(Message):
    """A .jsonl message line: ``{"type": "message", **Message}``."""

    type: Literal["message"]


class Footer(TypedDict):
    """How a conversation ended."""

    end_reason: EndReason
    complete: bool                    # ended on the token budget or a full context
    detail: str                       # why, in words ("" when the budget was reached)
    total_tokens: int
    turns: int                        # messages, the config's included
    malformed_stream_lines: int


class FooterLine(Footer):
    """The .jsonl's last line: ``{"type": "footer", "ended": ..., **Footer}``."""

    type: Literal["footer"]
    ended: str                        # ISO 8601


# --- manifest.json -------------------------------------------------------------------


class ManifestConversation(TypedDict):
    """One conversation parrot.sh started in the folder."""

    stem: str                         # its files are <stem>.log and <stem>.jsonl
    started: str
    outcome: ConversationOutcome
    ended: NotRequired[str]
    end_reason: NotRequired[EndReason]
    total_tokens: NotRequired[int]
    turns: NotRequired[int]
    detail: NotRequired[str]
    number: NotRequired[int]          # 0, 1, ...: its place in the folder, from which its seeds derive
    seeds: NotRequired[dict[str, int | None]]  # role -> its sampler seed
    servers: NotRequired[dict[str, list[str]]]  # role -> every server it ran on, in order (failover)


class SessionSummary(TypedDict):
    complete: int                     # conversations this session completed
    failed: int                       # ... that failed
    interrupted: int                  # ... that it left interrupted (Ctrl-C)
    tokens: int                       # generated this session
    wall_seconds: float


class Session(TypedDict):
    """One parrot.sh command on the folder: the first, or a ``--resume``."""

    started: str
    jobs: int                         # -j
    target: int                       # complete conversations wanted in the folder
    ended: NotRequired[str]
    summary: NotRequired[SessionSummary]


class ManifestFile(TypedDict):
    tool: str                         # "broken-record-parrot"
    tool_version: str
    created: str
    conversations: list[ManifestConversation]
    sessions: list[Session]
    engines: NotRequired[dict[str, RoleInfo]]  # the first conversation's roles
    seeds: NotRequired[dict[str, int]]         # role -> base seed: conversation n uses base + n
    seeds_picked: NotRequired[bool]            # true: the config fixed none, parrot.sh picked them
    complete_conversations: NotRequired[int]   # complete .jsonl footers in the folder


# --- analysis.json -------------------------------------------------------------------


class RoleSettings(TypedDict):
    """A role's settings as a log states them; a text log knows fewer."""

    model: str | None
    engine: str | None
    sampler: dict[str, Any] | None
    url: NotRequired[str | list[str] | None]  # a text log: the config's api_url, maybe a list
    n_ctx: NotRequired[int | None]
    template: NotRequired[str | None]


class Settings(TypedDict):
    assistant: RoleSettings
    user: RoleSettings
    turn_max_tokens: int | None
    total_tokens: int | None


class TextMetrics(TypedDict):
    """The standard metrics of a conversation's generated assistant turns."""

    tokens: int
    distinct_1: float
    distinct_2: float
    seq_rep_4: float
    seq_rep_4_turn_mean: float
    seq_rep_4_per_turn: list[float]
    compression_ratio: float
    repeated_share: float


class SpeakerAnalysis(TypedDict):
    """The loops and breaks of one speaker (analysis.json's ``user``; the assistant's sit at the top level)."""

    loops: dict[str, dict[str, Any]]            # type -> {"present", "turns", "messages", "severity", ...}
    breaks: dict[str, dict[str, Any]]
    loop_onset_turn: int | None                 # that speaker's turn index (0-based, openings included)
    loop_onset_message: int | None              # the same turn's message number (the .jsonl index)


class Drivers(TypedDict):
    """Who drives the repetition."""

    driven_by: Literal["assistant", "user"] | None
    first_share: dict[str, float]               # speaker -> share of repeated-segment weight it said first
    echoes: dict[str, int]                      # speaker -> turns copying the other speaker's turn before
    segments: list[dict[str, Any]]              # {"segment", "count", "first_message", "first_speaker", "turns"}


class ConversationAnalysis(TypedDict):
    """analysis.json's entry for one conversation log."""

    file: str
    format: Literal["jsonl", "text"]
    complete: bool
    end_reason: str | None
    turns: int
    assistant_turns: int
    character_count: int
    avg_response_length: float
    response_lengths: list[int]
    loop_score: float
    loop_density: float
    repeated_share: float
    top_segments: list[list[Any]]               # [[segment, count], ...]
    segment_extensions: list[list[list[Any]]]   # per top segment: [[longer segment, count], ...]
    segments_found: int
    loops: dict[str, dict[str, Any]]            # the assistant's: type -> {"present", "turns", "messages", ...}
    breaks: dict[str, dict[str, Any]]
    loop_onset_turn: int | None                 # assistant turn index
    loop_onset_message: int | None              # its message number
    user: SpeakerAnalysis
    echoes: dict[str, list[int]]                # speaker -> message numbers of its turns copying the other
    drivers: Drivers
    metrics: TextMetrics
    settings: Settings
    agent_prefix: str
    stop_reasons: dict[str, int] | None         # null for a text log
    assistant_stop_reasons: NotRequired[dict[str, int]]  # .jsonl only
    total_tokens: NotRequired[int]              # when the log states it
    judge: NotRequired[dict[str, Any]]          # with analyze.py --judge


class Histograms(TypedDict):
    loop_density: list[list[Any]]     # [[low, high or None, count], ...]
    repeated_share: list[list[Any]]
    response_length: list[list[Any]]


class AnalysisSummary(TypedDict):
    conversations: int
    complete: int
    partial: int
    skipped: int                      # logs that could not be read
    turns: int
    assistant_turns: int
    mean_avg_response_length: float | None
    mean_loop_density: float | None
    mean_repeated_share: float | None
    looping_share: float              # conversations where the assistant loops
    mean_loop_onset_turn: float | None
    mean_loop_onset_message: float | None
    loop_types: dict[str, float]      # type -> share of conversations where the assistant shows it
    break_types: dict[str, float]
    user: dict[str, Any]              # the same shares and onsets for the user speaker, and its echoes
    echoes: int                       # assistant turns copying the user's turn before
    driven_by: dict[str, int]         # "assistant" | "user" | "none" -> conversations
    stop_reasons: dict[str, int]
    histograms: Histograms


class AnalysisFile(TypedDict):
    version: int
    folder: str                       # the folder's name
    conversations: list[ConversationAnalysis]
    summary: AnalysisSummary
    warnings: list[str]
    judge: NotRequired[dict[str, Any]]  # with analyze.py --judge
