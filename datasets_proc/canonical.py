"""The canonical conversation row: building, shape validation, atomic JSONL writing, reports.

A canonical row is::

    {"id": str,
     "image": str | list[str],          # optional, paths relative to an image root
     "conversations": [{"from": "system"|"human"|"gpt", "value": str}, ...]}

An optional leading system message is followed by alternating human/gpt turns,
ending on gpt. ``<image>`` tags (human turns only) mark where images go; their
count equals the number of images.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from datasets_proc.errors import ConversionError, InputError

IMAGE_TAG = "<image>"
SYSTEM, HUMAN, GPT = "system", "human", "gpt"

# Role spellings seen in the wild, mapped to canonical roles.
ROLE_ALIASES = {
    "system": SYSTEM,
    "human": HUMAN, "user": HUMAN,
    "gpt": GPT, "assistant": GPT,
}

# Extra per-row keys a converter may carry through untouched (InternVL reads them).
PASSTHROUGH_KEYS = ("width", "height")


def canonical_role(role: Any) -> str:
    """Map ``user``/``assistant`` and friends to human/gpt; unknown roles reject the row."""
    mapped = ROLE_ALIASES.get(role.strip().lower()) if isinstance(role, str) else None
    if mapped is None:
        raise ConversionError("unknown role", repr(role))
    return mapped


def count_image_tags(conversations: list[dict]) -> int:
    return sum(turn["value"].count(IMAGE_TAG) for turn in conversations)


def build_row(
    row_id: Any,
    conversations: list[dict],
    images: list[str] | None = None,
    extra: dict | None = None,
) -> dict:
    """Assemble and validate one canonical row.

    Values are stripped; a single-image row without any ``<image>`` tag gets
    ``<image>\\n`` at the start of its first human turn (InternVL's convention).
    Raises ConversionError when the result is not a valid canonical row.
    """
    if row_id is None or (isinstance(row_id, str) and not row_id.strip()):
        raise ConversionError("missing id")
    if isinstance(row_id, bool) or not isinstance(row_id, (str, int)):
        raise ConversionError("bad id", f"id must be a string, got {type(row_id).__name__}")
    turns = []
    for turn in conversations:
        value = turn.get("value")
        turns.append({"from": turn.get("from"), "value": value.strip() if isinstance(value, str) else value})
    images = list(images or [])
    if len(images) == 1 and turns and all(isinstance(t["value"], str) for t in turns):
        if count_image_tags(turns) == 0:
            first_human = next((t for t in turns if t["from"] == HUMAN), None)
            if first_human is not None:
                first_human["value"] = f"{IMAGE_TAG}\n{first_human['value']}"
    row: dict[str, Any] = {"id": str(row_id).strip()}
    if images:
        row["image"] = images[0] if len(images) == 1 else images
    for key in PASSTHROUGH_KEYS:
        if extra and extra.get(key) is not None:
            row[key] = extra[key]
    row["conversations"] = turns
    validate_row(row)
    return row


def row_images(row: dict) -> list[str]:
    image = row.get("image")
    if image is None:
        return []
    return [image] if isinstance(image, str) else list(image)


def validate_row(row: dict) -> None:
    """Check the canonical shape only; raise ConversionError naming the first problem."""
    if not isinstance(row, dict):
        raise ConversionError("row is not an object")
    if not isinstance(row.get("id"), str) or not row["id"]:
        raise ConversionError("bad id", "id must be a non-empty string")
    image = row.get("image")
    if image is not None:
        paths = [image] if isinstance(image, str) else image
        if not isinstance(paths, list) or not paths or not all(isinstance(p, str) and p for p in paths):
            raise ConversionError("bad image field", "image must be a non-empty string or list of strings")
    turns = row.get("conversations")
    if not isinstance(turns, list) or not turns:
        raise ConversionError("empty conversation")
    for turn in turns:
        if not isinstance(turn, dict) or set(turn) != {"from", "value"}:
            raise ConversionError("bad turn", "each turn must be {'from', 'value'}")
        if not isinstance(turn["value"], str) or not turn["value"].strip():
            raise ConversionError("empty message", f"empty {turn['from']!s} value")
    roles = [turn["from"] for turn in turns]
    if roles[0] == SYSTEM:
        roles = roles[1:]
    if not roles:
        raise ConversionError("empty conversation", "only a system message")
    for position, role in enumerate(roles):
        expected = HUMAN if position % 2 == 0 else GPT
        if role != expected:
            raise ConversionError("roles do not alternate", f"turn {position} is {role!r}, expected {expected!r}")
    if roles[-1] != GPT:
        raise ConversionError("conversation does not end with gpt")
    if any(IMAGE_TAG in turn["value"] for turn in turns if turn["from"] != HUMAN):
        raise ConversionError("image tag outside human turn")
    tags, n_images = count_image_tags(turns), len(row_images(row))
    if tags != n_images:
        raise ConversionError("image tag count mismatch", f"{tags} <image> tags for {n_images} images")


def _same_file(a: Path, b: Path) -> bool:
    if a.exists() and b.exists():
        return os.path.samefile(a, b)
    return os.path.realpath(a) == os.path.realpath(b)


def refuse_overwriting_inputs(output: str | os.PathLike, inputs: Iterable[str | os.PathLike]) -> None:
    for source in inputs:
        if _same_file(Path(output), Path(source)):
            raise InputError(f"{output}: refusing to overwrite an input file; choose another output path")


def write_jsonl(
    rows: Iterable[dict],
    path: str | os.PathLike,
    inputs: Iterable[str | os.PathLike] = (),
) -> int:
    """Write rows as UTF-8 JSONL atomically (temp file in the same folder, then os.replace).

    ``inputs`` lists the files this output was made from; writing over any of them is refused.
    Returns the number of rows written.
    """
    path = Path(path)
    refuse_overwriting_inputs(path, inputs)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = tempfile.NamedTemporaryFile(
        "w", encoding="utf-8", dir=path.parent, prefix=f".{path.name}.", suffix=".tmp", delete=False
    )
    count = 0
    try:
        with handle:
            for row in rows:
                handle.write(json.dumps(row, ensure_ascii=False) + "\n")
                count += 1
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(handle.name, path)
    except BaseException:
        # Leave no half-written temp file behind; the previous output (if any) stays intact.
        if os.path.exists(handle.name):
            os.unlink(handle.name)
        raise
    return count


@dataclass
class ConversionReport:
    """What a converter did: rows read, converted, and every rejected row with its reason."""

    name: str
    read: int = 0
    converted: int = 0
    rejected: list[dict] = field(default_factory=list)

    def add_reject(self, row: int, error: ConversionError, source: Any) -> None:
        entry = {"row": row, "reason": error.reason, "source": source}
        if error.detail:
            entry["detail"] = error.detail
        self.rejected.append(entry)

    @property
    def skipped(self) -> int:
        return len(self.rejected)

    @property
    def reason_counts(self) -> dict[str, int]:
        return dict(Counter(entry["reason"] for entry in self.rejected))

    def summary(self) -> str:
        lines = [f"{self.name}: read {self.read}, converted {self.converted}, skipped {self.skipped}"]
        for reason, count in sorted(self.reason_counts.items(), key=lambda item: (-item[1], item[0])):
            lines.append(f"  {count:6d}  {reason}")
        shown = self.rejected[:5]
        for entry in shown:
            detail = f" ({entry['detail']})" if entry.get("detail") else ""
            lines.append(f"  row {entry['row']}: {entry['reason']}{detail}")
        if len(self.rejected) > len(shown):
            lines.append(f"  ... {len(self.rejected) - len(shown)} more rejected rows")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()
