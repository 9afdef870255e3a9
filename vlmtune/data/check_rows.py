"""The row half of `vlmtune data check`: reading a JSONL (or JSON array) file row by row so that one bad
line cannot spoil the rest, and the structural checks of one row against the canonical row schema
(datasets_proc/canonical.py owns the schema: roles, their aliases, the image tag). Each failure is a
`RowRejected` with a stable kind and a reason that names the fix.
"""
from __future__ import annotations

import codecs
import json
from dataclasses import dataclass
from itertools import cycle
from pathlib import Path
from typing import Any, Iterator

from datasets_proc.canonical import GPT, HUMAN, IMAGE_TAG, ROLE_ALIASES, SYSTEM
from .grounding import grounding_problem

ROLES = (SYSTEM, HUMAN, GPT)
RENAMED_ROLES = {alias: role for alias, role in ROLE_ALIASES.items() if alias != role}  # user -> human, ...
BLANK = object()  # marks a blank JSONL line


@dataclass
class CheckConfig:
    max_image_pixels: int = 8000 * 8000  # decompression-bomb guard
    min_side: int = 2
    max_aspect: float = 200.0
    max_length: int | None = None
    min_frames: int = 8                  # video rows: the fewest frames training draws (official --min_num_frame)


class RowRejected(Exception):
    """One row failed a check; `kind` is a stable key, `reason` is for humans."""

    def __init__(self, kind: str, reason: str):
        super().__init__(reason)
        self.kind, self.reason = kind, reason


def iter_jsonl(path: Path) -> Iterator[tuple[int, str | None, Any]]:
    """Yields (line_number, original_text, parsed_object_or_RowRejected).

    Decodes each line on its own so one bad line cannot spoil the rest of the file.
    """
    with open(path, "rb") as f:
        for number, raw in enumerate(f, 1):
            raw = raw.removeprefix(codecs.BOM_UTF8) if number == 1 else raw
            try:
                text = raw.decode("utf-8").rstrip("\r\n")
            except UnicodeDecodeError as e:
                shown = raw.decode("utf-8", "backslashreplace").rstrip("\r\n")
                yield number, shown, RowRejected(
                    "bad_encoding", f"line is not valid UTF-8 (bad byte at offset {e.start}); "
                    "re-encode the file as UTF-8")
                continue
            if not text.strip():
                yield number, None, BLANK
                continue
            try:
                yield number, text, json.loads(text)
            except (ValueError, RecursionError) as e:
                yield number, text, RowRejected(
                    "bad_json", f"line is not valid JSON ({e}); each line must be one JSON object")


def load_json_array(path: Path) -> list | None:
    """The rows of a `.json` file holding a JSON array, else None (read as JSONL)."""
    if path.suffix.lower() != ".json":
        return None
    try:
        data = json.loads(path.read_bytes().decode("utf-8-sig"))
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        return None
    return data if isinstance(data, list) else None


def check_id(row: dict, number: int, seen_ids: dict[str, int]) -> None:
    row_id = row.get("id")
    if row_id is None or row_id == "":
        raise RowRejected("missing_id", "row has no 'id'; add a unique string id")
    if not isinstance(row_id, str):
        raise RowRejected("bad_id_type", f"'id' must be a string, got {type(row_id).__name__} "
                          f"{row_id!r}; write it as a JSON string")
    first = seen_ids.setdefault(row_id, number)
    if first != number:
        raise RowRejected("duplicate_id", f"duplicate id {row_id!r} (first used on row {first}); "
                          "give every row a unique id")


def check_conversations(row: dict) -> list[dict]:
    if "conversations" not in row:
        raise RowRejected("conversations_missing", "row has no 'conversations'; add a list of "
                          "{'from': 'human'|'gpt', 'value': ...} messages")
    conv = row["conversations"]
    if not isinstance(conv, list):
        raise RowRejected("conversations_not_list", f"'conversations' must be a list of messages, "
                          f"got {type(conv).__name__}")
    if not conv:
        raise RowRejected("conversations_empty", "'conversations' is empty; add at least one "
                          "human/gpt exchange")
    for i, msg in enumerate(conv):
        if not isinstance(msg, dict):
            raise RowRejected("bad_message", f"message {i} is a {type(msg).__name__}, not an object "
                              "with 'from' and 'value'")
        role = msg.get("from")
        if role is None:
            raise RowRejected("unknown_role", f"message {i} has no 'from'; set it to 'human' or 'gpt'")
        if isinstance(role, str) and role in RENAMED_ROLES:
            raise RowRejected("role_alias", f"message {i} has role {role!r}; rename it to "
                              f"{RENAMED_ROLES[role]!r}")
        if role not in ROLES:
            raise RowRejected("unknown_role", f"message {i} has unknown role {role!r}; use 'human' "
                              "or 'gpt' (and optionally 'system' as the first message)")
        value = msg.get("value")
        if not isinstance(value, str):
            raise RowRejected("non_string_value", f"message {i} ({role}) 'value' must be a string, "
                              f"got {type(value).__name__}")
        if not value.strip():
            raise RowRejected("empty_value", f"message {i} ({role}) 'value' is empty or "
                              "whitespace-only; fill it in or drop the turn")
        try:  # a JSON "\ud800" escape decodes to text no tokenizer can encode
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise RowRejected("bad_encoding", f"message {i} ({role}) 'value' holds an unpaired "
                              "surrogate escape (\\udXXX); fix the text") from None
    check_turn_order([m["from"] for m in conv])
    return conv


def check_turn_order(roles: list[str]) -> None:
    offset = 1 if roles[0] == SYSTEM else 0
    turns = roles[offset:]
    if not turns:
        raise RowRejected("conversations_empty", "conversation has only a system message; add a "
                          "human/gpt exchange")
    if turns[0] != HUMAN:
        raise RowRejected("first_not_human", f"conversation starts with {turns[0]!r}; the first "
                          "turn (after an optional system message) must be 'human'")
    for i, (role, expected) in enumerate(zip(turns, cycle((HUMAN, GPT)))):
        if role != expected:
            where = " ('system' is only allowed first)" if role == SYSTEM else ""
            raise RowRejected("roles_not_alternating", f"message {i + offset} is {role!r} but "
                              f"{expected!r} was expected{where}; turns must alternate human/gpt")
    if turns[-1] != GPT:
        raise RowRejected("last_not_gpt", "conversation ends with a 'human' turn; the last "
                          "message must be a 'gpt' answer")


def image_paths(row: dict) -> list[str]:
    image = row.get("image")
    if image is None:
        return []
    paths = [image] if isinstance(image, str) else image
    if not isinstance(paths, list) or not all(isinstance(p, str) and p.strip() for p in paths):
        raise RowRejected("bad_image_field", f"'image' must be a path string or a list of path "
                          f"strings, got {json.dumps(image, default=repr)[:80]}")
    return paths


def check_grounding(conv: list[dict]) -> None:
    """Answers' <ref>/<box> spans (data/grounding.py): boxes in 0..1000, not inverted, every <ref> with its <box>."""
    for i, msg in enumerate(conv):
        if msg["from"] == GPT and "<ref>" in msg["value"]:
            problem = grounding_problem(msg["value"])
            if problem:
                raise RowRejected(problem[0], f"message {i} (gpt): {problem[1]}")


def check_image_tags(conv: list[dict], n_images: int) -> list[str]:
    """Returns warning kinds; the tag rules are described in the module docstring."""
    for i, msg in enumerate(conv):
        if msg["from"] != HUMAN and IMAGE_TAG in msg["value"]:
            raise RowRejected("image_tag_mismatch", f"message {i} ({msg['from']}) contains "
                              f"{IMAGE_TAG}; tags belong only in human turns")
    tags = sum(msg["value"].count(IMAGE_TAG) for msg in conv)
    if n_images == 1 and tags == 0:
        return ["image_tag_implicit"]
    if tags != n_images:
        fix = ("remove the tag or add the image" if n_images == 0
               else "put exactly one <image> tag per image in the human turns")
        raise RowRejected("image_tag_mismatch", f"row has {n_images} image(s) but {tags} "
                          f"{IMAGE_TAG} tag(s); {fix}")
    return []
