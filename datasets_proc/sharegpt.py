"""ShareGPT / OpenAI-style chat records to canonical rows.

Accepted shapes (JSON list or JSONL):

* ``{"messages": [{"role": "system"|"user"|"assistant", "content": str | [parts]}], "images": [...]}``
  where parts are ``{"type": "text", "text"}`` or ``{"type": "image" | "image_url", ...}``.
  An image part becomes an ``<image>`` tag at its position. Its path comes from the
  part (``image``, ``image_url`` as a string or ``{"url"}``); a part without a path
  takes the next entry of the record's ``images`` list, as do literal ``<image>`` tags.
* classic ShareGPT ``{"conversations": [{"from": "human"|"gpt"|"system", "value"}], "images": [...]}``.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from datasets_proc.canonical import IMAGE_TAG, ConversionReport, build_row, canonical_role
from datasets_proc.cli_common import add_common_arguments, check_outputs, finish
from datasets_proc.errors import ConversionError, InputError
from datasets_proc.images import normalise_image_path
from datasets_proc.llava import turns_from_from_value
from datasets_proc.records import convert_records, read_json_records

_IMAGE_PART_TYPES = ("image", "image_url")


def _image_part_path(part: dict) -> str | None:
    """The path an image part names, or None when it refers to the record's ``images`` list."""
    value = part.get("image_url") if part.get("type") == "image_url" else part.get("image")
    if isinstance(value, dict):
        value = value.get("url") or value.get("path")
    if value is None:
        value = part.get("path") or part.get("url")
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ConversionError("bad image part", f"image reference is a {type(value).__name__}, not a path")
    if value.startswith("data:"):
        raise ConversionError("inline image data not supported", value[:40])
    if value.startswith(("http://", "https://")):
        raise ConversionError("remote image url not supported", value)
    if value.startswith("file://"):
        value = value[len("file://"):]
    return value


def _content_text(content: Any, slots: list[str | None]) -> str:
    """Flatten message content to text, appending one slot per image (path or None) in order."""
    if content is None:
        raise ConversionError("empty message")
    if isinstance(content, str):
        slots.extend([None] * content.count(IMAGE_TAG))
        return content
    if not isinstance(content, list):
        raise ConversionError("bad content", f"content must be a string or a list of parts, got {type(content).__name__}")
    pieces = []
    for part in content:
        if isinstance(part, str):
            part = {"type": "text", "text": part}
        if not isinstance(part, dict):
            raise ConversionError("bad content", "content part is not an object")
        kind = part.get("type")
        if kind == "text":
            text = part.get("text")
            if not isinstance(text, str):
                raise ConversionError("bad content", "text part without a text string")
            slots.extend([None] * text.count(IMAGE_TAG))
            pieces.append(text.strip())
        elif kind in _IMAGE_PART_TYPES:
            slots.append(_image_part_path(part))
            pieces.append(IMAGE_TAG)
        else:
            raise ConversionError("unsupported content part", repr(kind))
    return "\n".join(piece for piece in pieces if piece)


def _turns_from_messages(messages: Any, slots: list[str | None]) -> list[dict]:
    if not isinstance(messages, list) or not messages:
        raise ConversionError("missing messages")
    turns = []
    for message in messages:
        if not isinstance(message, dict):
            raise ConversionError("bad turn", "message is not an object")
        role = canonical_role(message.get("role"))
        turns.append({"from": role, "value": _content_text(message.get("content"), slots)})
    return turns


def _fill_slots(slots: list[str | None], listed: list[Any]) -> list[str]:
    """Give every image slot a path: explicit part paths stay, open slots take ``images`` in order."""
    open_slots = slots.count(None)
    explicit = [slot for slot in slots if slot is not None]
    if open_slots == 0 and listed and listed != explicit:
        # Parts named their own paths and ``images`` lists something else: ambiguous.
        raise ConversionError("image tag count mismatch", f"{len(slots)} image parts/tags, {len(listed)} listed images")
    if open_slots == 0:
        return explicit
    if open_slots != len(listed):
        raise ConversionError(
            "image tag count mismatch", f"{open_slots} image tags without a path, {len(listed)} listed images"
        )
    queue = iter(listed)
    return [slot if slot is not None else next(queue) for slot in slots]


def conversation_from_record(record: dict, images: list[Any] | None = None) -> tuple[list[dict], list[Any]]:
    """Turns and image list (in tag order) from a messages- or conversations-style record.

    ``images`` overrides the record's own ``images`` field (the HF converter passes
    the paths of images it wrote out).
    """
    if images is None:
        images = record.get("images")
        if images is None and isinstance(record.get("image"), str):
            images = [record["image"]]
    if images is None:
        images = []
    if not isinstance(images, list):
        raise ConversionError("bad image field", f"images must be a list, got {type(images).__name__}")
    slots: list[str | None] = []
    if record.get("messages") is not None:
        turns = _turns_from_messages(record.get("messages"), slots)
    elif record.get("conversations") is not None:
        turns = turns_from_from_value(record.get("conversations"))
        for turn in turns:
            slots.extend([None] * turn["value"].count(IMAGE_TAG))
    else:
        raise ConversionError("missing messages")
    if not slots and len(images) == 1:
        # A single untagged image: build_row puts the tag at the start of the first human turn.
        return turns, list(images)
    return turns, _fill_slots(slots, images)


def convert_record(index: int, record: dict, image_root: str | os.PathLike | None = None) -> dict:
    turns, images = conversation_from_record(record)
    paths = [normalise_image_path(path, image_root) for path in images]
    return build_row(record.get("id", f"sharegpt-{index}"), turns, paths)


def convert(
    path: str | os.PathLike, image_root: str | os.PathLike | None = None
) -> tuple[list[dict], ConversionReport]:
    records = read_json_records(path)
    if not isinstance(records, list):
        raise InputError(f"{path}: expected a JSON list or JSON Lines of chat records")
    report = ConversionReport("sharegpt")
    rows = convert_records(records, lambda i, record: convert_record(i, record, image_root), report)
    return rows, report


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", help="ShareGPT / OpenAI-messages JSON list or JSONL")
    add_common_arguments(parser)


def run(args: argparse.Namespace) -> int:
    check_outputs(args, [args.input])
    rows, report = convert(args.input, args.image_root)
    return finish(args, rows, report, [args.input])
