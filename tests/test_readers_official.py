"""The official reader against each benchmark's own script, on the adversarial outputs the VLMEvalKit oracle reads
(tests/helpers/adversarial_outputs.py): MMBench by its evaluator's can_infer and MME by its calculation.py parser
(lmms-eval's copies), VQAv2 by EvalAI's processing (lmms-eval's copy), TextVQA by m4c's evaluator and POPE by
eval_pope (LLaVA's own, PyPI's llava-torch). Only those files are loaded. GQA has no runnable copy: LLaVA's
convert_gqa_for_eval leaves `text.rstrip('.').lower()` of the stripped output for GQA's exact match (stated below)."""
import contextlib
import importlib.util
import io
import json

import pytest

from helpers.adversarial_outputs import cases
from helpers.lmms_scorers import scorers
from vlmtune.bench.readers import official
from vlmtune.bench.tasks.pope import binary_metrics
from vlmtune.side_envs import side_env

pytestmark = pytest.mark.side_envs


@pytest.fixture(scope='module')
def lmms():
    yield from scorers()


def llava_eval(name):
    path = side_env('llava-1.2.2') / 'llava' / 'eval' / f'{name}.py'
    spec = importlib.util.spec_from_file_location(f'llava_eval_{name}', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_mmbench_reads_as_its_evaluator(lmms):
    evaluator = lmms('mmbench/mmbench_evals').MMBench_Evaluator()
    compared, differ = 0, []
    for output, options in cases()['choice']:
        if len(options) > 4:  # MMBench has at most four options: its text rule asserts A-D, its letter rule reads A-E
            theirs = evaluator.can_infer_option(output) or None
            if theirs is None:
                continue
        else:
            theirs = evaluator.can_infer(output, dict(options)) or None
        compared += 1
        ours = official.choice(output, options)[0]
        if ours != theirs:
            differ.append((output, ours, theirs))
    assert compared >= 150 and not differ, differ


def test_mme_reads_as_calculation_py(lmms):
    parse = lmms('mme/utils').parse_pred_ans
    outputs = cases()['yes_no']
    differ = [(o, official.yes_no(o, 'mme')[0], parse(o)) for o in outputs
              if official.yes_no(o, 'mme')[0] != {'other': None}.get(parse(o), parse(o))]
    assert len(outputs) >= 150 and not differ, differ


def test_vqav2_scores_as_evalai(lmms):
    process = lmms('vqav2/utils').vqav2_process_results
    differ = []
    for output, answers in cases()['vqa']:
        doc = {'question_id': 1, 'answers': [{'answer': a, 'answer_confidence': 'yes', 'answer_id': k + 1}
                                             for k, a in enumerate(answers)]}
        theirs, ours = process(doc, [output])['exact_match'], official.short_answer(output, answers, 'vqav2')
        if abs(ours['score'] - theirs) > 1e-12:
            differ.append((output, answers, ours['score'], theirs))
    assert len(cases()['vqa']) >= 150 and not differ, differ
    assert official.short_answer('1,,000', ['1000'] * 10, 'vqav2')['score'] == 1.0  # EvalAI's commas, not vqaEval.py's


def test_textvqa_scores_as_m4c():
    evaluator = llava_eval('m4c_evaluator').TextVQAAccuracyEvaluator()
    differ = []
    for output, answers in cases()['vqa']:
        theirs = evaluator.eval_pred_list([{'pred_answer': output, 'gt_answers': answers}])
        ours = official.short_answer(output, answers, 'textvqa')['score']
        if abs(ours - theirs) > 1e-12:
            differ.append((output, answers, ours, theirs))
    assert len(cases()['vqa']) >= 150 and not differ, differ


def test_pope_reads_and_scores_as_eval_pope(tmp_path):
    pope = cases()['pope']
    labels = tmp_path / 'labels.jsonl'
    labels.write_text(''.join(json.dumps({'label': truth.lower()}) + '\n' for truth, _ in pope))
    answers = [{'text': output} for _, output in pope]
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        llava_eval('eval_pope').eval_pope(answers, str(labels))  # rewrites each answer's text to its reading
    readings = [official.yes_no(output, 'pope') for _, output in pope]
    differ = [(o, ours, a['text']) for (_, o), (ours, _), a in zip(pope, readings, answers) if ours != a['text']]
    assert len(pope) >= 150 and not differ, differ
    assert {rule for _, rule in readings} == {'yes_no', 'default_yes'}
    theirs = {line.split(':')[0]: float(line.split(':')[1]) for line in printed.getvalue().splitlines()
              if ':' in line}
    ours = binary_metrics([{'truth': truth.lower(), 'parsed': parsed} for (truth, _), (parsed, _) in zip(pope, readings)])
    for name, their_name in (('accuracy', 'Accuracy'), ('precision', 'Precision'), ('recall', 'Recall'),
                             ('f1', 'F1 score'), ('yes_ratio', 'Yes ratio')):
        assert ours[name] == pytest.approx(theirs[their_name], abs=1e-12), (name, ours, theirs)


@pytest.mark.parametrize('output, parsed, score', [
    ('Yes.', 'yes', 1.0), ('yes...', 'yes', 1.0), ('Dog', 'dog', 0.0), ('Left.', 'left', 0.0), ('2', '2', 0.0),
    ('a dog.', 'a dog', 0.0), ('Yes!', 'yes!', 0.0), ('.yes', '.yes', 0.0), ('YES. ', 'yes', 1.0)])
def test_gqa_reads_as_llava_converts_it(output, parsed, score):
    read = official.short_answer(output, ['yes'], 'gqa')
    assert (read['parsed'], read['score'], read['rule']) == (parsed, score, 'exact_match')
