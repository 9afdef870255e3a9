"""The vlmevalkit reader against VLMEvalKit itself (PyPI's nvidia-vlmeval 26.3 in a side environment, only its
scoring functions called): on adversarial outputs written here (markdown, brackets, trailing marks, letter then text,
text then letter, refusals, case, leading dots and newlines, a stray article "A" in a long sentence) every output is
read to the same answer and score, for MMBench (can_infer), MME and POPE (YOrN_Extraction), VQAv2 / TextVQA
(VQA accuracy after process_answer, hit_calculate per dataset) and GQA (exact match); the POPE and MME summaries equal its ratings; the judge prompts equal its own."""
import json
import os
import subprocess
import sys

import pytest

from helpers.adversarial_outputs import cases
from helpers.probes import REPO
from vlmtune.bench.readers import vlmevalkit as reader
from vlmtune.bench.tasks.mme import COGNITION, PERCEPTION
from vlmtune.bench.tasks.pope import binary_metrics
from vlmtune.side_envs import side_env

pytestmark = pytest.mark.side_envs
PROBE = REPO / 'tests' / 'probes' / 'vlmeval_probe.py'


@pytest.fixture(scope='module')
def theirs(tmp_path_factory):
    root = tmp_path_factory.mktemp('vlmeval')
    (root / 'cases.json').write_text(json.dumps(cases()))
    env = dict(os.environ, PYTHONPATH=str(side_env('vlmeval-26.3')), MPLBACKEND='Agg')
    done = subprocess.run([sys.executable, str(PROBE), str(root / 'cases.json'), str(root / 'out.json')],
                          cwd=PROBE.parent, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads((root / 'out.json').read_text())


def test_multiple_choice_reads_as_can_infer(theirs):
    ours = [reader.choice(output, options)[0] for output, options in cases()['choice']]
    differ = [(c[0], o, t) for c, o, t in zip(cases()['choice'], ours, theirs['choice']) if o != t]
    assert len(ours) >= 150 and not differ, differ
    assert {'Z', None} <= set(ours) and len(set(ours)) >= 6  # refusals, unanswered and every letter occur


def test_yes_no_reads_as_yorn_extraction(theirs):
    outputs = cases()['yes_no']
    ours = [{'yes': 'Yes', 'no': 'No', None: 'Unknown'}[reader.yes_no(o)[0]] for o in outputs]
    differ = [(o, a, b) for o, a, b in zip(outputs, ours, theirs['yes_no']) if a != b]
    assert len(ours) >= 150 and not differ, differ
    assert set(ours) == {'Yes', 'No', 'Unknown'}


@pytest.mark.parametrize('key, source, benchmark', [('vqa', 'vqa', 'vqav2'), ('textvqa', 'vqa', 'textvqa'),
                                                    ('gqa', 'gqa', 'gqa')])
def test_vqa_scores_as_process_line(theirs, key, source, benchmark):
    ours = [reader.short_answer(output, answers, benchmark)['score'] for output, answers in cases()[source]]
    differ = [(c, a, b) for c, a, b in zip(cases()[source], ours, theirs[key]) if abs(a - b) > 1e-12]
    assert len(ours) >= 150 and not differ, differ
    assert 0 < sum(ours) < len(ours)


def test_pope_summary_equals_pope_rating(theirs):
    rows = [{'truth': truth.lower(), 'parsed': reader.yes_no(output)[0]} for truth, output in cases()['pope']]
    ours, rating = binary_metrics(rows), theirs['pope_rating']
    overall = rating['split'].index('Overall')
    for name, column in (('f1', 'Overall'), ('accuracy', 'acc'), ('precision', 'precision'), ('recall', 'recall')):
        assert abs(100 * ours[name] - rating[column][overall]) < 1e-9, (name, ours, rating)


def test_mme_summary_equals_mme_rating(theirs):
    from vlmtune.bench.tasks.mme import MME
    rows = [{'score': float(reader.yes_no(output)[0] == truth.lower()), 'meta': {'task': task, 'image': image}}
            for task, image, truth, output in cases()['mme']]
    summary, rating = MME().summarise(rows), theirs['mme_rating']
    for name, theirs_name in (('perception', 'perception'), ('cognition', 'reasoning')):  # MME's "cognition"
        assert abs(summary['metrics'][name] - rating[theirs_name][0]) < 1e-9, (name, summary['metrics'], rating)
    for task in PERCEPTION + COGNITION:
        assert abs(summary['breakdown'][task]['score'] - rating[task][0]) < 1e-9, task


def test_mmbench_circular_summary_equals_report_acc(theirs):
    from vlmtune.bench.tasks._base import Question
    from vlmtune.bench.tasks.mmbench import MMBench
    task, rows = MMBench(reader='vlmevalkit'), []
    for row in cases()['mmbench']:
        options = {k: row[k] for k in 'ABCD'}
        meta = {'group': row['index'] % 1_000_000, 'rotation': row['index'] // 1_000_000, 'options': options,
                'category': row['category'], 'l2_category': row['l2-category']}
        rows.append({'meta': meta, **task.score(Question(str(row['index']), 'q', None, row['answer'], meta),
                                                row['prediction'])})
    summary, report = task.summarise(rows), {k: v[0] for k, v in theirs['mmbench_report'].items()}
    assert 0 < summary['metrics']['circular_accuracy'] < 1
    assert summary['metrics']['circular_accuracy'] == pytest.approx(report.pop('Overall'), abs=1e-12)
    report.pop('split')
    assert {k: v['accuracy'] for k, v in summary['breakdown'].items()} == pytest.approx(report, abs=1e-12)


@pytest.mark.parametrize('name', ['vqav2', 'textvqa'])
def test_vqa_overall_equals_vlmevalkits(theirs, name):
    from vlmtune.bench.run import benchmark
    from vlmtune.bench.tasks._base import Question
    task = benchmark(name, 'vlmevalkit')
    rows = [{'meta': {}, **task.score(Question('1', 'q', None, answers), output)} for output, answers in cases()['vqa']]
    assert 100 * task.summarise(rows)['metrics']['accuracy'] == pytest.approx(theirs['vqa_overall'], abs=1e-9)


def test_judge_prompts_are_vlmevalkits(theirs):
    from vlmtune.bench.judge import choice_prompt, yes_no_prompt
    assert [choice_prompt(*case) for case in cases()['choice_prompt']] == theirs['choice_prompt']
    assert [yes_no_prompt(*case) for case in cases()['yes_no_prompt']] == theirs['yes_no_prompt']
