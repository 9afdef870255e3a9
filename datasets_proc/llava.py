"""LLaVA JSON / JSONL (and InternVL's own JSONL) to canonical rows.

Input records look like ``{"id", "image": str | list[str] (optional), "conversations":
[{"from", "value"}], "width"?, "height"?}``. They pass through with normalisation:
values stripped, ``user``/``assistant`` mapped to human/gpt, a missing ``<image>`` tag
added for single-image rows, and tag counts checked against the images.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from datasets_proc.canonical import ConversionReport, build_row, canonical_role
from datasets_proc.cli_common import add_common_arguments, check_outputs, finish
from datasets_proc.errors import ConversionError, InputError
from datasets_proc.images import normalise_image_path
from datasets_proc.records import convert_records, read_json_records


def image_list(value: Any, image_root: str | os.PathLike | None) -> list[str]:
    """The row's images from an ``image`` field that is absent, a string, or a list of strings."""
    if value is None or value == "" or value == []:
        return []
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        raise ConversionError("bad image field", f"expected a path or list of paths, got {type(value).__name__}")
    return [normalise_image_path(path, image_root) for path in value]


def turns_from_from_value(conversations: Any) -> list[dict]:
    """Validate and role-normalise a ``[{"from", "value"}]`` list."""
    if not isinstance(conversations, list) or not conversations:
        raise ConversionError("missing conversations")
    turns = []
    for turn in conversations:
        if not isinstance(turn, dict):
            raise ConversionError("bad turn", "turn is not an object")
        value = turn.get("value")
        if not isinstance(value, str):
            raise ConversionError("bad turn", f"value must be a string, got {type(value).__name__}")
        turns.append({"from": canonical_role(turn.get("from")), "value": value})
    return turns


def convert_record(index: int, record: dict, image_root: str | os.PathLike | None = None) -> dict:
    turns = turns_from_from_value(record.get("conversations"))
    images = image_list(record.get("image"), image_root)
    extra = {key: record.get(key) for key in ("width", "height")}
    return build_row(record.get("id", f"llava-{index}"), turns, images, extra)


def convert(
    path: str | os.PathLike, image_root: str | os.PathLike | None = None
) -> tuple[list[dict], ConversionReport]:
    records = read_json_records(path)
    if not isinstance(records, list):
        raise InputError(f"{path}: expected a JSON list or JSON Lines of LLaVA records")
    report = ConversionReport("llava")
    rows = convert_records(records, lambda i, record: convert_record(i, record, image_root), report)
    return rows, report


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", help="LLaVA JSON list or JSONL (InternVL's list-of-images form accepted)")
    add_common_arguments(parser)


def run(args: argparse.Namespace) -> int:
    check_outputs(args, [args.input])
    rows, report = convert(args.input, args.image_root)
    return finish(args, rows, report, [args.input])
