"""Our own conversation JSONL (what `vlmtune data convert` writes): the first human turn is the
question, the first gpt turn the reference; scored as `vlmtune eval MODEL DATA` scores it."""
from pathlib import Path

from ...evaluate import score as score_turn
from . import register
from ._base import Benchmark, Question, image_file, mean, read_json_lines, require


@register('conversations')
class Conversations(Benchmark):
    name = 'conversations'
    layout = 'conversation JSONL (id, image, conversations: human question, gpt reference)'
    metric = 'accuracy: option letter or text for listed options, normalised exact match otherwise'
    instruction = ''   # the question carries its own

    def read(self, path, images=None):
        path = Path(path)
        questions = []
        for number, row in enumerate(read_json_lines(path, 'conversation rows'), 1):
            where = f'{path}:{number}'
            require(row, ['conversations'], where)
            turns = row['conversations']
            if len(turns) < 2:
                raise ValueError(f'{where}: needs a question and a reference turn')
            image = image_file(images or path.parent, row['image'], where) if row.get('image') else None
            questions.append(Question(str(row.get('id', number)), turns[0]['value'], image, turns[1]['value']))
        return questions

    def score(self, question, output):
        result = score_turn(question.text, output, question.truth)
        return {'parsed': result.get('predicted_letter', output.strip()), 'score': float(result['correct']),
                'kind': result['kind']}

    def summarise(self, rows):
        kinds = {kind: [r['score'] for r in rows if r['kind'] == kind] for kind in ('multiple_choice', 'open')}
        return {'headline': 'accuracy',
                'metrics': {'accuracy': mean(r['score'] for r in rows),
                            **{f'{kind}_accuracy': mean(s) for kind, s in kinds.items() if s}}}
