"""`vlmtune eval` scoring: multiple choice right by letter or by the option's text (either side),
VQA-style normalised exact match for open answers, per-question JSONL and the summary counts."""
import json
from types import SimpleNamespace

from vlmtune.evaluate import evaluate, score

MC = "<image>\nWhich dish?\n(A) noodles\n(B) fried rice\n(C) fish\n(D) greens\nAnswer with the option's letter directly."
MC_ZH = "<image>\n图中的菜是哪一道？\n（A) 面条\n（B) 饺子\n（C) 鱼\n（D) 豆腐\n请直接回答选项字母。"


def test_multiple_choice_letter_or_text_on_either_side():
    assert score(MC, 'B', 'B')['correct']
    assert score(MC, '(B) fried rice', 'B')['correct']
    assert score(MC, 'Fried rice.', 'B')['correct']            # option text, case and punctuation aside
    assert score(MC, 'fried rice', 'fried rice')['correct']    # reference given as the option's text
    assert score(MC, 'B', 'fried rice')['correct']
    assert not score(MC, 'C', 'fried rice')['correct']
    assert not score(MC, 'rice', 'B')['correct']               # not an option: no letter
    assert score(MC, 'rice', 'B')['predicted_letter'] is None
    assert not score(MC, 'something else', 'something else')['correct']  # a reference outside the options
    assert score(MC_ZH, '饺子', 'B')['correct'] and score(MC_ZH, '（B)', 'B')['correct']


def test_open_answers_normalised_exact_match():
    assert score('What is it?', 'The Noodles!', 'noodles')['correct']
    assert not score('What is it?', 'noodles with fish', 'noodles')['correct']
    assert score('What is it?', 'x', 'x')['kind'] == 'open'


class ScriptedPipe:
    """Answers from a table keyed by the question: isolates the scoring from the model."""
    def __init__(self, answers):
        self.answers, self.prompts = answers, []

    def chat(self, prompt, gen_config=None):
        self.prompts.append(prompt)
        return SimpleNamespace(response=SimpleNamespace(text=self.answers[prompt[0]]))


def test_evaluate_writes_per_question_rows_and_summary(tmp_path):
    rows = [{'id': 'a', 'image': 'a.png', 'conversations': [{'from': 'human', 'value': MC}, {'from': 'gpt', 'value': 'B'}]},
            {'id': 'b', 'image': 'b.png', 'conversations': [{'from': 'human', 'value': '<image>\nWhat?'},
                                                            {'from': 'gpt', 'value': 'fish'}]},
            {'id': 'c', 'image': 'c.png', 'conversations': [{'from': 'human', 'value': MC_ZH},
                                                            {'from': 'gpt', 'value': 'A'}]}]
    data = tmp_path / 'data.jsonl'
    data.write_text(''.join(json.dumps(r, ensure_ascii=False) + '\n' for r in rows), encoding='utf-8')
    pipe = ScriptedPipe({MC: 'fried rice', '<image>\nWhat?': 'a fish', MC_ZH: 'D'})
    summary = evaluate(None, data, tmp_path / 'imgs', tmp_path / 'out' / 'pred.jsonl', pipe=pipe, progress=False)
    assert summary['n'] == 3 and summary['n_multiple_choice'] == 2 and summary['n_open'] == 1
    assert summary['multiple_choice_accuracy'] == 0.5 and summary['open_accuracy'] == 1.0
    assert abs(summary['accuracy'] - 2 / 3) < 1e-9
    out = [json.loads(line) for line in (tmp_path / 'out' / 'pred.jsonl').read_text(encoding='utf-8').splitlines()]
    assert [(r['id'], r['correct']) for r in out] == [('a', True), ('b', True), ('c', False)]
    assert out[2]['predicted_letter'] == 'D' and out[0]['prediction'] == 'fried rice'
    assert pipe.prompts[0][1] == str(tmp_path / 'imgs' / 'a.png')
