"""MMBench: its TSV (index, question, hint, A-D[, E], answer, category, image as base64 or image_path),
scored by circular evaluation: a question counts only when every rotation of its options is right.

A TSV that carries the rotations itself (VLMEvalKit's: the copy of question i rotated r times has
index i + r * 1e6) is scored as it is; otherwise each question is asked once per option, its options
rotated one place each time under the same letters, as LLaVA's `--all-rounds` does.
"""
import csv
import sys
from collections import defaultdict
from pathlib import Path

from ..answers import letters, missing, option_lines
from . import register
from ._base import MultipleChoice, Question, accuracy_by, decode_base64_image, image_file, mean, require

ROTATION = 1_000_000


def read_tsv(path: Path) -> list:
    csv.field_size_limit(sys.maxsize)  # base64 images are far longer than csv's 128 KiB default
    try:
        with open(path, encoding='utf-8', newline='') as handle:
            return list(csv.DictReader(handle, delimiter='\t'))
    except FileNotFoundError:
        raise FileNotFoundError(f'{path}: no such file (an MMBench-style TSV)') from None


def options_of(row: dict) -> dict:
    """A, B, ... up to the first empty cell (LLaVA's get_options)."""
    options = {}
    for letter in 'ABCDE':
        if letter not in row or missing(row[letter]):
            break
        options[letter] = row[letter].strip()
    return options


def rotated(options: dict, steps: int) -> dict:
    texts = list(options.values())
    texts = texts[steps:] + texts[:steps]
    return dict(zip(letters(len(texts)), texts))


@register('mmbench')
class MMBench(MultipleChoice):
    name = 'mmbench'
    layout = 'MMBench TSV: index, question, hint, A-D (E), answer, category, image (base64) or image_path'
    metric = 'circular accuracy (every rotation right); vanilla = first pass only'
    default_reader = 'vlmevalkit'   # its leaderboard (OpenCompass) reads answers with VLMEvalKit
    # MMBench-CN: --prompt "请直接回答选项字母。" (LLaVA's Chinese instruction)

    def read(self, path, images=None):
        path = Path(path)
        rows = read_tsv(path)
        in_file = any(int(float(row.get('index') or 0)) >= ROTATION for row in rows)
        questions = []
        for number, row in enumerate(rows, 2):  # line 1 is the header
            where = f'{path}:{number}'
            require(row, ['index', 'question', 'answer'], where)
            index = int(float(row['index']))
            options = options_of(row)
            if len(options) < 2:
                raise ValueError(f'{where}: fewer than two options in columns A, B, ...')
            if row['answer'].strip() not in options:
                raise ValueError(f'{where}: answer {row["answer"]!r} is not one of the options {list(options)}')
            image = self._image(row, path, images, where)
            rotations = [(index % ROTATION, index // ROTATION, options)] if in_file else \
                [(index, step, rotated(options, step)) for step in range(len(options))]
            truth_text = options[row['answer'].strip()]
            for group, step, shown in rotations:
                truth = row['answer'].strip() if in_file else next(k for k, v in shown.items() if v == truth_text)
                questions.append(self._question(row, group, step, shown, truth, image))
        return questions

    @staticmethod
    def _image(row, path, images, where):
        if not missing(row.get('image')):
            return decode_base64_image(row['image'], where)
        if not missing(row.get('image_path')):
            return image_file(images or path.parent, row['image_path'])
        raise ValueError(f'{where}: no image (neither an "image" base64 cell nor an "image_path")')

    @staticmethod
    def _question(row, group, step, options, truth, image):
        hint = None if missing(row.get('hint')) else row['hint'].strip()
        text = (f'{hint}\n' if hint else '') + row['question'].strip() + '\n' + option_lines(options)
        meta = {'group': group, 'rotation': step, 'options': options, 'question': row['question'].strip(),
                'category': None if missing(row.get('category')) else row['category'],
                'l2_category': None if missing(row.get('l2-category')) else row['l2-category']}
        return Question(str(group + step * ROTATION), text, image, truth, meta)

    def summarise(self, rows):
        groups = defaultdict(list)
        for row in rows:
            groups[row['meta']['group']].append(row)
        per_question = [{'score': float(all(r['score'] == 1 for r in passes)), 'meta': passes[0]['meta']}
                        for passes in groups.values()]
        first = [r for r in rows if r['meta']['rotation'] == 0]
        return {'headline': 'circular_accuracy',
                'metrics': {'circular_accuracy': mean(r['score'] for r in per_question),
                            'vanilla_accuracy': mean(r['score'] for r in first),
                            'questions': len(per_question), 'passes': len(rows)},
                # VLMEvalKit's report_acc table: the L2 abilities, then the categories
                'breakdown': {**accuracy_by(per_question, 'l2_category'), **accuracy_by(per_question, 'category')}}
