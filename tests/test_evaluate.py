"""`vlmtune eval MODEL DATA.jsonl` = `--bench conversations`: multiple choice right by letter or by the option's
text (either side, full-width parentheses too), read by the package's one multiple-choice reader; VQA-style
normalised exact match for open answers; per-question rows and the summary counts."""
import json

from vlmtune.bench.readers import official
from vlmtune.bench.run import run_benchmark, write_results
from vlmtune.bench.tasks.conversations import options_of, score_answer

MC = "<image>\nWhich dish?\n(A) noodles\n(B) fried rice\n(C) fish\n(D) greens\nAnswer with the option's letter directly."
MC_ZH = "<image>\n图中的菜是哪一道？\n（A) 面条\n（B) 饺子\n（C) 鱼\n（D) 豆腐\n请直接回答选项字母。"


def test_multiple_choice_letter_or_text_on_either_side():
    assert score_answer(MC, 'B', 'B')['correct']
    assert score_answer(MC, '(B) fried rice', 'B')['correct']
    assert score_answer(MC, 'Fried rice.', 'B')['correct']            # option text, case and punctuation aside
    assert score_answer(MC, 'fried rice', 'fried rice')['correct']    # reference given as the option's text
    assert score_answer(MC, 'B', 'fried rice')['correct']
    assert not score_answer(MC, 'C', 'fried rice')['correct']
    assert not score_answer(MC, 'rice', 'B')['correct']               # not an option: no letter
    assert score_answer(MC, 'rice', 'B')['predicted_letter'] is None
    assert not score_answer(MC, 'something else', 'something else')['correct']  # a reference outside the options
    assert score_answer(MC_ZH, '饺子', 'B')['correct'] and score_answer(MC_ZH, '（B)', 'B')['correct']


def test_one_reader_for_the_package():
    """The conversations benchmark reads multiple choice exactly as the benchmarks' reader does."""
    options = options_of(MC)
    for output in ('B', '(B) fried rice', 'Fried rice.', 'The answer is C', 'rice', 'A cat is here', '（D)'):
        assert score_answer(MC, output, 'A')['predicted_letter'] == official.choice(output, options)[0], output


def test_open_answers_normalised_exact_match():
    assert score_answer('What is it?', 'The Noodles!', 'noodles')['correct']
    assert not score_answer('What is it?', 'noodles with fish', 'noodles')['correct']
    assert score_answer('What is it?', 'x', 'x')['kind'] == 'open'


class ScriptedPipe:
    """Answers from a table keyed by the question: isolates the scoring from the model."""
    def __init__(self, answers):
        self.answers, self.prompts = answers, []

    def batch_answers(self, prompts, gen_config=None):
        self.prompts += prompts
        return [self.answers[p[0] if isinstance(p, tuple) else p] for p in prompts]


def test_conversations_benchmark_writes_per_question_rows_and_summary(tmp_path):
    rows = [{'id': 'a', 'image': 'a.png', 'conversations': [{'from': 'human', 'value': MC}, {'from': 'gpt', 'value': 'B'}]},
            {'id': 'b', 'image': 'b.png', 'conversations': [{'from': 'human', 'value': '<image>\nWhat?'},
                                                            {'from': 'gpt', 'value': 'fish'}]},
            {'id': 'c', 'image': 'c.png', 'conversations': [{'from': 'human', 'value': MC_ZH},
                                                            {'from': 'gpt', 'value': 'A'}]}]
    data = tmp_path / 'data.jsonl'
    data.write_text(''.join(json.dumps(r, ensure_ascii=False) + '\n' for r in rows), encoding='utf-8')
    images = tmp_path / 'imgs'
    images.mkdir()
    from PIL import Image
    for name in 'abc':
        Image.new('RGB', (8, 8)).save(images / f'{name}.png')
    pipe = ScriptedPipe({MC: 'fried rice', '<image>\nWhat?': 'a fish', MC_ZH: 'D'})
    result, per_question = run_benchmark('conversations', data, pipe, images, batch_size=2, progress=False)
    metrics = result['metrics']
    assert result['questions_asked'] == 3 and metrics['n_multiple_choice'] == 2 and metrics['n_open'] == 1
    assert metrics['multiple_choice_accuracy'] == 0.5 and metrics['open_accuracy'] == 1.0
    assert abs(metrics['accuracy'] - 2 / 3) < 1e-9
    write_results(result, per_question, tmp_path / 'out')
    out = [json.loads(line) for line in (tmp_path / 'out' / 'predictions.jsonl').read_text(encoding='utf-8').splitlines()]
    assert [(r['id'], r['correct']) for r in out] == [('a', True), ('b', True), ('c', False)]
    assert out[2]['predicted_letter'] == 'D' and out[0]['prediction'] == 'fried rice'
    assert out[0]['meta']['reference'] == 'B' and out[1]['meta']['question'] == '<image>\nWhat?'
