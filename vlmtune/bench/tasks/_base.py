"""What a benchmark is here: a reader of its published files, a prompt, a per-question scorer and the
summary its own evaluation reports."""
import base64
import json
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional

from ..readers import reader_named

# The short-answer instruction LLaVA-1.5 / TinyLLaVA / InternVL's VQA evaluations append.
SHORT_ANSWER = 'Answer the question using a single word or phrase.'
# Their multiple-choice instruction (MMBench, ScienceQA-IMG, SEED).
LETTER_ANSWER = "Answer with the option's letter from the given choices directly."


@dataclass
class Question:
    id: str
    text: str                  # the question as the benchmark's prompt lays it out, before the instruction
    image: object              # a Path, or the image's bytes (base64 cells of a TSV)
    truth: object              # what the scorer compares against
    meta: dict = field(default_factory=dict)   # category, options, rotation group ... (kept in the JSONL)


class Benchmark:
    name = ''
    layout = ''          # the files it reads, in words (the formats table)
    metric = ''          # what its headline number is
    instruction = ''     # appended on its own line after the question; `--prompt` overrides it
    max_new_tokens = 16
    default_reader = 'official'   # how outputs become answers (bench/readers): the one its leaderboard uses
    judged_as = None              # 'choice' | 'yes_no': what --judge asks about an output no rule read (bench/judge.py)

    def __init__(self, reader: str = None):
        self.notes = []      # what the file reader left out and why (kept in the results)
        self.reader = reader_named(reader or self.default_reader)

    def read(self, path: Path, images: Optional[Path]) -> List[Question]:
        raise NotImplementedError

    def prompt(self, question: Question, instruction: Optional[str] = None) -> str:
        instruction = self.instruction if instruction is None else instruction
        return f'{question.text}\n{instruction}' if instruction else question.text

    def score(self, question: Question, output: str) -> dict:
        """Per-question fields: 'parsed' (None when unanswerable) and 'score' (0..1)."""
        raise NotImplementedError

    def summarise(self, rows: List[dict]) -> dict:
        """{'headline': metric name, 'metrics': {name: value}, 'breakdown': {group: {name: value}}}"""
        raise NotImplementedError


class MultipleChoice(Benchmark):
    """Questions whose meta['options'] is {letter: text} and whose truth is the right letter."""
    instruction = LETTER_ANSWER
    judged_as = 'choice'

    def score(self, question, output):
        parsed, rule = self.reader.choice(output, question.meta['options'])
        return {'parsed': parsed, 'score': float(parsed == question.truth), 'rule': rule}


def read_json(path: Path, what: str):
    try:
        return json.loads(Path(path).read_text(encoding='utf-8'))
    except FileNotFoundError:
        raise FileNotFoundError(f'{path}: no such file ({what})') from None
    except json.JSONDecodeError as exc:
        raise ValueError(f'{path}: not valid JSON ({exc}); expected {what}') from None


def read_json_lines(path: Path, what: str) -> list:
    rows = []
    with open(path, encoding='utf-8') as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise ValueError(f'{path}:{number}: not valid JSON ({exc}); expected {what}') from None
    return rows


def require(row: dict, keys, where: str):
    absent = [key for key in keys if key not in row]
    if absent:
        raise ValueError(f'{where}: missing {", ".join(map(repr, absent))} (has {", ".join(map(repr, row))})')


def image_root(images, path: Path, *candidates: str) -> Path:
    """--images when given, else the first of the benchmark's usual folders beside its file that exists,
    else the file's own folder."""
    if images:
        return Path(images)
    return next((path.parent / c for c in candidates if c and (path.parent / c).is_dir()), path.parent)


def image_file(root: Path, name: str, extensions=('',)) -> Path:
    """root/name (trying each extension). A missing one is returned as the first candidate: the run counts
    its question wrong and asks the rest (bench/run.py), and stops when no image at all can be read."""
    for extension in extensions:
        path = Path(root) / f'{name}{extension}'
        if path.is_file():
            return path
    return Path(root) / f'{name}{extensions[0]}'


def decode_base64_image(cell: str, where: str) -> bytes:
    try:
        return base64.b64decode(cell, validate=True)
    except (ValueError, TypeError):
        raise ValueError(f'{where}: the image cell is not base64 (MMBench-style TSVs embed the image)') from None


def mean(values) -> Optional[float]:
    values = list(values)
    return sum(values) / len(values) if values else None


def accuracy_by(rows: List[dict], key: str) -> dict:
    """{meta[key]: {'accuracy': mean score, 'n': count}} for rows that have the key."""
    groups = defaultdict(list)
    for row in rows:
        if row['meta'].get(key) is not None:
            groups[row['meta'][key]].append(row['score'])
    return {str(name): {'accuracy': mean(scores), 'n': len(scores)} for name, scores in sorted(groups.items())}


def plain_summary(rows: List[dict], name='accuracy', breakdown_key=None) -> dict:
    """Mean per-question score as the headline, with an optional per-category table."""
    summary = {'headline': name, 'metrics': {name: mean(r['score'] for r in rows)}}
    if breakdown_key:
        summary['breakdown'] = accuracy_by(rows, breakdown_key)
    return summary
