"""Benchmark scoring rules, each pinned by numbers worked by hand from the benchmark's definition."""
import base64
import io

import pytest
from PIL import Image

from vlmtune.bench.readers import official
from vlmtune.bench.answers import yes_no_mme, yes_no_pope
from vlmtune.bench.run import benchmark, first_units
from vlmtune.bench.tasks._base import Question
from vlmtune.bench.vqa_normalise import textvqa_normalise, vqa_accuracy, vqa_normalise

OPTIONS = {'A': 'red', 'B': 'green', 'C': 'blue', 'D': 'light blue'}


def rows_for(task, questions, outputs):
    return [{'id': q.id, 'truth': q.truth, 'meta': q.meta, **task.score(q, out)} for q, out in zip(questions, outputs)]


# --- VQA accuracy and normalisation ---------------------------------------------------------------
def test_vqa_two_of_ten_matching_answers():
    answers = ['2', '2'] + ['3'] * 8
    accuracy, matches = vqa_accuracy('2', answers)
    assert matches == 2
    # The short form quoted for VQA, min(#match / 3, 1), gives 2/3 ...
    assert round(min(matches / 3, 1), 3) == 0.667
    # ... and the official evaluator averages it over the ten leave-one-out subsets: the two matching
    # answers left out leave 1 match (1/3 each), the eight others leave 2 (2/3 each): (2/3 + 16/3) / 10.
    assert accuracy == pytest.approx((2 * (1 / 3) + 8 * (2 / 3)) / 10) == pytest.approx(0.6)


@pytest.mark.parametrize('k, expected', [(0, 0.0), (1, 0.3), (3, 0.9), (4, 1.0), (10, 1.0)])
def test_vqa_accuracy_by_number_of_matches(k, expected):
    assert vqa_accuracy('cat', ['cat'] * k + ['dog'] * (10 - k))[0] == pytest.approx(expected)


def test_vqa_normalisation():
    assert vqa_normalise('Two.') == vqa_normalise('2') == '2'
    assert vqa_accuracy('Two.', ['2'] * 10)[0] == 1.0
    assert vqa_normalise('The Dog!') == 'dog'                      # articles and marks go, case too
    assert vqa_normalise('dont') == "don't"                        # the official contraction table
    assert vqa_normalise('lets') == 'lets'                         # ... only its entries
    assert vqa_normalise('black/white') == 'black white'           # a mark inside a word: a space
    assert vqa_normalise('2,000') == '2000' and vqa_normalise('2.5') == '2.5'
    assert textvqa_normalise("Coca-Cola's") == "coca cola 's"      # m4c: lower case, "'s" split first


# --- answer extraction ----------------------------------------------------------------------------
@pytest.mark.parametrize('output, letter', [
    ('B', 'B'), ('B.', 'B'), ('(B)', 'B'), ('The answer is C.', 'C'), ('C) blue', 'C'),
    ('green', 'B'),                      # no letter: the option's text
    ('It is red.', 'A'),
    ('A red swatch with a blue border', None),   # two options' texts, and "A" reads as the article
    ('light blue', None),                # "blue" and "light blue" both occur: ambiguous
    ('purple', None), ('', None), ('B or C', None)])
def test_choice_letter_first_then_option_text(output, letter):
    assert official.choice(output, OPTIONS)[0] == letter


def test_yes_no_parsers():
    assert [yes_no_mme(o) for o in ['Yes', 'no.', 'Y', 'Yes, it is', 'maybe', 'The answer is yes']] == \
        ['yes', 'no', 'yes', 'yes', None, None]
    assert [yes_no_pope(o) for o in ['Yes', 'No, there is not.', 'There is not a dog.', 'yes.', 'I see a cat.']] == \
        ['yes', 'no', 'no', 'yes', 'yes']  # LLaVA's eval_pope: no 'no' -> yes


# --- POPE -------------------------------------------------------------------------------------------
@pytest.mark.parametrize('reader, tp, fp, accuracy', [
    ('vlmevalkit', 1, 1, 3 / 6),   # parsed: yes no None yes no no (the unanswered row is wrong, and no 'yes')
    ('official', 2, 1, 4 / 6)])    # parsed: yes no yes yes no no (LLaVA's eval_pope reads 'I cannot tell' as yes)
def test_pope_metrics_by_hand(reader, tp, fp, accuracy):
    task = benchmark('pope', reader)
    truths = ['yes', 'yes', 'yes', 'no', 'no', 'no']
    outputs = ['Yes', 'No', 'I cannot tell', 'yes', 'no', 'No.']
    questions = [Question(str(i), 'q', None, t, {'split': 'random'}) for i, t in enumerate(truths)]
    metrics = task.summarise(rows_for(task, questions, outputs))['metrics']
    precision, recall = tp / (tp + fp), tp / 3   # 3 true yes
    assert metrics['precision'] == pytest.approx(precision) and metrics['recall'] == pytest.approx(recall)
    assert metrics['f1'] == pytest.approx(2 * precision * recall / (precision + recall))
    assert metrics['accuracy'] == pytest.approx(accuracy) and metrics['yes_ratio'] == pytest.approx((tp + fp) / 6)


# --- MME --------------------------------------------------------------------------------------------
def mme_question(task, image, answer):
    return Question(f'{task}/{image}/{answer}', 'q', None, answer, {'task': task, 'image': image})


def test_mme_acc_plus_needs_both_questions_of_an_image():
    task = benchmark('mme')
    questions = [mme_question('color', 'a.jpg', 'yes'), mme_question('color', 'a.jpg', 'no'),
                 mme_question('color', 'b.jpg', 'yes'), mme_question('color', 'b.jpg', 'no'),
                 mme_question('OCR', 'c.jpg', 'yes'), mme_question('OCR', 'c.jpg', 'no'),
                 mme_question('code_reasoning', 'd.jpg', 'yes'), mme_question('code_reasoning', 'd.jpg', 'no')]
    outputs = ['Yes', 'No', 'Yes', 'Yes', 'no', 'no', 'Yes', 'No']
    summary = task.summarise(rows_for(task, questions, outputs))
    color = summary['breakdown']['color']
    assert (color['acc'], color['acc_plus'], color['score']) == (75.0, 50.0, 125.0)  # 3 of 4; image a only
    assert summary['breakdown']['OCR']['score'] == 50.0 + 0.0                       # 1 of 2 right, no pair
    assert summary['metrics']['perception'] == 175.0                                # color + OCR
    assert summary['metrics']['cognition'] == 200.0                                 # both right: 100 + 100


# --- MMBench circular -------------------------------------------------------------------------------
def tsv(path, rows, header=('index', 'question', 'hint', 'A', 'B', 'C', 'D', 'answer', 'category', 'image')):
    buffer = io.BytesIO()
    Image.new('RGB', (8, 8), (200, 0, 0)).save(buffer, format='PNG')
    cell = base64.b64encode(buffer.getvalue()).decode()
    path.write_text('\n'.join(['\t'.join(header)] + ['\t'.join(map(str, r + (cell,))) for r in rows]) + '\n',
                    encoding='utf-8')
    return path


def test_mmbench_circular_needs_every_rotation_right(tmp_path):
    task = benchmark('mmbench')
    path = tsv(tmp_path / 'mmb.tsv', [(0, 'Colour?', 'nan', 'red', 'green', 'blue', 'white', 'A', 'attr'),
                                      (1, 'Shape?', 'A hint.', 'round', 'square', 'nan', 'nan', 'B', 'shape')])
    questions = task.read(path, None)
    # Rotated as LLaVA's --all-rounds: question 0 four times, question 1 (two options) twice.
    assert [(q.id, q.truth) for q in questions] == [('0', 'A'), ('1000000', 'D'), ('2000000', 'C'),
                                                    ('3000000', 'B'), ('1', 'B'), ('1000001', 'A')]
    assert questions[1].text == 'Colour?\nA. green\nB. blue\nC. white\nD. red'
    assert questions[4].text == 'A hint.\nShape?\nA. round\nB. square'
    outputs = ['A', 'D', 'C', 'A',      # question 0: right 3 of 4 -> not counted
               'square', 'A']           # question 1: right twice (text, then letter) -> counted
    summary = task.summarise(rows_for(task, questions, outputs))
    assert summary['metrics']['circular_accuracy'] == 0.5
    assert summary['metrics']['vanilla_accuracy'] == 1.0
    assert summary['breakdown'] == {'attr': {'accuracy': 0.0, 'n': 1}, 'shape': {'accuracy': 1.0, 'n': 1}}
    assert len(first_units(questions, 1)) == 4     # --limit keeps a question's rotations together


def test_mmbench_rotations_given_in_the_file_are_used_as_they_are(tmp_path):
    task = benchmark('mmbench')
    path = tsv(tmp_path / 'mmb.tsv', [(5, 'Colour?', 'nan', 'red', 'green', 'nan', 'nan', 'A', 'attr'),
                                      (1000005, 'Colour?', 'nan', 'green', 'red', 'nan', 'nan', 'B', 'attr')])
    questions = task.read(path, None)
    assert [(q.id, q.meta['group'], q.meta['rotation'], q.truth) for q in questions] == \
        [('5', 5, 0, 'A'), ('1000005', 5, 1, 'B')]
    assert task.summarise(rows_for(task, questions, ['A', 'B']))['metrics']['circular_accuracy'] == 1.0


def test_mmbench_bad_rows_name_the_line(tmp_path):
    task = benchmark('mmbench')
    path = tsv(tmp_path / 'bad.tsv', [(0, 'Colour?', 'nan', 'red', 'green', 'nan', 'nan', 'C', 'attr')])
    with pytest.raises(ValueError, match=r'bad.tsv:2: answer .C. is not one of the options'):
        task.read(path, None)


# --- ScienceQA / SEED / GQA prompts and scores ---------------------------------------------------
def test_scienceqa_prompt_has_context_then_lettered_choices(tmp_path):
    from vlmtune.bench.samples import write_sample
    task = benchmark('scienceqa')
    questions = task.read(write_sample('scienceqa', tmp_path / 's'), None)
    with_hint = next(q for q in questions if q.text.startswith('Context: '))
    assert with_hint.text.split('\n')[1] == 'Which colour is shown?'
    assert task.prompt(with_hint).endswith("\nAnswer with the option's letter from the given choices directly.")
    assert task.notes == ['1 test problems have no image (not in ScienceQA-IMG)']
    assert task.prompt(with_hint, 'Pick one.').endswith('\nPick one.')   # --prompt overrides


def test_gqa_exact_match_after_lower_case_and_trailing_period():
    task = benchmark('gqa')
    question = Question('1', 'q', None, 'yes')
    assert [task.score(question, o)['score'] for o in ['Yes.', 'yes', 'yes, it is', 'no']] == [1, 1, 0, 0]
