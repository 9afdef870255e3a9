"""`vlmtune eval MODEL --bench NAME FILE` on a tiny model for every benchmark layout (samples written in
the real column layouts), batched generation against one-by-one chat, `compare` and its chart, the
LMDeploy batch path, and the eval hook inside a real xtuner run."""
import json
import sys
from types import SimpleNamespace

import pytest
from PIL import Image

from helpers.probes import REPO
from helpers.training import run
from vlmtune.bench.report import compare
from vlmtune.bench.run import benchmark, run_benchmark
from vlmtune.bench.samples import SAMPLES, swatch, write_sample
from vlmtune.data.grounding import box_text, to_1000
from vlmtune.cli import main
from vlmtune.serve import GenerationConfig, pipeline
from vlmtune.serve.pipeline import LMDeployPipeline

# Questions asked per sample (n=4): MMBench asks each of its 4 questions once per option (4 x 4),
# MME two per image, ScienceQA and SEED leave out their text-only / video entries.
ASKED = {'mmbench': 16, 'mme': 8, 'pope': 4, 'scienceqa': 4, 'vqav2': 4, 'textvqa': 4, 'gqa': 4, 'seed': 4,
         'conversations': 4, 'refcoco': 8}


@pytest.fixture(scope='module')
def model(tiny_folder):
    return tiny_folder('qwen2', '300m')


@pytest.fixture(scope='module')
def samples(tmp_path_factory):
    root = tmp_path_factory.mktemp('bench-samples')
    return {name: write_sample(name, root / name) for name in SAMPLES}


def truth_text(question) -> str:
    if 'width' in question.meta:  # a grounding truth: its box as the model writes it (0..1000 of the image)
        return box_text('it', [to_1000(question.truth, question.meta['width'], question.meta['height'])])
    return question.truth if isinstance(question.truth, str) else question.truth[0]


class Truthful:
    """Answers every question right (its truth, as text the scorer reads), in the order they are asked:
    the 'tuned' run for compare."""
    backend = 'scripted'

    def __init__(self, questions):
        truths = [truth_text(q) for q in questions]
        self.answers = [t.capitalize() if t in ('yes', 'no') else t for t in truths]

    def batch_answers(self, prompts, gen_config):
        answers, self.answers = self.answers[:len(prompts)], self.answers[len(prompts):]
        return answers


@pytest.mark.parametrize('name', sorted(SAMPLES))
def test_every_format_runs_end_to_end_and_writes_the_table(name, model, samples, tmp_path, capsys):
    out = tmp_path / 'out'
    assert main(['eval', str(model), '--bench', name, str(samples[name]), '--out', str(out),
                 '--max-new-tokens', '4', '--batch-size', '3']) == 0
    result = json.loads((out / 'results.json').read_text())
    rows = [json.loads(line) for line in (out / 'predictions.jsonl').read_text().splitlines()]
    assert result['benchmark'] == name and result['questions_asked'] == len(rows) == ASKED[name]
    assert result['generation'] == {'greedy': True, 'max_new_tokens': 4, 'batch_size': 3, 'backend': 'torch'}
    # The summary is the benchmark's own, re-derived from the per-question rows as written.
    task = benchmark(name)
    assert task.summarise(rows)['metrics'] == result['metrics']
    assert result['unanswered'] == sum(r['parsed'] is None for r in rows)
    assert all(r['prompt'].endswith(task.instruction) for r in rows)
    table = (out / 'results.md').read_text()
    assert f"**{result['headline']}**" in table and 'unanswered' in table
    assert table in capsys.readouterr().out


def test_truthful_answers_score_full_marks_on_every_format(samples):
    for name, path in samples.items():
        task = benchmark(name)
        result, _ = run_benchmark(name, path, Truthful(task.read(path, None)), progress=False)
        if name == 'mme':   # 2 perception subtasks + 1 cognition subtask, each 100 acc + 100 acc+
            assert (result['metrics']['perception'], result['metrics']['cognition']) == (400.0, 200.0)
        else:
            assert result['value'] == pytest.approx(1.0), name
        assert result['unanswered'] == 0


def test_batched_answers_equal_one_by_one_chat(tiny_folder):
    images = [swatch(c) for c in ('red', 'blue', 'green')] + [Image.new('RGB', (160, 60), (9, 90, 200))]
    questions = ['What colour is it?', 'Describe the image in detail please.', 'Is it red?', 'Colour?']
    gen = GenerationConfig(max_new_tokens=6)
    for folder in (tiny_folder('qwen2', '300m'), tiny_folder('internlm2', '300m')):
        pipe = pipeline(folder, backend='torch')
        side = pipe.tokenizer.padding_side
        singles = [pipe.chat((q, img), gen_config=gen).response.text for q, img in zip(questions, images)]
        assert pipe.batch_answers(list(zip(questions, images)), gen) == singles
        assert pipe.batch_answers(questions[:2], gen) == [pipe.chat(q, gen_config=gen).response.text
                                                          for q in questions[:2]]
        assert pipe.tokenizer.padding_side == side   # batch_chat pads left for itself only


def test_batched_answers_on_a_spatial_merge_layout(llava_written):
    folder = llava_written['tiled']['ours']   # LLaVA-NeXT: AnyRes tiles, spatial unpad merge
    pipe = pipeline(folder, backend='torch')
    prompts = [('What is it?', Image.new('RGB', (90, 40), (200, 30, 30))), ('Colour?', swatch('blue'))]
    gen = GenerationConfig(max_new_tokens=5)
    assert pipe.batch_answers(prompts, gen) == [pipe.chat(p, gen_config=gen).response.text for p in prompts]


def test_lmdeploy_batch_answers_hands_lmdeploy_one_list():
    calls = []

    def fake_pipe(queries, gen_config):
        calls.append((queries, gen_config))
        return [SimpleNamespace(text=f'answer {i}') for i in range(len(queries))]
    pipe = LMDeployPipeline.__new__(LMDeployPipeline)
    pipe._pipe, pipe._lmdeploy, pipe.exif_rule = fake_pipe, __import__('lmdeploy'), 'ignore'
    image = swatch('red')
    assert pipe.batch_answers([('Colour?', image), 'Hello'], GenerationConfig(max_new_tokens=3)) == \
        ['answer 0', 'answer 1']
    (queries, gen), = calls
    assert queries[1] == 'Hello' and queries[0][1] == 'Colour?' and queries[0][0].size == image.size
    assert gen.max_new_tokens == 3 and gen.top_k == 1  # greedy as LMDeploy spells it


def test_compare_draws_base_against_tuned(model, samples, tmp_path):
    base = tmp_path / 'base'
    tuned = tmp_path / 'tuned'
    for name in ('pope', 'mmbench'):
        assert main(['eval', str(model), '--bench', name, str(samples[name]), '--out', str(base / name),
                     '--max-new-tokens', '3']) == 0
        task = benchmark(name)
        from vlmtune.bench.run import write_results
        write_results(*run_benchmark(name, samples[name], Truthful(task.read(samples[name], None)), progress=False),
                      tuned / name)
    out = tmp_path / 'cmp'
    assert main(['eval', 'compare', str(base / 'pope' / 'results.json'), str(tuned / 'pope' / 'results.json'),
                 str(base / 'mmbench'), str(tuned / 'mmbench'), '--labels', 'base', 'tuned', 'base', 'tuned',
                 '--out', str(out)]) == 0
    table = (out / 'compare.md').read_text()
    header, _, *rows = table.splitlines()
    assert header == '| benchmark | metric | base | tuned | base | tuned | change |'
    f1 = next(r for r in rows if r.startswith('| pope | **f1** |')).split(' | ')
    base_f1 = json.loads((base / 'pope' / 'results.json').read_text())['metrics']['f1']
    assert f1[2] == f'{100 * base_f1:.1f}%' and f1[3] == '100.0%' and f1[4] == '-' and f1[5] == '-'
    assert f1[6].rstrip(' |') == f'+{100 * (1 - base_f1):.1f}%'
    with Image.open(out / 'compare.png') as chart:
        assert chart.size[0] > 600 and len(set(chart.convert('L').getdata())) > 10   # two panels, drawn
    with pytest.raises(ValueError, match='2 labels for 3 results files'):
        compare([base / 'pope', tuned / 'pope', tuned / 'mmbench'], out, ['a', 'b'])


def test_bad_benchmark_inputs_are_one_line_errors(model, samples, tmp_path, capsys):
    assert main(['eval', str(model), '--bench', 'mmbench', str(tmp_path / 'none.tsv')]) == 2
    assert 'none.tsv: no such file' in capsys.readouterr().err
    assert main(['eval', str(model), '--bench', 'vqa', str(samples['vqav2'])]) == 2
    assert "unknown benchmark 'vqa'" in capsys.readouterr().err
    (samples['pope'].parent / 'COCO_val2014_000000000002.jpg').rename(tmp_path / 'moved.jpg')
    try:
        assert main(['eval', str(model), '--bench', 'pope', str(samples['pope']), '--out', str(tmp_path / 'p')]) == 0
        assert 'question(s) not asked, their image unreadable' in capsys.readouterr().err   # the rest is scored
        assert main(['eval', str(model), '--bench', 'pope', str(samples['pope']), '--strict']) == 2
        err = capsys.readouterr().err
        assert 'coco_pope_random.json: ' in err and 'COCO_val2014_000000000002.jpg: cannot read image' in err
        assert main(['eval', str(model), '--bench', 'pope', str(samples['pope']), '--images', str(tmp_path)]) == 2
        err = capsys.readouterr().err
        assert 'none of the' in err and 'pass the image folder with --images DIR' in err
    finally:
        (tmp_path / 'moved.jpg').rename(samples['pope'].parent / 'COCO_val2014_000000000002.jpg')
    assert main(['eval', 'sample', 'pope', str(samples['pope'].parent)]) == 2   # never writes into a full folder
    assert 'is not empty' in capsys.readouterr().err


@pytest.mark.trainings
def test_eval_hook_scores_the_live_model_before_and_after_training(ws, tmp_path):
    from helpers.training_data import make_colour_dataset
    from vlmtune.engine.recipes import copy_recipe
    held_out, images = make_colour_dataset(tmp_path / 'val', n=6, seed=7, name='val.jsonl')
    recipe = copy_recipe('lora_cpu', tmp_path / 'hooked.py')
    recipe.write_text(recipe.read_text() + (
        'from vlmtune.engine import BenchmarkEvalHook\n'
        f'custom_hooks += [dict(type=BenchmarkEvalHook, bench="conversations", data_path="{held_out}", '
        f'image_root="{images}", interval=3, limit=4, max_new_tokens=3)]\n'
        'train_cfg.update(max_iters=6)\n'))
    work_dir = tmp_path / 'work'
    run([sys.executable, '-m', 'vlmtune.cli', 'train', str(recipe), '--work-dir', str(work_dir), '--checkpoint',
         str(ws['folder']), '--data', str(ws['data']), '--images', str(ws['images'])], REPO)
    root = work_dir / 'bench' / 'conversations'
    runs = {step: [json.loads(line)['prediction'] for line in (root / f'iter_{step}' / 'predictions.jsonl').open()]
            for step in (0, 3, 6)}
    assert all(len(p) == 4 for p in runs.values())
    assert runs[0] != runs[6]                       # it scored the model as trained, not a stale copy
    assert '| conversations | **accuracy** | ' in (root / 'compare.md').read_text()
    assert (root / 'compare.png').stat().st_size > 5000


def test_conversation_jsonl_eval_still_runs_from_the_cli(model, samples, tmp_path, capsys):
    out = tmp_path / 'rows.jsonl'
    assert main(['eval', str(model), str(samples['conversations']), '--out', str(out)]) == 0
    assert 'accuracy' in capsys.readouterr().out and len(out.read_text().splitlines()) == 4
    assert json.loads(out.with_suffix('.results.json').read_text())['questions_asked'] == 4


def test_an_unreadable_image_counts_wrong_and_strict_makes_it_a_failure(model, samples, tmp_path, capsys):
    import shutil
    source = samples['conversations']
    for item in source.parent.iterdir():
        (shutil.copytree if item.is_dir() else shutil.copy)(item, tmp_path / item.name)
    data = tmp_path / source.name
    rows = [json.loads(line) for line in data.read_text().splitlines()]
    rows[1]['image'] = 'gone.png'
    data.write_text(''.join(json.dumps(r) + '\n' for r in rows))
    out = tmp_path / 'rows.jsonl'
    assert main(['eval', str(model), str(data), '--out', str(out)]) == 0
    assert 'warning: 1 question(s) not asked' in capsys.readouterr().err
    scored = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(scored) == 4 and 'gone.png' in scored[1]['image_error'] and scored[1]['correct'] is False
    assert json.loads(out.with_suffix('.results.json').read_text())['unreadable_images'] == 1
    assert main(['eval', str(model), str(data), '--out', str(tmp_path / 'strict.jsonl'), '--strict']) == 2
    assert '1 question(s) have an unreadable image' in capsys.readouterr().err


def test_choice_rows_export_to_an_mmbench_tsv(tmp_path):
    from vlmtune.bench.export import conversations_to_mmbench
    swatch('red').save(tmp_path / 'r.png')
    question = '<image>\nWhich colour?\nLook closely.\n(A) red\n(B) blue\n(C) green\nAnswer with the option\'s text directly.'
    rows = [{'id': 'a', 'image': 'r.png', 'conversations': [{'from': 'human', 'value': question},
                                                            {'from': 'gpt', 'value': 'red'}]},
            {'id': 'b', 'image': 'r.png', 'conversations': [{'from': 'human', 'value': '<image>\nColour?'},
                                                            {'from': 'gpt', 'value': 'red'}]}]
    data = tmp_path / 'choice.jsonl'
    data.write_text(''.join(json.dumps(r) + '\n' for r in rows))
    assert conversations_to_mmbench(data, tmp_path / 'out.tsv') == {'written': 1, 'skipped': 1}
    questions = benchmark('mmbench').read(tmp_path / 'out.tsv', tmp_path)
    assert len(questions) == 3 and questions[0].truth == 'A' and questions[1].truth == 'C'
    assert questions[0].text == 'Which colour?\nLook closely.\nA. red\nB. blue\nC. green'   # the newline survives
