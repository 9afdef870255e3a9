"""The scorers against lmms-eval's own (0.7.3, installed once into a cached side environment): its VQAv2
and TextVQA accuracy, MME's parser and acc + acc+ totals, POPE's metrics and MMBench's answer
extraction and circular evaluation. lmms-eval's task package imports its whole framework, so only the
scoring files are loaded, under stub parent packages (nothing else of lmms-eval runs)."""
import random

import pytest

from helpers.lmms_scorers import scorers
from vlmtune.bench.readers import official
from vlmtune.bench.answers import yes_no_mme
from vlmtune.bench.run import benchmark
from vlmtune.bench.tasks._base import Question
from vlmtune.bench.tasks.mmbench import rotated
from vlmtune.bench.vqa_normalise import textvqa_normalise, vqa_accuracy

pytestmark = pytest.mark.side_envs

WORDS = ['Two.', '2', 'two', 'the dog', 'Dog!', 'dogs', "don't", 'dont', 'black/white', 'black and white',
         '2,000', '2000', 'yes', 'Yes.', 'no', 'a red car', 'red', '3.5', '( red )', "man's hat", 'none', '0']


@pytest.fixture(scope='module')
def lmms():
    yield from scorers()


def answer_sets(seed=0, n=200):
    rng = random.Random(seed)
    for _ in range(n):
        answers = [rng.choice(WORDS[:12]) for _ in range(10)]
        yield rng.choice(WORDS), answers


def test_vqav2_and_textvqa_accuracy_equal_lmms_eval(lmms):
    vqav2, textvqa = lmms('vqav2/utils'), lmms('textvqa/utils')
    for prediction, answers in answer_sets():
        # As in the annotations: each answer carries its answer_id, so leaving one out removes just that one.
        doc = {'question_id': 1, 'answers': [{'answer': a, 'answer_confidence': 'yes', 'answer_id': k + 1}
                                             for k, a in enumerate(answers)]}
        theirs = vqav2.vqav2_process_results(doc, [prediction])['exact_match']
        assert vqa_accuracy(prediction, answers)[0] == pytest.approx(theirs), (prediction, answers)
        theirs = textvqa.textvqa_process_results({'question_id': 1, 'answers': list(answers)}, [prediction])
        assert vqa_accuracy(prediction, answers, textvqa_normalise)[0] == pytest.approx(theirs['exact_match'])


def test_mme_parser_and_totals_equal_lmms_eval(lmms):
    mme = lmms('mme/utils')
    outputs = ['Yes', 'no', 'Yes.', 'No, it is not.', 'y', 'n', 'x', 'maybe', 'The answer is yes', 'nope', 'yes!']
    assert [yes_no_mme(o) for o in outputs] == [None if p == 'other' else p for p in map(mme.parse_pred_ans, outputs)]
    rng = random.Random(1)
    task, questions, outputs = benchmark('mme'), [], []
    for subtask in ['color', 'OCR', 'scene', 'code_reasoning', 'text_translation']:
        for image in range(6):
            for truth in ('yes', 'no'):
                questions.append(Question('', 'q', None, truth, {'task': subtask, 'image': f'{image}.jpg'}))
                outputs.append(rng.choice(['Yes', 'No', 'no idea']))
    rows = [{'meta': q.meta, 'truth': q.truth, **task.score(q, o)} for q, o in zip(questions, outputs)]
    ours = task.summarise(rows)['metrics']
    theirs = {}
    for q, o in zip(questions, outputs):
        result = mme.mme_process_results({'question_id': f"{q.meta['task']}/{q.meta['image']}", 'category': q.meta['task'],
                                          'answer': q.truth.capitalize()}, [o])
        for key, value in result.items():
            theirs.setdefault(key, []).append(value)
    assert ours['perception'] == pytest.approx(mme.mme_aggregate_results(theirs['mme_perception_score']))
    assert ours['cognition'] == pytest.approx(mme.mme_aggregate_results(theirs['mme_cognition_score']))


def test_pope_metrics_equal_lmms_eval(lmms):
    pope = lmms('pope/utils')
    rng = random.Random(2)
    truths = [rng.choice(['yes', 'no']) for _ in range(60)]
    outputs = [rng.choice(['yes', 'no', 'Yes', 'No']) for _ in truths]  # lmms-eval reads only bare yes / no
    task = benchmark('pope')
    rows = [{'truth': t, 'meta': {'split': 'random'}, **task.score(Question('', 'q', None, t), o)}
            for t, o in zip(truths, outputs)]
    ours = task.summarise(rows)['metrics']
    results = [pope.pope_process_results({'question_id': i, 'answer': t}, [o])['pope_accuracy']
               for i, (t, o) in enumerate(zip(truths, outputs))]
    assert ours['accuracy'] == pytest.approx(pope.pope_aggregate_accuracy(results))
    assert ours['precision'] == pytest.approx(pope.pope_aggregate_precision(results))
    assert ours['recall'] == pytest.approx(pope.pope_aggregate_recall(results))
    assert ours['f1'] == pytest.approx(pope.pope_aggregate_f1_score(results))


MMB_OPTIONS = {'A': 'a cat', 'B': 'a dog', 'C': 'a bird', 'D': 'a fish'}
MMB_OUTPUTS = ['A', 'B.', '(C)', 'D)', 'The answer is B.', 'a dog', 'It is a bird', 'C: a bird', 'Option D',
               'B, a dog', 'a cat or a dog', 'nothing', 'A big cat sitting down']


def test_mmbench_extraction_equals_lmms_eval(lmms):
    evaluator = lmms('mmbench/mmbench_evals').MMBench_Evaluator()
    for output in MMB_OUTPUTS:
        assert official.choice(output, MMB_OPTIONS)[0] == (evaluator.can_infer(output, dict(MMB_OPTIONS)) or None), output


def test_mmbench_circular_equals_lmms_eval(lmms):
    evaluator = lmms('mmbench/mmbench_evals').MMBench_Evaluator()
    rng = random.Random(3)
    task, questions, results = benchmark('mmbench'), [], []
    readable = [o for o in MMB_OUTPUTS if official.choice(o, MMB_OPTIONS)[0]] + ['A', 'B', 'C', 'D'] * 3
    for group in range(40):
        truth = rng.choice('ABCD')
        for step in range(4):
            shown = rotated(MMB_OPTIONS, step)
            answer = next(k for k, v in shown.items() if v == MMB_OPTIONS[truth])
            output = answer if rng.random() < 0.8 else rng.choice(readable)
            index = group + step * 1_000_000
            questions.append(Question(str(index), 'q', None, answer, {'group': group, 'rotation': step,
                                                                     'options': shown, 'category': 'c'}))
            results.append({'index': index, 'question': 'q', **shown, 'answer': answer, 'prediction': output,
                            'category': 'c', 'hint': 'nan', 'source': 's', 'split': 'dev'})
    outputs = [r['prediction'] for r in results]
    rows = [{'meta': q.meta, 'truth': q.truth, **task.score(q, o)} for q, o in zip(questions, outputs)]
    overall, _, _ = evaluator.eval_result(results, 'static')
    assert task.summarise(rows)['metrics']['circular_accuracy'] == pytest.approx(overall)
