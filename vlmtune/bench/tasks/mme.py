"""MME: the release folder (MME_Benchmark_release_version): one folder per subtask, each image with a
.txt of two 'question<TAB>Yes|No' lines, beside it or under images/ + questions_answers_YN/.

Per subtask, as MME's calculation.py: acc = % of questions right, acc+ = % of images with both of
their questions right, score = acc + acc+ (max 200); perception = the sum over its 10 subtasks (max
2000), cognition over its 4 (max 800).
"""
from collections import defaultdict
from pathlib import Path

from . import register
from ._base import SHORT_ANSWER, Benchmark, Question, mean

PERCEPTION = ['existence', 'count', 'position', 'color', 'posters', 'celebrity', 'scene', 'landmark', 'artwork', 'OCR']
COGNITION = ['commonsense_reasoning', 'numerical_calculation', 'text_translation', 'code_reasoning']
IMAGE_SUFFIXES = ('.jpg', '.png', '.jpeg', '.JPG', '.PNG')


def _pairs(task_dir: Path):
    """(image, question file) per image of one subtask folder, in either release layout."""
    if (task_dir / 'questions_answers_YN').is_dir():
        texts, images = sorted((task_dir / 'questions_answers_YN').glob('*.txt')), task_dir / 'images'
    else:
        texts, images = sorted(task_dir.glob('*.txt')), task_dir
    for text in texts:
        image = next((images / (text.stem + s) for s in IMAGE_SUFFIXES if (images / (text.stem + s)).is_file()), None)
        if image is None:
            raise FileNotFoundError(f'{text}: no image {text.stem}.jpg/.png in {images}')
        yield image, text


@register('mme')
class MME(Benchmark):
    name = 'mme'
    layout = 'MME release folder: <subtask>/ with image + .txt (question<TAB>Yes or No, 2 lines)'
    metric = 'per subtask acc + acc+ (max 200); perception (10 subtasks) and cognition (4) totals'
    instruction = SHORT_ANSWER
    judged_as = 'yes_no'

    def read(self, path, images=None):
        root = Path(images or path)
        if not root.is_dir():
            raise FileNotFoundError(f'{root}: MME is read from its release folder (one folder per subtask)')
        tasks = [name for name in PERCEPTION + COGNITION if (root / name).is_dir()]
        if not tasks:
            raise FileNotFoundError(f'{root}: none of the MME subtask folders ({", ".join(PERCEPTION + COGNITION)})')
        questions = []
        for task in tasks:
            for image, text in _pairs(root / task):
                lines = [line for line in text.read_text(encoding='utf-8').splitlines() if line.strip()]
                for number, line in enumerate(lines, 1):
                    question, _, answer = line.rpartition('\t')
                    answer = answer.strip().lower()
                    if not question or answer not in ('yes', 'no'):
                        raise ValueError(f'{text}:{number}: expected "question<TAB>Yes|No", got {line!r}')
                    questions.append(Question(f'{task}/{image.name}/{number}', question.strip(), image, answer,
                                              {'task': task, 'image': image.name}))
        return questions

    def score(self, question, output):
        parsed, rule = self.reader.yes_no(output, self.name)
        return {'parsed': parsed, 'score': float(parsed == question.truth), 'rule': rule}

    def summarise(self, rows):
        by_task = defaultdict(lambda: defaultdict(list))
        for row in rows:
            by_task[row['meta']['task']][row['meta']['image']].append(row['score'])
        breakdown = {}
        for task, per_image in by_task.items():
            acc = 100 * mean(s for scores in per_image.values() for s in scores)
            acc_plus = 100 * mean(float(all(s == 1 for s in scores)) for scores in per_image.values())
            breakdown[task] = {'acc': acc, 'acc_plus': acc_plus, 'score': acc + acc_plus, 'images': len(per_image)}
        total = {kind: sum(breakdown[t]['score'] for t in names if t in breakdown)
                 for kind, names in (('perception', PERCEPTION), ('cognition', COGNITION))}
        ordered = {task: breakdown[task] for task in PERCEPTION + COGNITION if task in breakdown}
        return {'headline': 'perception' if any(t in breakdown for t in PERCEPTION) else 'cognition',
                'metrics': {**total, 'subtasks': len(breakdown)}, 'breakdown': ordered, 'scale': 'points'}
