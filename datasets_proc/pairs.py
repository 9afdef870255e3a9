"""Preference data to the official MPO rows ``{"image": path | [paths] (absent: text), "question", "chosen",
"rejected"}``, which `vlmtune train` reads with ``pairs=True`` and `vlmtune data check --pairs` checks:

* ``--from llamafactory``: LLaMA-Factory's pairwise ShareGPT rows (``conversations`` or ``messages`` ending with a
  user turn, ``chosen`` / ``rejected`` as one message each, ``images``);
* ``--from swift``: ms-swift's ``messages`` (the last assistant turn is the chosen answer) + ``rejected_response``;
* ``--from rlaifv``: RLAIF-V rows (``image_path`` or ``image``, ``question``, ``chosen``, ``rejected``);
* ``--from mmpr``: MMPR / official rows, checked and passed through.

The official rows hold one question: a prompt with earlier turns is rejected with its reason, not flattened.
"""

from __future__ import annotations

import argparse
import os

from datasets_proc.canonical import ConversionReport
from datasets_proc.cli_common import add_common_arguments, check_outputs, finish
from datasets_proc.errors import ConversionError
from datasets_proc.images import normalise_image_path
from datasets_proc.records import convert_records, read_json_records

SOURCES = ("llamafactory", "swift", "rlaifv", "mmpr")


def _text(message, what: str) -> str:
    if isinstance(message, dict):
        message = message.get("value", message.get("content"))
    if not isinstance(message, str) or not message.strip():
        raise ConversionError(f"empty {what}")
    return message


def _single_question(turns, what: str) -> str:
    if not isinstance(turns, list) or not turns:
        raise ConversionError(f"missing {what}")
    roles = [t.get("from", t.get("role")) for t in turns if isinstance(t, dict)]
    system = [t for t, r in zip(turns, roles) if r == "system"]
    users = [t for t, r in zip(turns, roles) if r not in ("system",)]
    if len(users) != 1 or roles[-1] not in ("human", "user"):
        raise ConversionError("multi-turn prompt", f"{len(users)} non-system turns before the answers; the official "
                                                   "preference rows hold one question")
    return _text(users[0], "question"), (_text(system[0], "system prompt") if system else None)


def _row(images, question: str, chosen: str, rejected: str, system, image_root) -> dict:
    row = {}
    if images:
        paths = [normalise_image_path(p, image_root) for p in (images if isinstance(images, list) else [images])]
        row["image"] = paths[0] if len(paths) == 1 else paths
    row.update(question=question, chosen=chosen, rejected=rejected)
    if system:
        row["system_prompt"] = system
    if chosen.strip() == rejected.strip():
        raise ConversionError("identical answers", "chosen equals rejected: nothing to prefer")
    return row


def convert_record(record: dict, source: str, image_root=None) -> dict:
    if source == "llamafactory":
        question, system = _single_question(record.get("conversations", record.get("messages")), "conversations")
        return _row(record.get("images"), question, _text(record.get("chosen"), "chosen"),
                    _text(record.get("rejected"), "rejected"), system, image_root)
    if source == "swift":
        messages = record.get("messages")
        if not isinstance(messages, list) or not messages or messages[-1].get("role") != "assistant":
            raise ConversionError("missing messages", "messages must end with the chosen assistant answer")
        question, system = _single_question(messages[:-1], "messages")
        return _row(record.get("images"), question, _text(messages[-1], "chosen"),
                    _text(record.get("rejected_response"), "rejected_response"), system, image_root)
    image = record.get("image_path", record.get("image")) if source == "rlaifv" else record.get("image")
    if isinstance(image, dict):
        raise ConversionError("embedded image", "the image is bytes, not a path; write the images out first")
    return _row(image, _text(record.get("question"), "question"), _text(record.get("chosen"), "chosen"),
                _text(record.get("rejected"), "rejected"), record.get("system_prompt"), image_root)


def convert(path: str | os.PathLike, source: str, image_root=None) -> tuple[list[dict], ConversionReport]:
    report = ConversionReport(f"pairs ({source})")
    records = read_json_records(path)
    rows = convert_records(records, lambda i, r: {"id": f"pair-{i}", **convert_record(r, source, image_root)}, report)
    return [{k: v for k, v in row.items() if k != "id"} for row in rows], report


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", help="preference rows (JSON list or JSONL)")
    parser.add_argument("--from", dest="source", choices=SOURCES, required=True, help="whose row format")
    add_common_arguments(parser)


def run(args: argparse.Namespace) -> int:
    check_outputs(args, [args.input])
    rows, report = convert(args.input, args.source, args.image_root)
    return finish(args, rows, report, [args.input])
