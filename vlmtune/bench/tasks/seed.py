"""SEED-Bench (image part): SEED-Bench.json ({"questions": [question_id, question, choice_a-d, answer,
data_id, data_type, question_type_id], "question_type": {name: id}}), images <images>/<data_id>
(default: SEED-Bench-image/ beside the JSON). Video questions are left out and counted."""
from pathlib import Path

from ..answers import option_lines
from . import register
from ._base import MultipleChoice, Question, image_file, plain_summary, read_json, require


@register('seed')
class SeedBench(MultipleChoice):
    name = 'seed'
    layout = 'SEED-Bench.json (questions: choice_a-d, answer, data_id, data_type), images by data_id'
    metric = 'accuracy (image questions), per question type'

    def read(self, path, images=None):
        path = Path(path)
        data = read_json(path, 'SEED-Bench.json: {"questions": [...], "question_type": {...}}')
        if not isinstance(data, dict) or 'questions' not in data:
            raise ValueError(f'{path}: expected {{"questions": [...]}} (SEED-Bench.json)')
        type_names = {v: k for k, v in data.get('question_type', {}).items()}
        root = Path(images) if images else path.parent / 'SEED-Bench-image'
        questions, video = [], 0
        for number, row in enumerate(data['questions']):
            where = f'{path}: questions[{number}]'
            require(row, ['question_id', 'question', 'choice_a', 'choice_b', 'answer', 'data_id'], where)
            if row.get('data_type', 'image') != 'image':
                video += 1
                continue
            options = {letter: row[f'choice_{letter.lower()}'] for letter in 'ABCD' if f'choice_{letter.lower()}' in row}
            if row['answer'] not in options:
                raise ValueError(f'{where}: answer {row["answer"]!r} is not one of {list(options)}')
            questions.append(Question(str(row['question_id']), row['question'] + '\n' + option_lines(options),
                                      image_file(root, row['data_id'], ('', '.jpg', '.png')), row['answer'],
                                      {'options': options, 'type': type_names.get(row.get('question_type_id'),
                                                                                   row.get('question_type_id'))}))
        if video:
            self.notes.append(f'{video} video questions left out (image part only)')
        return questions

    def summarise(self, rows):
        return plain_summary(rows, 'accuracy', 'type')
