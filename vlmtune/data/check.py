"""Row-by-row validation of canonical training data (backs `vlmtune data check`).

Every input row ends up either kept (written unchanged) or rejected with one
reason naming the problem and the fix. No input row can crash the checker.

Decisions worth knowing:
- Blank lines are skipped and not counted as rows (`CheckReport.blank_lines`).
- A `.json` file that parses as a JSON array is checked item by item; anything
  else (including a broken array) is read as JSONL so each bad line gets its
  own reject instead of failing the whole file.
- Ids are registered on first sight, even when that row is rejected for
  another reason: a repeated id is a data bug either way.
- 16-bit (and 32-bit / float) images are kept, but counted as the warning
  `image_16bit`: PIL's convert('RGB') clips them to white, so the loader must
  rescale them first.
- An image whose EXIF orientation tag is not "upright" is kept and counted as the
  warning `image_exif_rotated`: under the model's EXIF rule (data/image/orientation.py;
  the official one ignores the tag) it trains as stored, and every serving path
  must apply the same rule (vLLM would turn it upright: another tile grid).
- A single image without an `<image>` tag is kept (the loader prepends one)
  and counted as the warning `image_tag_implicit`.
- With a model (`token_length_fn`), a row whose labels the template's rule
  masks entirely (LLaVA's tokenization-mismatch rule) is rejected as
  `labels_masked`, not kept with a warning: the training dataset drops it too
  (nothing to train), and the reason names the rule's message.
"""
from __future__ import annotations

import json
import os
import sys
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from tqdm import tqdm

from ..files import atomic_writer
from .check_images import ImageChecker, strict_pil
from .check_rows import (BLANK, CheckConfig, RowRejected, check_conversations, check_grounding, check_id,
                         check_image_tags, image_paths, iter_jsonl, load_json_array)

PROGRESS_MIN_ROWS = 1000


@dataclass
class CheckReport:
    input_path: str
    kept_path: str
    rejects_path: str
    total: int = 0
    kept: int = 0
    rejected: int = 0
    blank_lines: int = 0
    reasons: Counter = field(default_factory=Counter)
    warnings: Counter = field(default_factory=Counter)
    exif_rotated: list = field(default_factory=list)   # (row, image) of images with an EXIF rotation
    rejected_rows: list = field(default_factory=list)  # 0-based ordinals among the non-blank rows (meta selections)
    videos: list = field(default_factory=list)         # (row, video, frames, seconds) of the kept video rows

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("rejected_rows")
        data.pop("videos")
        data["reasons"] = dict(sorted(self.reasons.items()))
        data["warnings"] = dict(sorted(self.warnings.items()))
        return data

    def summary(self) -> str:
        lines = [f"data check: {self.input_path}"]
        counts = [("rows", self.total), ("kept", self.kept), ("rejected", self.rejected)]
        lines += [f"  {name:<24}{n:>8}" for name, n in counts]
        if self.blank_lines:
            lines.append(f"  {'blank lines (skipped)':<24}{self.blank_lines:>8}")
        for title, by_kind in (("reject reasons", self.reasons), ("warnings (kept)", self.warnings)):
            if by_kind:
                lines.append(f"  {title}:")
                for kind, n in sorted(by_kind.items(), key=lambda kv: (-kv[1], kv[0])):
                    lines.append(f"    {kind:<22}{n:>8}")
        if self.videos:
            frames = [v[2] for v in self.videos]
            seconds = [v[3] for v in self.videos if v[3] is not None]
            lines.append(f"  videos                  {len(self.videos):>8}  ({min(frames)}..{max(frames)} frames"
                         + (f", {min(seconds):.1f}..{max(seconds):.1f} s" if seconds else "") + ")")
        if self.exif_rotated:
            shown = ", ".join(f"row {row}: {rel}" for row, rel in self.exif_rotated[:5])
            more = f" (+{len(self.exif_rotated) - 5} more)" if len(self.exif_rotated) > 5 else ""
            lines.append(f"  EXIF-rotated images (the model's EXIF rule decides what trains; every serving path "
                         f"must apply the same): {shown}{more}")
        lines += [f"  kept    -> {self.kept_path}", f"  rejects -> {self.rejects_path}"]
        return "\n".join(lines)


def _same_file(a: Path, b: Path) -> bool:
    # samefile also catches hard links; resolve() covers paths that do not exist yet
    return a.resolve() == b.resolve() or (a.exists() and b.exists() and os.path.samefile(a, b))


def _output_paths(path: Path, kept: str | Path | None,
                  rejects: str | Path | None) -> tuple[Path, Path]:
    kept_path = Path(kept) if kept else path.with_name(path.stem + ".kept.jsonl")
    rejects_path = Path(rejects) if rejects else path.with_name(path.stem + ".rejects.jsonl")
    for out, label in ((kept_path, "kept"), (rejects_path, "rejects")):
        if _same_file(out, path):
            raise ValueError(f"{label} path {out} is the input file; choose another output "
                             "path (the input is never overwritten)")
    if _same_file(kept_path, rejects_path):
        raise ValueError(f"kept and rejects paths are the same file ({kept_path}); choose two paths")
    return kept_path, rejects_path


def _dumps(obj: Any) -> str:
    text = json.dumps(obj, ensure_ascii=False, default=repr)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates from "\ud800"-style escapes
        text = json.dumps(obj, ensure_ascii=True, default=repr)
    return text


def _row_id(obj: Any) -> str | int | None:
    row_id = obj.get("id") if isinstance(obj, dict) else None
    return row_id if isinstance(row_id, (str, int)) and not isinstance(row_id, bool) else None


def _check_row(obj: Any, number: int, seen_ids: dict[str, int],
               images: ImageChecker) -> list[str]:
    """All structural and image checks for one parsed row; returns warning kinds."""
    if isinstance(obj, RowRejected):
        raise obj
    if not isinstance(obj, dict):
        raise RowRejected("not_object", f"row is a JSON {type(obj).__name__}, not an object; "
                          "each row must be {'id': ..., 'conversations': [...]}")
    check_id(obj, number, seen_ids)
    conv = check_conversations(obj)
    paths = image_paths(obj)
    row_warnings = check_image_tags(conv, len(paths))
    check_grounding(conv)
    if not paths and obj.get("video"):
        images.check_video(obj, number)
    for rel in paths:
        warning = images.check(rel)
        if warning:
            row_warnings.append(warning)
    return row_warnings


def _check_row_safely(obj: Any, number: int, seen_ids: dict[str, int],
                      images: ImageChecker) -> list[str]:
    try:
        return _check_row(obj, number, seen_ids, images)
    except RowRejected:
        raise
    except Exception as e:  # a checker bug must not abort a long run
        raise RowRejected("internal_error", f"unexpected error while checking this row "
                          f"({type(e).__name__}: {e}); please report it") from None


def _check_length(obj: dict, cfg: CheckConfig, token_length_fn: Callable[[dict], int]) -> None:
    try:
        length = token_length_fn(obj)
    except ValueError as e:
        kind = getattr(e, "kind", None)  # the encoder's SampleRejected names its kind
        if kind:
            raise RowRejected(kind, str(e)) from None
        raise RowRejected("length_error", f"cannot measure token length: {e}") from None
    if length > cfg.max_length:
        raise RowRejected("too_long", f"row is {length} tokens, over max_length={cfg.max_length}; "
                          "shorten it or raise max_length")


def check_file(path: str | Path, image_root: str | Path | None, cfg: CheckConfig | None = None,
               token_length_fn: Callable[[dict], int] | None = None,
               kept_path: str | Path | None = None, rejects_path: str | Path | None = None,
               progress: bool = True, as_rows: Callable[[Any, int], list] | None = None) -> CheckReport:
    """Check every row of `path`; write kept rows and rejects (with reasons) as JSONL.

    `image_root` defaults to the input's folder. `token_length_fn(row) -> int` is
    only used when `cfg.max_length` is set; a ValueError from it rejects the row
    (as its `kind` when it has one, e.g. `labels_masked` or `too_long` from the
    encoder, else `length_error`), any other exception propagates (it is a
    caller bug, not a data problem). `as_rows(obj, number)` maps an input object to the conversation rows to
    check (preference pairs: the chosen and the rejected conversation), raising RowRejected; the input row is
    kept or rejected whole.
    """
    cfg = cfg or CheckConfig()
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"input file {path} does not exist")
    kept_out_path, rejects_out_path = _output_paths(path, kept_path, rejects_path)
    root = Path(image_root) if image_root is not None else path.parent
    array = load_json_array(path)
    if array is not None:
        rows: Iterator = ((i, None, obj) for i, obj in enumerate(array, 1))
        n_rows = len(array)
    else:
        rows = iter_jsonl(path)
        with open(path, "rb") as f:  # only to size the progress bar
            n_rows = sum(1 for _ in f) if progress else 0

    report = CheckReport(str(path), str(kept_out_path), str(rejects_out_path))
    images = ImageChecker(root, cfg)
    seen_ids: dict[str, int] = {}
    measure = token_length_fn is not None and cfg.max_length is not None
    bar = tqdm(total=n_rows, desc=f"checking {path.name}", unit="row", file=sys.stderr,
               disable=not (progress and n_rows > PROGRESS_MIN_ROWS))
    with strict_pil(cfg), bar, atomic_writer(kept_out_path) as kept_out, \
            atomic_writer(rejects_out_path) as rejects_out:
        for number, text, obj in rows:
            bar.update(1)
            if obj is BLANK:
                report.blank_lines += 1
                continue
            report.total += 1
            try:
                row_warnings = []
                for k, row in enumerate(as_rows(obj, number) if as_rows else [obj]):
                    row_warnings += [w for w in _check_row_safely(row, number, seen_ids if k == 0 else {}, images)
                                     if w not in row_warnings]
                    if measure:
                        _check_length(row, cfg, token_length_fn)
            except RowRejected as rejected:
                report.rejected += 1
                report.rejected_rows.append(report.total - 1)
                report.reasons[rejected.kind] += 1
                record = {"row": number, "id": _row_id(obj), "kind": rejected.kind,
                          "reason": rejected.reason, "source": text if text is not None else obj}
                rejects_out.write(_dumps(record) + "\n")
                continue
            report.kept += 1
            report.warnings.update(row_warnings)
            if not image_paths(obj) and obj.get("video"):
                info = images.video(obj["video"])
                report.videos.append((number, obj["video"], info["frames"], info["seconds"]))
            if "image_exif_rotated" in row_warnings:
                report.exif_rotated += [(number, rel) for rel in image_paths(obj) if images.rotated(rel)]
            kept_out.write((text if text is not None else _dumps(obj)) + "\n")

    assert report.total == report.kept + report.rejected, report.to_dict()
    return report


__all__ = ['CheckConfig', 'CheckReport', 'RowRejected', 'check_file']
