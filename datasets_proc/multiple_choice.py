"""The lettered multiple-choice prompt shared by the FoodieQA, CSV and HF converters.

The layout follows FoodieQA's own evaluation prompt: question, one option per line
as ``（A) ...`` in Chinese or ``(A) ...`` in English, then an instruction to answer
with the letter only. The expected answer is the bare letter. ``answer_with="text"`` asks for the
option's text instead (for models too small to learn letter pointing, e.g. the embedded default).
"""

from __future__ import annotations

import json
import string
from typing import Any

from datasets_proc.canonical import IMAGE_TAG
from datasets_proc.errors import ConversionError

LETTERS = string.ascii_uppercase
LANGUAGES = ("zh", "en")
_OPTION_OPENER = {"zh": "（", "en": "("}
_ANSWER_INSTRUCTION = {
    "letter": {"zh": "请直接回答选项字母。", "en": "Answer with the option's letter directly."},
    "text": {"zh": "请直接回答选项内容。", "en": "Answer with the option's text directly."},
}
ANSWER_WITH = tuple(_ANSWER_INSTRUCTION)
_LETTER_DECORATION = "()（）.．:：、 \t"


def choice_prompt(question: str, options: list[str], lang: str = "en", n_images: int = 1,
                  answer_with: str = "letter") -> str:
    """The human turn: one ``<image>\\n`` per image, question, lettered options, answer instruction."""
    if lang not in LANGUAGES:
        raise ValueError(f"unknown language {lang!r}; expected one of {LANGUAGES}")
    if answer_with not in ANSWER_WITH:
        raise ValueError(f"unknown answer_with {answer_with!r}; expected one of {ANSWER_WITH}")
    if len(options) > len(LETTERS):
        raise ConversionError("too many options", f"{len(options)} options")
    opener = _OPTION_OPENER[lang]
    lines = [question.strip()]
    lines += [f"{opener}{LETTERS[i]}) {option.strip()}" for i, option in enumerate(options)]
    lines.append(_ANSWER_INSTRUCTION[answer_with][lang])
    prompt = "\n".join(lines)
    return f"{IMAGE_TAG}\n" * n_images + prompt


def add_answer_with_argument(parser) -> None:
    parser.add_argument(
        "--answer-with", choices=ANSWER_WITH, default="letter",
        help="multiple choice: answer with the option's letter (default, FoodieQA's form) or its text",
    )


def parse_options(value: Any) -> list[str]:
    """Options given as a list, a JSON list string, or a ``|``-separated string; empty means none."""
    if value is None:
        return []
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return []
        if text.startswith("["):
            try:
                value = json.loads(text)
            except json.JSONDecodeError:
                raise ConversionError("bad options", "options look like a JSON list but do not parse") from None
        else:
            value = text.split("|")
    if isinstance(value, (list, tuple)) and not value:
        return []
    if not isinstance(value, (list, tuple)):
        raise ConversionError("bad options", f"options must be a list, got {type(value).__name__}")
    options = [str(option).strip() if option is not None else "" for option in value]
    if any(not option for option in options):
        raise ConversionError("bad options", "empty option text")
    if len(options) < 2:
        raise ConversionError("bad options", "fewer than 2 options")
    return options


def choice_answer(options: list[str], index: int, answer_with: str = "letter") -> str:
    """The gpt turn of a multiple-choice question: the letter, or the option's text."""
    return LETTERS[index] if answer_with == "letter" else options[index].strip()


def answer_index(answer: Any, options: list[str]) -> int:
    """Resolve an answer given as a letter (``B``, ``(B)``, ``b.``), the option's text, or a 0-based int."""
    if isinstance(answer, bool) or answer is None:
        raise ConversionError("missing answer")
    if isinstance(answer, int):
        if 0 <= answer < len(options):
            return answer
        raise ConversionError("answer out of range", f"{answer} with {len(options)} options")
    text = str(answer).strip()
    if not text:
        raise ConversionError("missing answer")
    if text in options:
        return options.index(text)
    letter = text.strip(_LETTER_DECORATION).upper()
    if len(letter) == 1 and letter in LETTERS:
        index = LETTERS.index(letter)
        if index < len(options):
            return index
        raise ConversionError("answer out of range", f"{text!r} with {len(options)} options")
    raise ConversionError("answer not among options", text)
