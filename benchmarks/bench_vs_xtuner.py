#!/usr/bin/env python
"""Training throughput beside XTuner's own InternVL path, in one invocation, on the same tiny official-style
InternLM2 folder and the same data: XTuner 0.2.0's `internvl_v2_internlm2_2b_lora_finetune.py` (read from the
installed xtuner at run time, paths / batch / iterations / lr substituted) and our equivalent recipe, both
under `--deepspeed zero2` (the CPU-safe variant without a GPU). Prints s/iter (iterations `--skip`..N),
samples/s, tokens/s and peak RSS of each, the ratios, and a profile of our step.

    python benchmarks/bench_vs_xtuner.py [--iters 60] [--skip 10] [--dtypes bf16 fp32] [--repeats 3] [--shape tiny|2b]

LoRA r 128 / alpha 256 / dropout 0.05 on the LLM, vision tower and connector frozen, batch 2, 448 px, <= 12 tiles.
XTuner's InternVL_V1_5 loads the folder in bf16 whatever is asked (fp32 fails in its mlp1 on CPU), so its row
is bf16; ours runs each of --dtypes.
"""
import argparse
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image, ImageDraw

REPO = Path(__file__).resolve().parent.parent
SHAPES = {  # TinySpec fields; 2b: InternVL2-2B's widths (InternViT-300M + InternLM2-1.8B), random weights
    'tiny': dict(llm='internlm2', vit='300m', image_size=448, max_dynamic_patch=12),
    '2b': dict(llm='internlm2', vit='300m', image_size=448, max_dynamic_patch=12, vit_width=1024, vit_layers=24,
               vit_heads=16, llm_width=2048, llm_layers=24, llm_heads=16, llm_kv_heads=8, llm_intermediate=8192,
               vocab_size=4000),
}
LORA = dict(r=128, alpha=256, dropout=0.05)
LR = 1e-4


def make_data(root: Path, n: int, seed=0):
    """n rows of mixed-size images (1..12 tiles at 448 px) asking for their colour; LLaVA JSON for XTuner,
    the same rows as our JSONL."""
    rng = random.Random(seed)
    images = root / 'images'
    images.mkdir(parents=True)
    colours = {'red': (220, 40, 40), 'green': (40, 200, 60), 'blue': (40, 60, 220)}
    rows = []
    for i in range(n):
        name = rng.choice(sorted(colours))
        size = rng.choice([(448, 448), (896, 448), (1344, 448), (896, 896), (1344, 896), (640, 480)])
        image = Image.new('RGB', size, colours[name])
        ImageDraw.Draw(image).ellipse([size[0] // 4, size[1] // 4, size[0] // 2, size[1] // 2], fill=(250, 250, 250))
        image.save(images / f'{i:03d}.jpg', quality=90)
        rows.append({'id': str(i), 'image': f'{i:03d}.jpg', 'conversations': [
            {'from': 'human', 'value': '<image>\nWhat colour is the picture?'}, {'from': 'gpt', 'value': name}]})
    (root / 'data.json').write_text(json.dumps(rows))
    (root / 'data.jsonl').write_text(''.join(json.dumps(r) + '\n' for r in rows))
    return root / 'data.json', root / 'data.jsonl', images


def xtuner_config(folder, data_json, images, iters, out: Path) -> Path:
    """The installed xtuner's config text, then assignments that point it at our folder and data."""
    import xtuner
    source = Path(xtuner.__file__).parent / 'configs' / 'internvl' / 'v2' / 'internvl_v2_internlm2_2b_lora_finetune.py'
    overrides = f'''
# --- bench_vs_xtuner.py: the same run as ours ---
path = {str(folder)!r}
model.update(model_path=path)
model['llm_lora'].update(r={LORA['r']}, lora_alpha={LORA['alpha']}, lora_dropout={LORA['dropout']})
llava_dataset.update(model_path=path, data_paths={str(data_json)!r}, image_folders={str(images)!r}, max_length=8192)
train_dataloader.update(batch_size=2, num_workers=0, dataset=llava_dataset)
train_dataloader['sampler'].update(per_device_batch_size=2)
optim_wrapper.update(accumulative_counts=1)
optim_wrapper['optimizer'].update(lr={LR})
param_scheduler = []
train_cfg = dict(type=TrainLoop, max_iters={iters})
custom_hooks = []
default_hooks['logger'].update(interval=1)
default_hooks['checkpoint'].update(interval={iters + 1000})
randomness = dict(seed=0, deterministic=False)
'''
    out.write_text(source.read_text() + overrides)
    return out


def our_options(dtype, iters):
    return ['model.lora.r={}'.format(LORA['r']), 'model.lora.alpha={}'.format(LORA['alpha']),
            'model.lora.dropout={}'.format(LORA['dropout']), 'model.connector=frozen', 'model.vision_tower=frozen',
            f'model.dtype={dtype}', 'train_dataloader.batch_size=2', 'train_dataloader.dataset.max_tiles=12',
            'train_dataloader.dataset.max_length=8192', f'optim_wrapper.optimizer.lr={LR}',
            f'train_cfg.max_iters={iters}', f'default_hooks.checkpoint.interval={iters + 1000}',
            'default_hooks.logger.interval=1']


def our_command(folder, data_jsonl, images, work_dir, dtype, iters, deepspeed=None) -> list:
    """`vlmtune train` of the tiny LoRA recipe with the benchmark's settings."""
    recipe = REPO / 'vlmtune' / 'recipes' / 'tiny' / 'lora_cpu.py'
    return [sys.executable, '-m', 'vlmtune.cli', 'train', str(recipe), '--checkpoint', str(folder), '--data',
            str(data_jsonl), '--images', str(images), *(['--deepspeed', deepspeed] if deepspeed else []),
            '--work-dir', str(work_dir), '--cfg-options', *our_options(dtype, iters)]


def run_measured(cmd, cwd, env=None) -> tuple:
    """(returncode, output, peak RSS in MiB): wait4's usage of the child covers the descendants it reaped
    (the trainer `vlmtune train` launches), its ru_maxrss the largest of them."""
    with tempfile.TemporaryFile('w+') as log:
        process = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT, text=True)
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        log.seek(0)
        output = log.read()
    return process.returncode, output, usage.ru_maxrss / 1024


def iteration_times(output: str) -> dict:
    """{iteration: seconds} from mmengine's per-iteration log lines."""
    times = {}
    for match in re.finditer(r'Iter\(train\)\s*\[\s*(\d+)/\s*\d+\].*?\btime: ([\d.]+)', output):
        times[int(match.group(1))] = float(match.group(2))
    return times


def tokens_per_sample(folder, data_jsonl, images) -> float:
    """The rows' mean token count: the dataset's lengths, read from image headers (no decoding)."""
    from vlmtune.engine import build_train_dataset
    dataset = build_train_dataset(folder, data_jsonl, images, max_length=8192, max_tiles=12)
    return sum(dataset.lengths) / len(dataset)


def measure(name, cmd, cwd, skip, tokens):
    started = time.perf_counter()
    code, output, peak_mib = run_measured(cmd, cwd)
    if code != 0:
        raise SystemExit(f'{name} failed ({code}):\n{output[-4000:]}')
    times = iteration_times(output)
    kept = [t for i, t in times.items() if i > skip]
    if not kept:
        raise SystemExit(f'{name}: no iteration times after {skip} in its log:\n{output[-2000:]}')
    per_iter = sum(kept) / len(kept)
    return {'name': name, 's_per_iter': per_iter, 'samples_s': 2 / per_iter, 'tokens_s': 2 * tokens / per_iter,
            'peak_rss_mib': peak_mib, 'iters_timed': len(kept), 'wall_s': time.perf_counter() - started}


def alternate(runners: list, repeats: int) -> list:
    """Each runner(rep) `repeats` times, in alternating order (slow drifts of the machine hit every row
    alike); per runner, its runs."""
    runs = [[] for _ in runners]
    for rep in range(repeats):
        for k in (range(len(runners)) if rep % 2 == 0 else reversed(range(len(runners)))):
            runs[k].append(runners[k](rep))
            print(f"  run {rep + 1}/{repeats}: {runs[k][-1]['name']} {runs[k][-1]['s_per_iter']:.3f} s/iter", flush=True)
    return runs


def print_rows(runs: list, ratio: str, repeats: int) -> list:
    """The table of each runner's median run, the ratio column against the first; -> those rows."""
    rows = [median_run(r) for r in runs]
    print(f'\n| run | s/iter | samples/s | tokens/s | peak RSS MiB | {ratio} |\n|---|---|---|---|---|---|')
    for row in rows:
        print(f"| {row['name']} | {row['s_per_iter']:.3f} | {row['samples_s']:.2f} | {row['tokens_s']:.0f} | "
              f"{row['peak_rss_mib']:.0f} | {rows[0]['s_per_iter'] / row['s_per_iter']:.2f}x |")
    if repeats > 1:
        print(f'(median of {repeats} runs each; s/iter of every run: ' + '; '.join(
            f"{r[0]['name']} " + ', '.join(f"{x['s_per_iter']:.3f}" for x in r) for r in runs) + ')')
    return rows


def median_run(runs: list) -> dict:
    """The run with the median s/iter (the upper one of an even count), its peak RSS the largest seen."""
    ordered = sorted(runs, key=lambda r: r['s_per_iter'])
    return dict(ordered[len(ordered) // 2], peak_rss_mib=max(r['peak_rss_mib'] for r in runs))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--iters', type=int, default=60)
    parser.add_argument('--skip', type=int, default=10, help='iterations left out of the mean (warm-up)')
    parser.add_argument('--rows', type=int, default=32)
    parser.add_argument('--dtypes', nargs='+', default=['bf16', 'fp32'])
    parser.add_argument('--repeats', type=int, default=1, help='runs of each row, in alternating order; the '
                        'table shows each row\'s median run (this machine drifts by +-15%% between runs)')
    parser.add_argument('--shape', choices=sorted(SHAPES), default='tiny')
    parser.add_argument('--no-profile', action='store_true')
    parser.add_argument('--profile-steps', type=int, default=16, help='16: one pass over the default 32 rows')
    args = parser.parse_args(argv)
    from vlmtune.engine.launch import resolve_deepspeed
    from vlmtune.tiny import TinySpec, make_tiny_folder
    root = Path(tempfile.mkdtemp(prefix='bench-vs-xtuner-'))
    folder = make_tiny_folder(root / 'model', TinySpec(**SHAPES[args.shape]))
    data_json, data_jsonl, images = make_data(root / 'data', args.rows)
    tokens = tokens_per_sample(folder, data_jsonl, images)
    zero2 = str(resolve_deepspeed('zero2'))
    print(f'model: tiny InternVL ({args.shape}) {folder}; {args.rows} rows, {tokens:.0f} tokens/sample; batch 2, '
          f'LoRA r {LORA["r"]}, vision tower + connector frozen, ZeRO-2 ({Path(zero2).name}); {args.iters} iterations, '
          f'mean of {args.skip + 1}..{args.iters}', flush=True)
    xtuner_cfg = xtuner_config(folder, data_json, images, args.iters, root / 'xtuner_internvl_lora.py')
    # XTuner loads the model in bf16 and keeps mlp1 in fp32 unless DeepSpeed casts the module: its CPU run
    # needs ZeRO-2 with bf16 on. Otherwise our CPU-safe JSON, with XTuner's own (DeepSpeed's default)
    # bucket sizes: xtuner's deepspeed_zero2.json sets none.
    ds = json.loads(Path(zero2).read_text())
    ds['bf16'] = {'enabled': True}
    for key in ('reduce_bucket_size', 'allgather_bucket_size'):
        ds['zero_optimization'].pop(key, None)
    zero2_bf16 = root / 'zero2_cpu_bf16.json'
    zero2_bf16.write_text(json.dumps(ds, indent=1))

    def xtuner_run(rep):
        return measure('XTuner InternVL_V1_5 (bf16)', [
            sys.executable, '-m', 'vlmtune.engine.xtuner_main', str(xtuner_cfg), '--deepspeed', str(zero2_bf16),
            '--work-dir', str(root / f'work-xtuner-{rep}')], root, args.skip, tokens)

    def our_run(dtype):
        return lambda rep: measure(f'vlmtune train ({dtype})', our_command(
            folder, data_jsonl, images, root / f'work-{dtype}-{rep}', dtype, args.iters, 'zero2'), root, args.skip, tokens)
    runners = [xtuner_run] + [our_run(dtype) for dtype in args.dtypes]
    runs = alternate(runners, args.repeats)
    rows = print_rows(runs, 'vs XTuner (bf16)', args.repeats)
    (root / 'results.json').write_text(json.dumps(runs, indent=1))
    if not args.no_profile:
        from bench_profile import print_profile  # noqa: E402  (benchmarks/ is the script's folder)
        print_profile(folder, data_jsonl, images, rows[1]['s_per_iter'] if len(rows) > 1 else None,
                      dtype=args.dtypes[0], lora=LORA, steps=args.profile_steps)
    print(f'\nresults: {root / "results.json"}')


if __name__ == '__main__':
    main()
