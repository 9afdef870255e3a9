"""ScienceQA-IMG: the test problems that have an image, from ScienceQA's problems.json (pid -> question,
choices, answer index, hint, image, split, subject); pid_splits.json beside it picks the split when
present. Images are <images>/<pid>/image.png (default: images/test/ or test/ beside problems.json)."""
from pathlib import Path

from ..answers import letters, option_lines
from . import register
from ._base import MultipleChoice, Question, image_file, image_root, plain_summary, read_json, require

SPLIT = 'test'


@register('scienceqa')
class ScienceQA(MultipleChoice):
    name = 'scienceqa'
    layout = 'ScienceQA problems.json (+ pid_splits.json), images <pid>/image.png; image questions of test'
    metric = 'accuracy (IMG subset), per subject'

    def read(self, path, images=None):
        path = Path(path)
        problems = read_json(path, 'ScienceQA problems.json: {pid: {question, choices, answer, ...}}')
        splits = path.parent / 'pid_splits.json'
        pids = read_json(splits, 'pid_splits.json')[SPLIT] if splits.is_file() else \
            [pid for pid, p in problems.items() if p.get('split', SPLIT) == SPLIT]
        root = image_root(images, path, f'images/{SPLIT}', SPLIT, 'images')
        questions, without_image = [], 0
        for pid in pids:
            where = f'{path}: problem {pid}'
            if pid not in problems:
                raise ValueError(f'{where}: listed in {splits.name} but not in {path.name}')
            problem = problems[pid]
            require(problem, ['question', 'choices', 'answer'], where)
            if not problem.get('image'):
                without_image += 1  # not in the IMG subset
                continue
            options = dict(zip(letters(len(problem['choices'])), problem['choices']))
            hint = (problem.get('hint') or '').strip()
            text = (f'Context: {hint}\n' if hint else '') + problem['question'] + '\n' + option_lines(options)
            questions.append(Question(pid, text, image_file(root / pid, problem['image']),
                                      letters(len(options))[int(problem['answer'])],
                                      {'options': options, 'subject': problem.get('subject')}))
        if without_image:
            self.notes.append(f'{without_image} {SPLIT} problems have no image (not in ScienceQA-IMG)')
        if not questions:
            raise ValueError(f'{path}: no {SPLIT} problem has an image (ScienceQA-IMG is that subset)')
        return questions

    def summarise(self, rows):
        return plain_summary(rows, 'accuracy', 'subject')
