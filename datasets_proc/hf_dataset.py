"""A local Hugging Face dataset (``save_to_disk`` folder) or a parquet file to canonical rows.

Columns: ``conversations`` or ``messages`` (as in the ShareGPT converter), or ``question`` /
``answer`` with optional ``options``. The image column (``image``, ``images`` or ``img``
unless ``--image-column`` names one) may hold encoded images (the ``Image`` feature,
``{"bytes", "path"}`` dicts, raw bytes, PIL images) or path strings. Encoded images are
written unchanged under ``--image-out`` with names derived from the row id.
"""

from __future__ import annotations

import argparse
import hashlib
import os
from pathlib import Path
from typing import Any, Iterator

from datasets_proc.canonical import ConversionReport, build_row
from datasets_proc.cli_common import add_common_arguments, check_outputs, finish
from datasets_proc.csv_folder import question_answer_turns
from datasets_proc.errors import ConversionError, InputError
from datasets_proc.images import (
    normalise_image_path,
    path_relative_to_root,
    safe_file_stem,
    save_pil_image,
    write_image_bytes,
)
from datasets_proc.multiple_choice import LANGUAGES, parse_options
from datasets_proc.records import convert_records, text_field
from datasets_proc.sharegpt import conversation_from_record

IMAGE_COLUMN_CANDIDATES = ("image", "images", "img")
_BATCH_ROWS = 256


def _parquet_columns_and_rows(path: Path) -> tuple[list[str], Iterator[dict]]:
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
    except Exception as error:  # pyarrow raises several types for unreadable files
        raise InputError(f"{path}: cannot read parquet file ({error})") from error

    def rows() -> Iterator[dict]:
        # Reading batches as plain Python keeps Image columns as {"bytes", "path"} structs.
        for batch in parquet.iter_batches(batch_size=_BATCH_ROWS):
            yield from batch.to_pylist()

    return parquet.schema_arrow.names, rows()


def _saved_dataset_columns_and_rows(path: Path, split: str | None) -> tuple[list[str], Iterator[dict]]:
    import datasets

    try:
        loaded = datasets.load_from_disk(str(path))
    except Exception as error:  # load_from_disk raises FileNotFoundError, ValueError, ...
        raise InputError(f"{path}: cannot load dataset folder ({error})") from error
    if isinstance(loaded, datasets.DatasetDict):
        if split is None and len(loaded) == 1:
            split = next(iter(loaded))
        if split not in loaded:
            raise InputError(f"{path}: choose a split with --split; available: {', '.join(loaded)}")
        loaded = loaded[split]
    elif split is not None:
        raise InputError(f"{path}: --split given but the folder holds a single dataset")
    arrow_view = loaded.with_format("arrow")

    def rows() -> Iterator[dict]:
        # The arrow view yields undecoded storage: images stay encoded bytes, no re-encoding.
        for batch in arrow_view.iter(batch_size=_BATCH_ROWS):
            yield from batch.to_pylist()

    return loaded.column_names, rows()


def open_rows(path: str | os.PathLike, split: str | None = None) -> tuple[list[str], Iterator[dict]]:
    """Column names and a row iterator for a dataset folder or a parquet file."""
    path = Path(path)
    if path.is_dir():
        return _saved_dataset_columns_and_rows(path, split)
    if path.is_file():
        return _parquet_columns_and_rows(path)
    raise InputError(f"{path}: no such dataset folder or parquet file")


def _image_stem(row_id: str) -> str:
    stem = safe_file_stem(row_id)
    if stem != row_id:
        # Different ids can sanitise to the same name; a short hash keeps them apart.
        stem = f"{stem}-{hashlib.sha1(row_id.encode('utf-8')).hexdigest()[:8]}"
    return stem


class ImageResolver:
    """Turns image cell values into paths relative to the image root, writing encoded ones out."""

    def __init__(self, source: Path, image_out: str | None, image_root: str | None):
        self.source = source
        self.image_out = Path(image_out) if image_out else None
        # Written images are named relative to --image-root, or to --image-out itself.
        self.root = image_root or image_out
        self.written: list[Path] = []

    def resolve(self, value: Any, row_id: str, index: int) -> list[str]:
        self.written = []
        values = value if isinstance(value, (list, tuple)) else [value]
        values = [item for item in values if item is not None]
        paths = []
        for position, item in enumerate(values):
            stem = _image_stem(row_id) if len(values) == 1 else f"{_image_stem(row_id)}_{position}"
            paths.append(self._one(item, stem, index))
        return paths

    def _one(self, item: Any, stem: str, index: int) -> str:
        if isinstance(item, dict):
            if item.get("bytes"):
                return self._written(write_image_bytes, item["bytes"], stem, index)
            return normalise_image_path(item.get("path"), self.root)
        if isinstance(item, str):
            return normalise_image_path(item, self.root)
        if isinstance(item, (bytes, bytearray)):
            return self._written(write_image_bytes, bytes(item), stem, index)
        if hasattr(item, "save") and hasattr(item, "mode"):
            return self._written(save_pil_image, item, stem, index)
        raise ConversionError("bad image value", type(item).__name__)

    def _written(self, writer, data: Any, stem: str, index: int) -> str:
        if self.image_out is None:
            raise InputError(f"{self.source}: row {index} holds image data; pass --image-out DIR to write images")
        target = writer(data, self.image_out, stem)
        self.written.append(target)
        return path_relative_to_root(target, self.root)

    def discard_written(self) -> None:
        """Remove the files written for a row that was then rejected, leaving no orphans."""
        for target in self.written:
            target.unlink(missing_ok=True)
        self.written = []


def _answer(record: dict) -> str | int:
    answer = record.get("answer")
    if isinstance(answer, int) and not isinstance(answer, bool):
        return answer
    return text_field(record, "answer", reason="missing answer")


def _pick_image_column(columns: list[str], requested: str | None, path: Path) -> str | None:
    if requested is not None:
        if requested not in columns:
            raise InputError(f"{path}: no image column {requested!r}; columns: {columns}")
        return requested
    return next((name for name in IMAGE_COLUMN_CANDIDATES if name in columns), None)


def _pick_form(columns: list[str], path: Path) -> str:
    if "conversations" in columns or "messages" in columns:
        return "chat"
    if "question" in columns and "answer" in columns:
        return "qa"
    raise InputError(
        f"{path}: missing required columns: need conversations, messages, or question + answer; columns: {columns}"
    )


def convert(
    path: str | os.PathLike,
    image_out: str | os.PathLike | None = None,
    image_root: str | os.PathLike | None = None,
    split: str | None = None,
    image_column: str | None = None,
    lang: str = "en",
    id_prefix: str = "hf",
) -> tuple[list[dict], ConversionReport]:
    path = Path(path)
    if image_out and image_root:
        try:
            Path(image_out).resolve().relative_to(Path(image_root).resolve())
        except ValueError:
            raise InputError(f"{image_out}: --image-out must lie inside --image-root {image_root}") from None
    columns, records = open_rows(path, split)
    form = _pick_form(columns, path)
    image_key = _pick_image_column(columns, image_column, path)
    resolver = ImageResolver(path, str(image_out) if image_out else None, str(image_root) if image_root else None)
    seen_ids: set[str] = set()

    def convert_one(index: int, record: dict) -> dict:
        raw_id = record.get("id")
        row_id = str(raw_id).strip() if raw_id not in (None, "") else f"{id_prefix}-{index}"
        if row_id in seen_ids:
            # Checked before writing images: a duplicate id would overwrite another row's image file.
            raise ConversionError("duplicate id", row_id)
        images = resolver.resolve(record.get(image_key), row_id, index) if image_key else []
        try:
            if form == "chat":
                turns, images = conversation_from_record(record, images=images)
            else:
                question = text_field(record, "question", reason="missing question")
                options = parse_options(record.get("options"))
                turns = question_answer_turns(question, _answer(record), options, lang, n_images=len(images))
            row = build_row(row_id, turns, images)
        except ConversionError:
            resolver.discard_written()
            raise
        seen_ids.add(row_id)
        return row

    report = ConversionReport(f"hf ({path.name})")
    rows = convert_records(records, convert_one, report)
    return rows, report


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", help="dataset folder saved with save_to_disk, or a .parquet file")
    parser.add_argument("--image-out", help="folder to write images stored inside the dataset to (required then)")
    parser.add_argument("--split", help="split to convert when the folder holds a DatasetDict")
    parser.add_argument("--image-column", help=f"image column (default: first of {', '.join(IMAGE_COLUMN_CANDIDATES)})")
    parser.add_argument("--lang", choices=LANGUAGES, default="en", help="language of the multiple-choice layout")
    parser.add_argument("--id-prefix", default="hf", help="ids for rows without an id column: PREFIX-INDEX")
    add_common_arguments(
        parser, "folder image paths are relative to (default: --image-out); --image-out must lie inside it"
    )


def run(args: argparse.Namespace) -> int:
    check_outputs(args, [args.input])
    rows, report = convert(
        args.input, args.image_out, args.image_root, args.split, args.image_column, args.lang, args.id_prefix
    )
    return finish(args, rows, report, [args.input])
