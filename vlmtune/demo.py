"""`vlmtune demo`: the whole journey on a tiny model on a CPU, and proof that it learned.

1. base: generate the general shape colour/position task -> csv converter -> data check -> pretrain a tiny
   random internvl folder with `vlmtune train` -> convert (cached in WORK/base; --rebuild-base).
2. domain: procedurally drawn dishes as FoodieQA records -> foodieqa converter (multiple choice and
   open; a quarter also as two-turn chats) beside the general task at repeat_time 0.3 in a meta file -> data check.
   Multiple choice is answered with the option's text (`--answer-with text`): the tiny model does
   not learn letter pointing in a few CPU minutes. Real recipes keep FoodieQA's letters.
3. `vlmtune train domain_lora_cpu --deepspeed zero2` -> `vlmtune convert` with self-check.
4. evaluate base vs tuned on held-out dishes (accuracy) and the general task (retention), the held-out
   dishes again as an MMBench TSV (circular evaluation, `vlmtune eval --bench mmbench`), chat two
   turns about a held-out image, write WORK/report.md + report.png.
"""
import json
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

BASE_SPEC = dict(llm='qwen2', vit='300m', template='internvl2_5', image_size=56, vit_width=64, vit_layers=4,
                 vit_heads=4, llm_width=128, llm_layers=3, llm_heads=4, llm_kv_heads=2, llm_intermediate=256,
                 vocab_size=600, max_dynamic_patch=1, system_message='You are a helpful vision assistant.')


GENERAL_REPEAT = 0.3   # the general task's share in the domain mixture (the Mini-InternVL domain meta files' value)


@dataclass
class DemoSize:
    general_train: int = 2400
    general_val: int = 200
    domain_train: int = 480
    domain_heldout: int = 160
    pretrain_iters: int = 900
    lora_iters: int = 500


QUICK = DemoSize(general_train=600, general_val=48, domain_train=160, domain_heldout=48, pretrain_iters=150,
                 lora_iters=150)


class Stages:
    def __init__(self, total):
        self.total, self.index, self.start, self.times = total, 0, time.time(), {}

    def begin(self, name):
        self.index += 1
        self.name, self.t0 = name, time.time()
        print(f'\n=== [{self.index}/{self.total}] {name}', flush=True)

    def end(self, note=''):
        self.times[self.name] = time.time() - self.t0
        print(f'--- done in {self.times[self.name]:.1f}s {note}', flush=True)


def _convert_rows(kind, source, image_root, out_jsonl, **kwargs):
    from datasets_proc import csv_folder, foodieqa
    from datasets_proc.canonical import write_jsonl
    # The tiny model answers multiple choice with the option's text: letter pointing is beyond what a
    # 3-layer model learns in a few CPU minutes (it stayed at chance in 800 steps). Real recipes keep letters.
    rows, report = (csv_folder.convert(source, image_root, answer_with='text') if kind == 'csv'
                    else foodieqa.convert(source, image_root=image_root, answer_with='text', **kwargs))
    print(report.summary() if hasattr(report, 'summary') else report)
    write_jsonl(rows, out_jsonl)
    return rows


def _check(path, image_root, model=None):
    from .data.check import CheckConfig, check_file
    from .formats import data_spec_for_folder
    length_fn = data_spec_for_folder(model, max_length=384).length_fn(image_root, 384) if model else None
    report = check_file(path, image_root, CheckConfig(max_length=384 if model else None), token_length_fn=length_fn,
                        kept_path=path.with_suffix('.kept.jsonl'), progress=False)
    if report.rejected:
        raise RuntimeError(f'{path}: {report.rejected} rows rejected by data check:\n{report.summary()}')
    print(f'data check {path.name}: {report.kept}/{report.total} rows kept, 0 rejected')
    return report


def _train(recipe, checkpoint, data, images, work_dir, iters, deepspeed=None, meta=None):
    from .engine.launch import shortcut_options, train
    from .engine.recipes import lookup
    options = shortcut_options(checkpoint, data, images, meta=meta) + [f'train_cfg.max_iters={iters}',
                                                             f'default_hooks.checkpoint.interval={iters}']
    code = train(lookup(recipe), deepspeed, options, work_dir)
    if code != 0:
        raise RuntimeError(f'training {recipe} failed (exit {code}); see {work_dir}')
    return work_dir / f'iter_{iters}.pth'


def _convert(recipe, init, checkpoint, out):
    from .engine.convert import convert
    from .engine.recipes import lookup
    result = convert(lookup(recipe), checkpoint, out, dtype='fp32', overwrite=True,
                     cfg_options=[f'model.checkpoint={init}', f'train_dataloader.dataset.checkpoint={init}'])
    print(f"self-check {'PASS' if result['passed'] else 'FAIL'}: max |logit diff| {result['max_diff']:.3g}")
    return result


def build_base(work: Path, size: DemoSize, stages: Stages) -> Path:
    from datasets_proc.synthetic import WORDS, write_general
    from .tiny import TinySpec, make_tiny_folder
    stages.begin('base: general shape colour/position data -> converter -> data check')
    general = work / 'general'
    shutil.rmtree(general, ignore_errors=True)
    for split, n, seed in (('train', size.general_train, 0), ('val', size.general_val, 1)):
        csv_path = write_general(general / split, n=n, seed=seed)
        _convert_rows('csv', csv_path, general / split / 'images', general / split / 'data.jsonl')
        _check(general / split / 'data.jsonl', general / split / 'images')
    stages.end()
    stages.begin('base: pretrain a tiny random InternVL folder on the general task (all parts train)')
    init = make_tiny_folder(work / 'init', TinySpec(**BASE_SPEC, extra_corpus=WORDS), overwrite=True)
    ckpt = _train('pretrain_cpu.py', init, general / 'train' / 'data.jsonl', general / 'train' / 'images',
                  work / 'pretrain', size.pretrain_iters)
    _convert('pretrain_cpu.py', init, ckpt, work / 'base')
    stages.end()
    return work / 'base'


def two_turn(open_row: dict, choice_row: dict) -> dict:
    """One conversation about one image: the open question, then the multiple-choice follow-up."""
    follow_up = dict(choice_row['conversations'][0])
    follow_up['value'] = follow_up['value'].replace('<image>\n', '', 1)
    return dict(open_row, id=f"{open_row['id']}-chat",
                conversations=open_row['conversations'] + [follow_up, choice_row['conversations'][1]])


def build_domain(work: Path, size: DemoSize, base: Path, stages: Stages):
    from datasets_proc.synthetic import write_domain
    stages.begin('domain: dishes as FoodieQA records -> foodieqa converter -> data check with the base')
    domain = work / 'domain'
    shutil.rmtree(domain, ignore_errors=True)
    sets = {}
    for split, n, seed in (('train', size.domain_train, 10), ('heldout', size.domain_heldout, 11)):
        raw = write_domain(domain / split, n=n, seed=seed)
        forms = {form: _convert_rows('foodieqa', raw, domain / split, domain / split / f'{form}.jsonl', form=form,
                                     lang='en') for form in ('choice', 'open')}
        rows = [dict(r, id=f"{r['id']}-{form}") for form, converted in forms.items() for r in converted]
        if split == 'train':  # a quarter of the records also as one two-turn chat: open, then choice
            rows += [two_turn(o, c) for o, c in zip(forms['open'][::4], forms['choice'][::4])]
        sets[split] = rows
    path = domain / 'train.jsonl'
    path.write_text(''.join(json.dumps(r, ensure_ascii=False) + '\n' for r in sets['train']), encoding='utf-8')
    # The mixture, as an official meta file: the dishes beside the general task at repeat_time 0.3 (its first 30%),
    # so the base's skills stay.
    general = work / 'general' / 'train'
    meta = {'dishes': {'root': str(domain / 'train'), 'annotation': str(path), 'repeat_time': 1},
            'general': {'root': str(general / 'images'), 'annotation': str(general / 'data.jsonl'),
                        'repeat_time': GENERAL_REPEAT}}
    meta_path = domain / 'meta.json'
    meta_path.write_text(json.dumps(meta, indent=1), encoding='utf-8')
    counts = _check_meta(meta_path, base)
    stages.end('(' + ' + '.join(f'{n} {name} samples' for name, n in counts.items()) + f', meta file {meta_path.name})')
    return meta_path, counts


def _check_meta(meta_path: Path, model: Path) -> dict:
    """data check --meta with the base: every row of every source; {source: samples it trains}."""
    from .data.check import CheckConfig
    from .data.check_meta import check_meta, meta_summary, trained
    from .formats import data_spec_for_folder
    results = check_meta(meta_path, CheckConfig(max_length=384), progress=False,
                         length_fn_for=lambda source: data_spec_for_folder(model, max_length=384).length_fn(source.root,
                                                                                                           384))
    rejected = sum(report.rejected for _, report in results)
    if rejected:
        raise RuntimeError(f'{meta_path}: {rejected} rows rejected by data check:\n'
                           + '\n'.join(report.summary() for _, report in results))
    print(meta_summary(meta_path, results))
    return {source.name: trained(source, report) for source, report in results}


def evaluate_all(work: Path, base: Path, tuned: Path, stages: Stages) -> dict:
    from .bench.run import run_benchmark, write_results
    from .bench.teacher_forced import answer_token_accuracy
    from .serve import pipeline
    stages.begin('evaluate base vs tuned: held-out dishes (multiple choice + open) and general retention')
    results = {}
    for name, folder in (('base', base), ('tuned', tuned)):
        pipe = pipeline(folder, backend='auto')
        for task, data, images in (('domain_choice', work / 'domain/heldout/choice.jsonl', work / 'domain/heldout'),
                                   ('domain_open', work / 'domain/heldout/open.jsonl', work / 'domain/heldout'),
                                   ('general', work / 'general/val/data.jsonl', work / 'general/val/images')):
            # One question at a time, as a user's chat asks them (`vlmtune eval --bench conversations`).
            result, rows = run_benchmark('conversations', data, pipe, images, batch_size=1, max_new_tokens=12,
                                         progress=False, model=folder.name)
            write_results(result, rows, work / 'eval' / f'{name}_{task}.jsonl')  # + .results.json / .md
            results[f'{name}/{task}'] = result['metrics']['accuracy']
            print(f'{name:5s} {task:13s} {format_accuracy(result)}')
        # Teacher-forced next-token accuracy on the held-out answers: finer-grained than exact match.
        scores = answer_token_accuracy(folder, work / 'domain/heldout/open.jsonl', work / 'domain/heldout')
        results[f'{name}/domain_answer_tokens'] = scores['token_accuracy']
        print(f"{name:5s} domain answer-token accuracy {100 * scores['token_accuracy']:.1f}% "
              f"(loss {scores['loss']:.3f}, {scores['tokens']} tokens)")
    stages.end()
    return results


def format_accuracy(result: dict) -> str:
    """'accuracy 98.8% (n=160); multiple choice 98.8% (n=160); open - (n=0)' of a conversations result."""
    metrics = result['metrics']

    def pct(value):
        return '-' if value is None else f'{100 * value:.1f}%'
    return (f"accuracy {pct(metrics['accuracy'])} (n={result['questions_asked']}); multiple choice "
            f"{pct(metrics.get('multiple_choice_accuracy'))} (n={metrics['n_multiple_choice']}); open "
            f"{pct(metrics.get('open_accuracy'))} (n={metrics['n_open']})")


def evaluate_mmbench_format(work: Path, base: Path, tuned: Path, stages: Stages) -> dict:
    """The held-out multiple-choice dishes as an MMBench TSV, scored as MMBench is (circular)."""
    from .bench.export import conversations_to_mmbench
    from .bench.report import compare
    from .bench.run import run_benchmark, write_results
    from .serve import pipeline
    stages.begin('held-out dishes as an MMBench TSV: circular evaluation, base vs tuned (vlmtune eval --bench)')
    out = work / 'eval' / 'mmbench'
    tsv = out / 'dishes_mmbench.tsv'
    conversations_to_mmbench(work / 'domain/heldout/choice.jsonl', tsv)
    results = {}
    for name, folder in (('base', base), ('tuned', tuned)):
        result, rows = run_benchmark('mmbench', tsv, pipeline(folder, backend='auto'), work / 'domain/heldout',
                                     progress=False, model=folder.name)
        write_results(result, rows, out / name)
        results[f'{name}/mmbench_circular'] = result['metrics']['circular_accuracy']
        print(f"{name:5s} MMBench-format circular {100 * result['metrics']['circular_accuracy']:.1f}% "
              f"(vanilla {100 * result['metrics']['vanilla_accuracy']:.1f}%, {result['questions_asked']} passes, "
              f"{result['unanswered']} unanswered)")
    compare([out / 'base', out / 'tuned'], out, ['base', 'tuned'])
    stages.end(f'(table and chart: {out.relative_to(work)}/compare.md, compare.png)')
    return results


def chat_demo(work: Path, tuned: Path, stages: Stages):
    from datasets_proc.multiple_choice import choice_prompt
    from .serve import GenerationConfig, pipeline
    stages.begin('two-turn chat with the tuned model about a held-out image')
    record = json.loads((work / 'domain/heldout/sivqa_synthetic.json').read_text())[0]
    image = work / 'domain/heldout' / record['food_meta']['food_file']
    pipe = pipeline(tuned, backend='auto')
    gen = GenerationConfig(max_new_tokens=16)
    transcript = []
    session = None
    # The forms the domain data trained: the open question (image after it), then a choice follow-up.
    questions = [record['question_en'] + '\n<image>',
                 choice_prompt(record['question_en'], record['choices_en'], 'en', n_images=0, answer_with='text')]
    for question in questions:
        prompt = (question, str(image)) if session is None else question
        session = pipe.chat(prompt, session=session, gen_config=gen)
        transcript.append((question, session.response.text))
        print(f'user: {question}\nassistant: {session.response.text}')
    stages.end(f'(image {image.name}, truth: {record["food_name"]})')
    return {'image': str(image.relative_to(work)), 'truth': record['food_name'], 'turns': transcript}


def acceptance(results: dict):
    """The embedded default's promises: [(statement with the numbers, held?)]."""
    tuned = min(results['tuned/domain_choice'], results['tuned/domain_open'])
    base = max(results['base/domain_choice'], results['base/domain_open'])
    drop = results['base/general'] - results['tuned/general']
    return [(f'tuned held-out dishes >= 90% (worst form {100 * tuned:.1f}%)', tuned >= 0.9),
            (f'base <= chance + 15 = 40% (best form {100 * base:.1f}%)', base <= 0.4),
            (f"general drop <= 5 points ({100 * results['base/general']:.1f}% -> "
             f"{100 * results['tuned/general']:.1f}%)", drop <= 0.05)]


def write_report(work: Path, results: dict, chat: dict, stages: Stages, base_cached: bool, mixture: dict):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    for label, folder in (('pretrain (general)', work / 'pretrain'), ('LoRA (domain, ZeRO-2)', work / 'lora')):
        history = folder / 'loss_history.json'
        if history.exists():
            train = json.loads(history.read_text())['train']
            ax1.plot([h['iter'] for h in train], [h['loss'] for h in train], label=label)
    ax1.set_xlabel('iteration'), ax1.set_ylabel('loss'), ax1.set_yscale('log'), ax1.legend(), ax1.grid(alpha=0.3)
    tasks = ['domain_choice', 'domain_open', 'general']
    for offset, name in ((-0.2, 'base'), (0.2, 'tuned')):
        ax2.bar([i + offset for i in range(3)], [100 * results[f'{name}/{t}'] for t in tasks], 0.4, label=name)
    ax2.axhline(25, color='grey', ls='--', lw=1, label='chance (4 options)')
    ax2.set_xticks(range(3), ['dishes (choice)', 'dishes (open)', 'general'])
    ax2.set_ylabel('held-out accuracy (%)'), ax2.set_ylim(0, 100), ax2.legend()
    fig.tight_layout()
    fig.savefig(work / 'report.png', dpi=100)
    plt.close(fig)
    lines = ['# vlmtune embedded default: report', '', '![loss and accuracy](report.png)', '',
             '| held-out task | base | tuned |', '|---|---|---|']
    for task, label in zip(tasks, ['dishes, multiple choice (chance 25%)', 'dishes, open answer', 'general (retention)']):
        lines.append(f"| {label} | {100 * results[f'base/{task}']:.1f}% | {100 * results[f'tuned/{task}']:.1f}% |")
    lines.append(f"| dishes, answer-token accuracy (teacher-forced) | "
                 f"{100 * results['base/domain_answer_tokens']:.1f}% | {100 * results['tuned/domain_answer_tokens']:.1f}% |")
    lines.append(f"| dishes as MMBench (circular: right under all 4 rotations; [chart](eval/mmbench/compare.png)) | "
                 f"{100 * results['base/mmbench_circular']:.1f}% | {100 * results['tuned/mmbench_circular']:.1f}% |")
    lines += ['', f'Trained on the meta file domain/meta.json (general at repeat_time {GENERAL_REPEAT}): '
              + ', '.join(f'{name} {n} samples' for name, n in mixture.items())]
    lines += ['', 'Targets (full run): ' + '; '.join(f"{text} {'met' if ok else 'NOT met'}"
                                                 for text, ok in acceptance(results))]
    lines += ['', f"Two-turn chat about held-out image `{chat['image']}` (truth: {chat['truth']}):", '']
    lines += [f"- **user**: {q.replace(chr(10), ' / ')}\n  **assistant**: {a}" for q, a in chat['turns']]
    lines += ['', '| stage | seconds |', '|---|---|'] + [f'| {k} | {v:.1f} |' for k, v in stages.times.items()]
    total = time.time() - stages.start
    lines += ['', f'Total {total:.0f}s' + (' (base reused from cache)' if base_cached else ' (base built)')]
    (work / 'report.md').write_text('\n'.join(lines) + '\n', encoding='utf-8')
    return total


def run_demo(work_dir='work_dirs/demo', rebuild_base=False, quick=False) -> dict:
    work = Path(work_dir).resolve()
    work.mkdir(parents=True, exist_ok=True)
    size = QUICK if quick else DemoSize()
    base = work / 'base'
    base_cached = (base / 'config.json').exists() and not rebuild_base
    stages = Stages(total=7 if base_cached else 9)
    if base_cached:
        print(f'reusing the cached base {base} (pass --rebuild-base to build it again)')
        if not (work / 'general' / 'val' / 'data.jsonl').exists():
            raise RuntimeError(f'{work}/general is missing; run with --rebuild-base')
    else:
        build_base(work, size, stages)
    meta, mixture = build_domain(work, size, base, stages)
    stages.begin('LoRA on the domain: vlmtune train domain_lora_cpu --meta domain/meta.json --deepspeed zero2')
    shutil.rmtree(work / 'lora', ignore_errors=True)
    ckpt = _train('domain_lora_cpu.py', base, None, None, work / 'lora', size.lora_iters, 'zero2', meta=meta)
    stages.end()
    stages.begin('vlmtune convert with self-check')
    _convert('domain_lora_cpu.py', base, ckpt, work / 'tuned')
    stages.end()
    results = evaluate_all(work, base, work / 'tuned', stages)
    results.update(evaluate_mmbench_format(work, base, work / 'tuned', stages))
    chat = chat_demo(work, work / 'tuned', stages)
    total = write_report(work, results, chat, stages, base_cached, mixture)
    for text, ok in acceptance(results):
        print(f"{'met' if ok else 'NOT met':7s}  {text}")
    print(f'\nreport: {work / "report.md"} and {work / "report.png"}  (total {total:.0f}s)')
    (work / 'results.json').write_text(json.dumps({'accuracy': results, 'mixture': mixture, 'seconds': total,
                                                   'stages': stages.times}, indent=2))
    return results


def main(argv=None) -> int:
    import argparse
    parser = argparse.ArgumentParser(prog='vlmtune demo', description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--work-dir', default='work_dirs/demo')
    parser.add_argument('--rebuild-base', action='store_true')
    parser.add_argument('--quick', action='store_true', help='shortened run (CI): fewer rows and steps')
    args = parser.parse_args(argv)
    run_demo(args.work_dir, args.rebuild_base, args.quick)
    return 0


if __name__ == '__main__':
    sys.exit(main())
