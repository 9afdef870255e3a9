"""An image folder plus a CSV of questions to canonical rows.

Required columns: ``image`` (path relative to the image folder), ``question``, ``answer``.
Optional: ``id``; ``options`` (``a|b|c`` or a JSON list). A row with options becomes the
lettered multiple-choice form (answer given as a letter or as the option's text, the
target is the letter); a row without options is an open question.
"""

from __future__ import annotations

import argparse
import csv
import io
import os
from pathlib import Path

from datasets_proc.canonical import GPT, HUMAN, IMAGE_TAG, ConversionReport, build_row
from datasets_proc.cli_common import add_common_arguments, check_outputs, finish
from datasets_proc.errors import InputError
from datasets_proc.images import normalise_image_path
from datasets_proc.multiple_choice import (
    LANGUAGES, add_answer_with_argument, answer_index, choice_answer, choice_prompt, parse_options)
from datasets_proc.records import convert_records, read_text, text_field

REQUIRED_COLUMNS = ("image", "question", "answer")


def question_answer_turns(
    question: str, answer: str | int, options: list[str], lang: str, n_images: int = 1, answer_with: str = "letter"
) -> list[dict]:
    """Human/gpt turns for one question: lettered choice when options exist, else open.

    One ``<image>`` tag per image goes first, unless the question already places its own.
    """
    tags = 0 if IMAGE_TAG in question else n_images
    if options:
        human = choice_prompt(question, options, lang, tags, answer_with)
        gpt = choice_answer(options, answer_index(answer, options), answer_with)
    else:
        human, gpt = f"{IMAGE_TAG}\n" * tags + question, str(answer)
    return [{"from": HUMAN, "value": human}, {"from": GPT, "value": gpt}]


def read_csv_rows(path: str | os.PathLike) -> list[dict]:
    text = read_text(path)
    reader = csv.DictReader(io.StringIO(text, newline=""))
    try:
        rows = list(reader)
    except csv.Error as error:
        raise InputError(f"{path}: bad CSV near line {reader.line_num}: {error}") from error
    columns = [name.strip() for name in reader.fieldnames or []]
    missing = [column for column in REQUIRED_COLUMNS if column not in columns]
    if missing:
        raise InputError(f"{path}: missing required column(s) {', '.join(missing)}; found {columns}")
    # Header cells may carry stray spaces ("image, question"); key rows by the stripped names.
    return [{(key.strip() if isinstance(key, str) else key): value for key, value in row.items()} for row in rows]


def convert_record(index: int, record: dict, image_root: str | os.PathLike | None, lang: str,
                   answer_with: str = "letter") -> dict:
    image = normalise_image_path(text_field(record, "image", reason="missing image"), image_root)
    question = text_field(record, "question", reason="missing question")
    answer = text_field(record, "answer", reason="missing answer")
    options = parse_options(record.get("options"))
    row_id = (record.get("id") or "").strip() or f"csv-{index}"
    return build_row(row_id, question_answer_turns(question, answer, options, lang, answer_with=answer_with), [image])


def convert(
    path: str | os.PathLike, image_root: str | os.PathLike | None = None, lang: str = "en",
    answer_with: str = "letter",
) -> tuple[list[dict], ConversionReport]:
    records = read_csv_rows(path)
    report = ConversionReport(f"csv ({Path(path).name})")
    rows = convert_records(records, lambda i, record: convert_record(i, record, image_root, lang, answer_with), report)
    return rows, report


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", help="CSV with image, question, answer (and optional id, options) columns")
    parser.add_argument(
        "--lang", choices=LANGUAGES, default="en", help="language of the multiple-choice option layout and instruction"
    )
    add_answer_with_argument(parser)
    add_common_arguments(parser, "the image folder the image column is relative to; every image must exist under it")


def run(args: argparse.Namespace) -> int:
    check_outputs(args, [args.input])
    rows, report = convert(args.input, args.image_root, args.lang, args.answer_with)
    return finish(args, rows, report, [args.input])
