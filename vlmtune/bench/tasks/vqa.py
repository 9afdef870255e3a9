"""The open-answer VQA benchmarks: VQAv2 and TextVQA (ten human answers, the official VQA accuracy on
normalised answers) and GQA (one answer, exact match)."""
from pathlib import Path

from . import register
from ._base import SHORT_ANSWER, Benchmark, Question, image_file, image_root, plain_summary, read_json, require


class TenAnswerVQA(Benchmark):
    instruction = SHORT_ANSWER
    breakdown_key = None

    def score(self, question, output):
        return self.reader.short_answer(output, question.truth, self.name)

    def summarise(self, rows):
        return plain_summary(rows, 'accuracy', self.breakdown_key)


def annotations_beside(questions_path: Path) -> Path:
    """v2_OpenEnded_mscoco_val2014_questions.json -> v2_mscoco_val2014_annotations.json (else the one
    *annotations*.json of the folder)."""
    named = questions_path.with_name(questions_path.name.replace('OpenEnded_', '').replace('questions', 'annotations'))
    if named != questions_path and named.is_file():
        return named
    found = sorted(questions_path.parent.glob('*annotations*.json'))
    if len(found) == 1:
        return found[0]
    raise FileNotFoundError(f'{questions_path}: no annotations file beside it (expected {named.name}); a split '
                            f'without annotations (test-dev) is scored by the EvalAI server, not locally')


@register('vqav2')
class VQAv2(TenAnswerVQA):
    name = 'vqav2'
    layout = 'VQAv2 questions JSON + its annotations JSON beside, images COCO_<subtype>_<id:012d>.jpg'
    metric = 'VQA accuracy (mean over leave-one-out subsets of min(#match/3, 1)), per answer type'
    breakdown_key = 'answer_type'

    def read(self, path, images=None):
        path = Path(path)
        data = read_json(path, 'VQAv2 questions: {"questions": [{image_id, question, question_id}]}')
        annotations_path = annotations_beside(path)
        annotations = {a['question_id']: a for a in read_json(annotations_path, 'VQAv2 annotations')['annotations']}
        subtype = data.get('data_subtype', '')
        root = image_root(images, path, subtype, 'images' if subtype else None)
        questions = []
        for number, row in enumerate(data['questions']):
            where = f'{path}: questions[{number}]'
            require(row, ['image_id', 'question', 'question_id'], where)
            if row['question_id'] not in annotations:
                raise ValueError(f'{where}: question_id {row["question_id"]} has no entry in {annotations_path.name}')
            answer = annotations[row['question_id']]
            name = f'COCO_{subtype}_{int(row["image_id"]):012d}.jpg'
            questions.append(Question(str(row['question_id']), row['question'], image_file(root, name),
                                      [a['answer'] for a in answer['answers']],
                                      {'answer_type': answer.get('answer_type')}))
        return questions


@register('textvqa')
class TextVQA(TenAnswerVQA):
    name = 'textvqa'
    layout = 'TextVQA_0.5.1_<split>.json ({"data": [question_id, question, image_id, answers]}), <image_id>.jpg'
    metric = 'VQA accuracy, m4c answer processing (as the TextVQA evaluator)'

    def read(self, path, images=None):
        path = Path(path)
        data = read_json(path, 'TextVQA JSON: {"data": [{question_id, question, image_id, answers}]}')
        root = image_root(images, path, 'train_images', 'images')
        questions = []
        for number, row in enumerate(data['data']):
            where = f'{path}: data[{number}]'
            require(row, ['question_id', 'question', 'image_id', 'answers'], where)
            questions.append(Question(str(row['question_id']), row['question'],
                                      image_file(root, row['image_id'], ('.jpg', '.png', '')), row['answers']))
        return questions


@register('gqa')
class GQA(Benchmark):
    name = 'gqa'
    layout = 'GQA <split>_questions.json ({qid: {imageId, question, answer, types}}), images <imageId>.jpg'
    metric = "exact match (prediction lower-cased, trailing '.' dropped), per structural type"
    instruction = SHORT_ANSWER

    def read(self, path, images=None):
        path = Path(path)
        data = read_json(path, 'GQA questions: {question_id: {imageId, question, answer}}')
        root = image_root(images, path, 'images')
        questions = []
        for qid, row in data.items():
            where = f'{path}: question {qid}'
            require(row, ['imageId', 'question', 'answer'], where)
            questions.append(Question(str(qid), row['question'], image_file(root, row['imageId'], ('.jpg', '.png')),
                                      row['answer'], {'structural': (row.get('types') or {}).get('structural')}))
        return questions

    def score(self, question, output):
        return self.reader.short_answer(output, [question.truth], self.name)

    def summarise(self, rows):
        return plain_summary(rows, 'accuracy', 'structural')
