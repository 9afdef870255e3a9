"""Multiple-choice rows of a conversation JSONL -> an MMBench TSV, so a domain's own held-out set is
scored the way MMBench is (circular: right under every rotation of its options)."""
import csv
from pathlib import Path

from ..data.image.tokens import IMAGE_TAG
from ..files import atomic_writer
from .readers import official
from .tasks._base import read_json_lines
from .tasks.conversations import OPTION_LINE, options_of

COLUMNS = ['index', 'question', 'hint', 'A', 'B', 'C', 'D', 'answer', 'category', 'image_path']


def split_choice_question(text: str):
    """'<image>\\nQ\\n(A) x\\n(B) y\\nInstruction' -> ('Q', {'A': 'x', 'B': 'y'})."""
    lines = text.replace(IMAGE_TAG, '').strip().split('\n')
    first = next(i for i, line in enumerate(lines) if OPTION_LINE.match(line))
    return '\n'.join(lines[:first]).strip(), options_of(text)


def conversations_to_mmbench(data_path, out_path) -> dict:
    """Writes the rows whose first question lists options; {'written', 'skipped'} (rows without options,
    or whose reference is neither a letter nor an option's text)."""
    rows = read_json_lines(Path(data_path), 'conversation rows')
    written, skipped = 0, 0
    with atomic_writer(Path(out_path)) as handle:
        writer = csv.writer(handle, delimiter='\t', lineterminator='\n')  # quotes cells with newlines, as pandas
        writer.writerow(COLUMNS)
        for number, row in enumerate(rows):
            question, reference = row['conversations'][0]['value'], row['conversations'][1]['value']
            options = options_of(question)
            answer = official.choice(reference, options)[0] if options else None
            if answer is None or not row.get('image'):
                skipped += 1
                continue
            text, options = split_choice_question(question)
            writer.writerow([number, text, 'nan'] + [options.get(k, 'nan') for k in 'ABCD'] +
                            [answer, row.get('category', 'nan'), row['image']])
            written += 1
    return {'written': written, 'skipped': skipped}
