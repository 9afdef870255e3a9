"""The vlmevalkit reader against VLMEvalKit itself (PyPI's nvidia-vlmeval 26.3 in a side environment, only its
scoring functions called): on adversarial outputs written here (markdown, brackets, trailing marks, letter then text,
text then letter, refusals, case, leading dots and newlines, a stray article "A" in a long sentence) every output is
read to the same answer and score, for MMBench (can_infer), MME and POPE (YOrN_Extraction), VQAv2 / TextVQA
(VQA accuracy after process_answer) and GQA (exact match); the POPE and MME summaries equal its ratings; the judge prompts equal its own."""
import itertools
import json
import os
import subprocess
import sys

import pytest

from helpers.probes import REPO
from vlmtune.bench.readers import vlmevalkit as reader
from vlmtune.bench.tasks.mme import COGNITION, PERCEPTION
from vlmtune.bench.tasks.pope import binary_metrics
from vlmtune.side_envs import side_env

pytestmark = pytest.mark.side_envs
PROBE = REPO / 'tests' / 'probes' / 'vlmeval_probe.py'

OPTIONS = [{'A': 'red', 'B': 'blue', 'C': 'green', 'D': 'a cat'}, {'A': 'Yes', 'B': 'No'},
           {'A': '1990', 'B': '2000', 'C': 'New York', 'D': 'York', 'E': 'none of these'}]
CHOICE_FORMS = ['{L}', '**{L}**', 'Answer: **{L}**', '[{L}]', '{L}!', '{L};', '({L})', '{L}.', '{L})', ':{L}',
                '{L}. {T}', '{L}.{T}', '{L}: {T}', 'The correct option is ({L}), i.e. {T}', 'The answer is {L}',
                '{T}', 'It is {T}.', '{T} ({L})', '\n{L}', '.{L}', '...{L}', ' {l}', '{l}.', 'Option {L}',
                '{L} or {M}', '{L}\n{M}', 'A {T} is what I see, so {L}', 'There is a {T} in the picture and it is A',
                'Cannot determine the answer', "I'm sorry, but without the image provided I cannot answer {L}",
                'Z', 'Z. none', '#{L}#', '{{{L}}}', '{L}*', '{T}!!', '{T}, not {U}', 'Neither', '{L},{M}', '\t{L}\t']
YES_NO = ['yes', 'no', 'Yes', 'No', 'YES', 'NO', 'yes!', 'No!', 'no.', 'Yes, there is.', 'No, there is not.',
          'Yes and no', 'not sure', 'There is no dog.', 'I think so.', 'y', 'n', '"yes"', '(no)', 'yes/no', 'Yes;',
          '**No**', 'Answer: yes', 'The answer is No.', 'nope', 'yes-no', 'Yes\n', '\nNo', 'no,yes', 'Yes. No.']
DECORATIONS = ['{}', '{} ', '.{}', '{}.', '**{}**']
VQA_OUTPUTS = ['2', 'two', 'Two.', 'The answer is 2', 'a dog', 'dogs', 'Dog', 'red, white', 'red,white', '1,000',
               '1000', '1,000.5', 'yes.', 'Yes', 'U.S.A.', '3.5', 'none', '0', 'dont', "don't", 'its', "it's",
               'black/white', 'black and white', 'left-hand', '10:30', '$5', 'a.b.c.d', 'well...', 'Youre right',
               '2' + '.' * 40, '1,,000']  # the rare ones: the 32-period strip, a double comma
VQA_ANSWERS = [['2'] * 10, ['2'] * 3 + ['two'] * 7, ['dog'] * 5 + ['dogs'] * 5, ['red white'] * 10,
               ['1000'] * 4 + ['1,000'] * 6, ["don't"] * 10, ['black and white'] * 2 + ['black white'] * 8,
               ['yes'] * 10, ['usa'] * 3 + ['u.s.a.'] * 7, ["you're right"] * 2 + ['0'] * 8]
GQA_ANSWERS = [['yes'], ['dog'], ['2'], ['left'], ['black and white']]


def choice_cases():
    cases = []
    for options in OPTIONS:
        letters = list(options)
        for form, letter in itertools.product(CHOICE_FORMS, letters):
            other = letters[(letters.index(letter) + 1) % len(letters)]
            cases.append([form.format(L=letter, l=letter.lower(), M=other, T=options[letter], U=options[other]),
                          options])
    return cases


def cases():
    yes_no = [form.format(base) for base, form in itertools.product(YES_NO, DECORATIONS)]
    mme = [[task, f'{task}/{image}.jpg', truth, yes_no[(i * 7 + image * 3 + k) % len(yes_no)]]
           for i, task in enumerate(PERCEPTION + COGNITION) for image in range(3)
           for k, truth in enumerate(('Yes', 'No'))]
    return {'choice': choice_cases(), 'yes_no': yes_no,
            'vqa': [[o, a] for o, a in itertools.product(VQA_OUTPUTS, VQA_ANSWERS)],
            'gqa': [[o, a] for o, a in itertools.product(VQA_OUTPUTS, GQA_ANSWERS)],
            'pope': [[('Yes', 'No')[i % 2], output] for i, output in enumerate(yes_no)], 'mme': mme,
            'choice_prompt': [['What is shown', OPTIONS[0], 'I like turtles'], ['图中是什么', OPTIONS[2], '不知道'],
                              ['Which year', OPTIONS[2], 'B?']],
            'yes_no_prompt': [['Is there a dog in the image', 'Maybe, hard to say.'], ['Is it red', '']]}


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


@pytest.mark.parametrize('key, score', [('vqa', reader.ten_answer_accuracy), ('gqa', reader.exact_match)])
def test_vqa_scores_as_process_line(theirs, key, score):
    ours = [score(output, answers) for output, answers in cases()[key]]
    differ = [(c, a, b) for c, a, b in zip(cases()[key], ours, theirs[key]) if abs(a - b) > 1e-12]
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


def test_judge_prompts_are_vlmevalkits(theirs):
    from vlmtune.bench.judge import choice_prompt, yes_no_prompt
    assert [choice_prompt(*case) for case in cases()['choice_prompt']] == theirs['choice_prompt']
    assert [yes_no_prompt(*case) for case in cases()['yes_no_prompt']] == theirs['yes_no_prompt']
