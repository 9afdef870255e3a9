"""FoodieQA single-image multiple-choice split (``sivqa``) to canonical rows.

Two training forms:

* ``open``: the classic XTuner tutorial form. Human: question + ``\\n<image>``;
  gpt: the right choice's text + "，图中的菜是" + the dish name (just the choice when it is the dish).
* ``choice``: FoodieQA's own evaluation form. Human: ``<image>\\n`` question,
  lettered options ``（A) ...``, "answer with the letter"; gpt: the letter
  (``--answer-with text``: "answer with the option's text"; gpt: that text).

``--lang en`` uses ``question_en`` / ``choices_en`` instead of the Chinese fields.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from datasets_proc.canonical import GPT, HUMAN, IMAGE_TAG, ConversionReport, build_row
from datasets_proc.cli_common import add_common_arguments, check_outputs, finish
from datasets_proc.errors import ConversionError, InputError
from datasets_proc.images import normalise_image_path
from datasets_proc.multiple_choice import add_answer_with_argument, choice_answer, choice_prompt
from datasets_proc.records import convert_records, read_json_records, text_field

FORMS = ("choice", "open")
N_CHOICES = 4
_FIELDS = {
    "zh": {"question": "question", "choices": "choices"},
    "en": {"question": "question_en", "choices": "choices_en"},
}


def _answer_index(value: Any) -> int:
    if isinstance(value, bool):
        raise ConversionError("answer not numeric", repr(value))
    if isinstance(value, int):
        index = value
    elif isinstance(value, str) and value.strip().isdigit():
        index = int(value.strip())
    else:
        raise ConversionError("answer not numeric", repr(value))
    if not 0 <= index < N_CHOICES:
        raise ConversionError("answer out of range", str(index))
    return index


def _choices(record: dict, key: str) -> list[str]:
    choices = record.get(key)
    if not isinstance(choices, list) or len(choices) != N_CHOICES:
        raise ConversionError("choices not a list of 4", key)
    if not all(isinstance(choice, str) and choice.strip() for choice in choices):
        raise ConversionError("choices not a list of 4", f"{key} holds an empty or non-text choice")
    return [choice.strip() for choice in choices]


def _food_file(record: dict) -> str:
    meta = record.get("food_meta")
    food_file = meta.get("food_file") if isinstance(meta, dict) else None
    if not isinstance(food_file, str) or not food_file.strip():
        raise ConversionError("missing food_file")
    food_file = food_file.strip()
    if food_file.startswith("/") and not os.path.exists(food_file):
        # "/images/x.jpg" means relative to the dataset folder, not the filesystem root.
        food_file = food_file.lstrip("/")
    return food_file


def _dish_name(record: dict, lang: str) -> str | None:
    meta = record.get("food_meta") if isinstance(record.get("food_meta"), dict) else {}
    candidates = [record.get("food_name"), meta.get("food_name")]
    if lang == "en":
        candidates = [record.get("food_name_en"), meta.get("food_name_en")] + candidates
    return next((name.strip() for name in candidates if isinstance(name, str) and name.strip()), None)


def _open_answer(choice: str, dish: str | None, lang: str) -> str:
    # Trailing sentence punctuation would double up with the joined clause.
    choice = choice.rstrip("。.")
    if dish is None or dish == choice:  # "noodles. The dish in the picture is noodles" says nothing twice
        return choice
    if lang == "zh":
        return f"{choice}，图中的菜是{dish}"
    return f"{choice}. The dish in the picture is {dish}"


def convert_record(
    index: int, record: dict, form: str = "choice", lang: str = "zh", image_root: str | None = None,
    answer_with: str = "letter",
) -> dict:
    fields = _FIELDS[lang]
    question = text_field(record, fields["question"], reason="missing question")
    choices = _choices(record, fields["choices"])
    answer = _answer_index(record.get("answer"))
    image = normalise_image_path(_food_file(record), image_root)
    if form == "open":
        human = f"{question}\n{IMAGE_TAG}"
        gpt = _open_answer(choices[answer], _dish_name(record, lang), lang)
    else:
        human = choice_prompt(question, choices, lang, answer_with=answer_with)
        gpt = choice_answer(choices, answer, answer_with)
    row_id = record.get("id") or record.get("question_id") or f"foodieqa-{index}"
    conversations = [{"from": HUMAN, "value": human}, {"from": GPT, "value": gpt}]
    return build_row(row_id, conversations, [image])


def convert(
    path: str | os.PathLike,
    form: str = "choice",
    lang: str = "zh",
    image_root: str | os.PathLike | None = None,
    answer_with: str = "letter",
) -> tuple[list[dict], ConversionReport]:
    """Convert a FoodieQA ``sivqa`` JSON list; image paths stay relative to the dataset folder."""
    if form not in FORMS:
        raise ValueError(f"unknown form {form!r}; expected one of {FORMS}")
    if lang not in _FIELDS:
        raise ValueError(f"unknown language {lang!r}; expected one of {tuple(_FIELDS)}")
    records = read_json_records(path)
    if not isinstance(records, list):
        raise InputError(f"{path}: expected a JSON list of FoodieQA records")
    report = ConversionReport(f"foodieqa ({form}, {lang})")
    rows = convert_records(
        records, lambda i, record: convert_record(i, record, form, lang, image_root, answer_with), report
    )
    return rows, report


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", help="FoodieQA sivqa JSON list (e.g. sivqa_tidy.json)")
    parser.add_argument(
        "--form", choices=FORMS, default="choice",
        help="choice: lettered options, answer is the letter (default); open: answer in words",
    )
    parser.add_argument("--lang", choices=tuple(_FIELDS), default="zh", help="use the Chinese or English fields")
    add_answer_with_argument(parser)
    add_common_arguments(parser, "the FoodieQA dataset folder; when given, every food_file must exist under it")


def run(args: argparse.Namespace) -> int:
    check_outputs(args, [args.input])
    rows, report = convert(args.input, args.form, args.lang, args.image_root, args.answer_with)
    return finish(args, rows, report, [args.input])
