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

import codecs
import json
import os
import sys
import warnings
from collections import Counter
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from itertools import cycle
from pathlib import Path
from typing import Any, Callable, Iterator

from PIL import Image, ImageFile, UnidentifiedImageError
from tqdm import tqdm

from ..files import atomic_writer
from .image.orientation import orientation

IMAGE_TAG = "<image>"
PROGRESS_MIN_ROWS = 1000
ROLE_ALIASES = {"user": "human", "assistant": "gpt"}
HIGH_BIT_DEPTH_MODES = {"I", "I;16", "I;16B", "I;16L", "I;16N", "F"}
_BLANK = object()  # marks a blank JSONL line


@dataclass
class CheckConfig:
    max_image_pixels: int = 8000 * 8000  # decompression-bomb guard
    min_side: int = 2
    max_aspect: float = 200.0
    max_length: int | None = None


class RowRejected(Exception):
    """One row failed a check; `kind` is a stable key, `reason` is for humans."""

    def __init__(self, kind: str, reason: str):
        super().__init__(reason)
        self.kind, self.reason = kind, reason


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

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
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
        if self.exif_rotated:
            shown = ", ".join(f"row {row}: {rel}" for row, rel in self.exif_rotated[:5])
            more = f" (+{len(self.exif_rotated) - 5} more)" if len(self.exif_rotated) > 5 else ""
            lines.append(f"  EXIF-rotated images (the model's EXIF rule decides what trains; every serving path "
                         f"must apply the same): {shown}{more}")
        lines += [f"  kept    -> {self.kept_path}", f"  rejects -> {self.rejects_path}"]
        return "\n".join(lines)


def _iter_jsonl(path: Path) -> Iterator[tuple[int, str | None, Any]]:
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
                yield number, None, _BLANK
                continue
            try:
                yield number, text, json.loads(text)
            except (ValueError, RecursionError) as e:
                yield number, text, RowRejected(
                    "bad_json", f"line is not valid JSON ({e}); each line must be one JSON object")


def _load_json_array(path: Path) -> list | None:
    """The rows of a `.json` file holding a JSON array, else None (read as JSONL)."""
    if path.suffix.lower() != ".json":
        return None
    try:
        data = json.loads(path.read_bytes().decode("utf-8-sig"))
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        return None
    return data if isinstance(data, list) else None


def _check_id(row: dict, number: int, seen_ids: dict[str, int]) -> None:
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


def _check_conversations(row: dict) -> list[dict]:
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
        if isinstance(role, str) and role in ROLE_ALIASES:
            raise RowRejected("role_alias", f"message {i} has role {role!r}; rename it to "
                              f"{ROLE_ALIASES[role]!r}")
        if role not in ("system", "human", "gpt"):
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
    _check_turn_order([m["from"] for m in conv])
    return conv


def _check_turn_order(roles: list[str]) -> None:
    offset = 1 if roles[0] == "system" else 0
    turns = roles[offset:]
    if not turns:
        raise RowRejected("conversations_empty", "conversation has only a system message; add a "
                          "human/gpt exchange")
    if turns[0] != "human":
        raise RowRejected("first_not_human", f"conversation starts with {turns[0]!r}; the first "
                          "turn (after an optional system message) must be 'human'")
    for i, (role, expected) in enumerate(zip(turns, cycle(("human", "gpt")))):
        if role != expected:
            where = " ('system' is only allowed first)" if role == "system" else ""
            raise RowRejected("roles_not_alternating", f"message {i + offset} is {role!r} but "
                              f"{expected!r} was expected{where}; turns must alternate human/gpt")
    if turns[-1] != "gpt":
        raise RowRejected("last_not_gpt", "conversation ends with a 'human' turn; the last "
                          "message must be a 'gpt' answer")


def _image_paths(row: dict) -> list[str]:
    image = row.get("image")
    if image is None:
        return []
    paths = [image] if isinstance(image, str) else image
    if not isinstance(paths, list) or not all(isinstance(p, str) and p.strip() for p in paths):
        raise RowRejected("bad_image_field", f"'image' must be a path string or a list of path "
                          f"strings, got {json.dumps(image, default=repr)[:80]}")
    return paths


def _check_image_tags(conv: list[dict], n_images: int) -> list[str]:
    """Returns warning kinds; the tag rules are described in the module docstring."""
    for i, msg in enumerate(conv):
        if msg["from"] != "human" and IMAGE_TAG in msg["value"]:
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


@contextmanager
def _strict_pil(cfg: CheckConfig) -> Iterator[None]:
    """Make PIL refuse truncated files and huge headers while checking."""
    old_truncated, old_max = ImageFile.LOAD_TRUNCATED_IMAGES, Image.MAX_IMAGE_PIXELS
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    Image.MAX_IMAGE_PIXELS = cfg.max_image_pixels
    try:
        with warnings.catch_warnings():
            # Our own header check rejects these; PIL's warning would only be noise.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            warnings.filterwarnings("ignore", message="Palette images with Transparency")
            yield
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES, Image.MAX_IMAGE_PIXELS = old_truncated, old_max


class _ImageChecker:
    """Checks image files once each; rows sharing an image reuse the verdict."""

    def __init__(self, root: Path, cfg: CheckConfig):
        self.root = root
        self.cfg = cfg
        self._verdicts: dict[str, RowRejected | str | None] = {}

    def rotated(self, rel: str) -> bool:
        return self._verdicts.get(str(self.root / os.path.normpath(rel))) == "image_exif_rotated"

    def check(self, rel: str) -> str | None:
        """Returns a warning kind or None; raises RowRejected."""
        norm = os.path.normpath(rel)
        if os.path.isabs(rel) or norm == ".." or norm.startswith(".." + os.sep):
            raise RowRejected("image_path_escape", f"image path {rel!r} escapes the image root "
                              f"{self.root}; use a path inside the root without '..'")
        full = str(self.root / norm)
        if full not in self._verdicts:
            try:
                self._verdicts[full] = self._inspect(rel, full)
            except RowRejected as rejected:
                self._verdicts[full] = rejected
        verdict = self._verdicts[full]
        if isinstance(verdict, RowRejected):
            raise verdict
        return verdict

    def _inspect(self, rel: str, full: str) -> str | None:
        if not os.path.isfile(full):
            raise RowRejected("image_missing", f"image {rel!r} not found under {self.root}; fix "
                              "the path or the image root")
        if os.path.getsize(full) == 0:
            raise RowRejected("image_empty", f"image {rel!r} is an empty (0-byte) file; "
                              "re-download it or drop the row")
        try:
            with Image.open(full) as im:
                self._check_size(rel, *im.size)  # header only: before any decoding
                rotated = orientation(im) != 1
                im.load()
                mode = im.mode
                im.convert("RGB").close()
        except RowRejected:
            raise
        except Exception as e:  # broken files raise all sorts (SyntaxError, zlib.error, ...)
            raise self._decode_failure(rel, e) from None
        if mode in HIGH_BIT_DEPTH_MODES:
            return "image_16bit"
        return "image_exif_rotated" if rotated else None

    def _decode_failure(self, rel: str, e: Exception) -> RowRejected:
        if isinstance(e, Image.DecompressionBombError):  # PIL's own guard fired first
            return RowRejected("image_too_large", f"image {rel!r} exceeds max_image_pixels="
                               f"{self.cfg.max_image_pixels:,} ({e}); downscale it")
        if isinstance(e, UnidentifiedImageError):
            return RowRejected("image_undecodable", f"image {rel!r} is not in a readable image "
                               "format; replace the file or drop the row")
        if isinstance(e, OSError) and "truncated" in str(e).lower():
            return RowRejected("image_truncated", f"image {rel!r} is truncated ({e}); "
                               "re-download or re-encode it")
        return RowRejected("image_undecodable", f"image {rel!r} cannot be decoded "
                           f"({type(e).__name__}: {e}); replace the file or drop the row")

    def _check_size(self, rel: str, width: int, height: int) -> None:
        cfg = self.cfg
        if width * height > cfg.max_image_pixels:
            raise RowRejected("image_too_large", f"image {rel!r} is {width}x{height} "
                              f"({width * height:,} pixels), over max_image_pixels="
                              f"{cfg.max_image_pixels:,}; downscale it")
        if min(width, height) < cfg.min_side:
            raise RowRejected("image_too_small", f"image {rel!r} is {width}x{height}, smaller than "
                              f"min_side={cfg.min_side}; drop the row or use a real image")
        if max(width, height) / min(width, height) > cfg.max_aspect:
            raise RowRejected("image_bad_aspect", f"image {rel!r} is {width}x{height}, aspect ratio "
                              f"over max_aspect={cfg.max_aspect:g}; crop it or drop the row")


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
               images: _ImageChecker) -> list[str]:
    """All structural and image checks for one parsed row; returns warning kinds."""
    if isinstance(obj, RowRejected):
        raise obj
    if not isinstance(obj, dict):
        raise RowRejected("not_object", f"row is a JSON {type(obj).__name__}, not an object; "
                          "each row must be {'id': ..., 'conversations': [...]}")
    _check_id(obj, number, seen_ids)
    conv = _check_conversations(obj)
    paths = _image_paths(obj)
    row_warnings = _check_image_tags(conv, len(paths))
    for rel in paths:
        warning = images.check(rel)
        if warning:
            row_warnings.append(warning)
    return row_warnings


def _check_row_safely(obj: Any, number: int, seen_ids: dict[str, int],
                      images: _ImageChecker) -> list[str]:
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
               progress: bool = True) -> CheckReport:
    """Check every row of `path`; write kept rows and rejects (with reasons) as JSONL.

    `image_root` defaults to the input's folder. `token_length_fn(row) -> int` is
    only used when `cfg.max_length` is set; a ValueError from it rejects the row
    (as its `kind` when it has one, e.g. `labels_masked` or `too_long` from the
    encoder, else `length_error`), any other exception propagates (it is a
    caller bug, not a data problem).
    """
    cfg = cfg or CheckConfig()
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"input file {path} does not exist")
    kept_out_path, rejects_out_path = _output_paths(path, kept_path, rejects_path)
    root = Path(image_root) if image_root is not None else path.parent
    array = _load_json_array(path)
    if array is not None:
        rows: Iterator = ((i, None, obj) for i, obj in enumerate(array, 1))
        n_rows = len(array)
    else:
        rows = _iter_jsonl(path)
        with open(path, "rb") as f:  # only to size the progress bar
            n_rows = sum(1 for _ in f) if progress else 0

    report = CheckReport(str(path), str(kept_out_path), str(rejects_out_path))
    images = _ImageChecker(root, cfg)
    seen_ids: dict[str, int] = {}
    measure = token_length_fn is not None and cfg.max_length is not None
    bar = tqdm(total=n_rows, desc=f"checking {path.name}", unit="row", file=sys.stderr,
               disable=not (progress and n_rows > PROGRESS_MIN_ROWS))
    with _strict_pil(cfg), bar, atomic_writer(kept_out_path) as kept_out, \
            atomic_writer(rejects_out_path) as rejects_out:
        for number, text, obj in rows:
            bar.update(1)
            if obj is _BLANK:
                report.blank_lines += 1
                continue
            report.total += 1
            try:
                row_warnings = _check_row_safely(obj, number, seen_ids, images)
                if measure:
                    _check_length(obj, cfg, token_length_fn)
            except RowRejected as rejected:
                report.rejected += 1
                report.reasons[rejected.kind] += 1
                record = {"row": number, "id": _row_id(obj), "kind": rejected.kind,
                          "reason": rejected.reason, "source": text if text is not None else obj}
                rejects_out.write(_dumps(record) + "\n")
                continue
            report.kept += 1
            report.warnings.update(row_warnings)
            if "image_exif_rotated" in row_warnings:
                report.exif_rotated += [(number, rel) for rel in _image_paths(obj) if images.rotated(rel)]
            kept_out.write((text if text is not None else _dumps(obj)) + "\n")

    assert report.total == report.kept + report.rejected, report.to_dict()
    return report
