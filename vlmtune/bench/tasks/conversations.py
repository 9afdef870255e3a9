"""Our own conversation JSONL (what `vlmtune data convert` writes): the first human turn is the question,
the first gpt turn the reference. A question that lists options (`(A) text` lines, full-width `（A)` too)
is multiple choice, read by the package's one multiple-choice reader (bench/answers.py) on both the output
and the reference (which may be the letter or the option's text); any other question is open and scored
by VQA-style normalised exact match (lower case, punctuation and articles dropped).

Per question (predictions.jsonl): the question, the reference, `kind` (multiple_choice | open),
`correct`, `predicted_letter` (multiple choice) besides the benchmark fields."""
import re
from pathlib import Path

from ..readers import official
from . import register
from ._base import Benchmark, Question, image_file, mean, read_json_lines, require

OPTION_LINE = re.compile(r'^[（(]([A-Z])[)）]\s*(.+)$', re.MULTILINE)
ARTICLES = {'a', 'an', 'the'}


def options_of(question: str) -> dict:
    """{letter: option text} of the `(A) text` lines of a question (empty: not multiple choice)."""
    return {letter: option.strip() for letter, option in OPTION_LINE.findall(question)}


def normalise(text: str) -> str:
    text = re.sub(r'[^\w\s]', ' ', text.lower())
    return ' '.join(w for w in text.split() if w not in ARTICLES)


def score_answer(question: str, prediction: str, reference: str, reader=official) -> dict:
    """One output against its reference, both read by `reader` (bench/readers) where the question lists options:
    {'kind', 'correct', 'predicted_letter' and 'rule' (multiple choice)}."""
    options = options_of(question)
    if options:
        (letter, rule), (truth, _) = reader.choice(prediction, options), reader.choice(reference, options)
        return {'kind': 'multiple_choice', 'correct': letter is not None and letter == truth,
                'predicted_letter': letter, 'rule': rule}
    return {'kind': 'open', 'correct': normalise(prediction) == normalise(reference), 'rule': 'normalised_match'}


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
            image = image_file(images or path.parent, row['image']) if row.get('image') else None
            question, reference = turns[0]['value'], turns[1]['value']
            questions.append(Question(str(row.get('id', number)), question, image, reference,
                                      meta={'question': question, 'reference': reference}))
        return questions

    def score(self, question, output):
        result = score_answer(question.text, output, question.truth, self.reader)
        parsed = result['predicted_letter'] if result['kind'] == 'multiple_choice' else output.strip()
        return {'parsed': parsed, 'score': float(result['correct']), **result}

    def summarise(self, rows):
        kinds = {kind: [r['score'] for r in rows if r['kind'] == kind] for kind in ('multiple_choice', 'open')}
        return {'headline': 'accuracy',
                'metrics': {'accuracy': mean(r['score'] for r in rows),
                            **{f'{kind}_accuracy': mean(s) for kind, s in kinds.items() if s},
                            **{f'n_{kind}': len(s) for kind, s in kinds.items()}}}
