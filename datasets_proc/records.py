"""Reading JSON / JSONL record files and running a per-record converter over them."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Callable, Iterable

from datasets_proc.canonical import ConversionReport
from datasets_proc.errors import ConversionError, InputError


def read_text(path: str | os.PathLike) -> str:
    try:
        return Path(path).read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as error:
        raise InputError(f"{path}: cannot read file ({error})") from error


def read_json_records(path: str | os.PathLike) -> list[Any]:
    """Load a JSON list (``[...]``) or JSON Lines file; bad JSON is an InputError naming the line."""
    text = read_text(path)
    if text.lstrip().startswith("["):
        try:
            records = json.loads(text)
        except json.JSONDecodeError as error:
            raise InputError(f"{path}: bad JSON at line {error.lineno} column {error.colno}: {error.msg}") from error
        return records
    records = []
    for line_number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as error:
            raise InputError(f"{path}: bad JSON on line {line_number}: {error.msg}") from error
    return records


def json_safe(value: Any) -> Any:
    """A JSON-serialisable stand-in for a source record (bytes and images are summarised)."""
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, dict):
        return {str(key): json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(item) for item in value]
    if isinstance(value, (bytes, bytearray)):
        return f"<{len(value)} bytes>"
    size = getattr(value, "size", None)
    if hasattr(value, "mode") and isinstance(size, tuple):
        return f"<image {size[0]}x{size[1]} {value.mode}>"
    return repr(value)


def convert_records(
    records: Iterable[Any],
    convert_one: Callable[[int, Any], dict],
    report: ConversionReport,
) -> list[dict]:
    """Apply ``convert_one(index, record)`` to every record; failures land in the report, never vanish.

    Duplicate ids are rejected too, since downstream tools key rows by id.
    """
    rows: list[dict] = []
    seen_ids: dict[str, int] = {}
    for index, record in enumerate(records):
        report.read += 1
        try:
            if not isinstance(record, dict):
                raise ConversionError("record is not an object", type(record).__name__)
            row = convert_one(index, record)
            if row["id"] in seen_ids:
                raise ConversionError("duplicate id", f"{row['id']!r} already used by row {seen_ids[row['id']]}")
        except ConversionError as error:
            report.add_reject(index, error, json_safe(record))
            continue
        seen_ids[row["id"]] = index
        rows.append(row)
        report.converted += 1
    return rows


def text_field(record: dict, key: str, reason: str | None = None) -> str:
    """A required non-empty string field (numbers are accepted and stringified)."""
    value = record.get(key)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value.strip():
        raise ConversionError(reason or f"missing {key}")
    return value.strip()
