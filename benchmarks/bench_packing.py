#!/usr/bin/env python
"""Training throughput of the tiny LoRA setup with sequence packing vs padded batches, on a
mixed-length dataset, measured side by side in one run (each mode in its own child process, so each
reports its own peak RSS), for every LLM family the registry has (one table each; a family that
vlmtune.tiny cannot build yet is reported as skipped). Tokens/s counts real (non-padding) tokens.

    python benchmarks/bench_packing.py [--steps 30] [--quick] [--llm qwen2 internlm2 ...] [--list]
"""
import argparse
import json
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

WORDS = 'the dish is red green blue white noodles rice tofu fish with a small plate on the table'.split()


def make_data(folder: Path, n: int, seed: int = 0, tile: int = 56) -> Path:
    from PIL import Image
    rng = random.Random(seed)
    (folder / 'images').mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n):
        w, h = rng.choice([(1, 1), (2, 1), (3, 1), (2, 2)])  # 1 to 5 tiles (with the thumbnail)
        size = (w * tile, h * tile)
        Image.new('RGB', size, tuple(rng.randrange(256) for _ in range(3))).save(folder / 'images' / f'{i}.png')
        answer = ' '.join(rng.choice(WORDS) for _ in range(int(rng.lognormvariate(2.0, 1.0)) + 1))[:600]
        rows.append({'id': str(i), 'image': f'{i}.png', 'conversations': [
            {'from': 'human', 'value': '<image>\nDescribe it.'}, {'from': 'gpt', 'value': answer}]})
    path = folder / 'data.jsonl'
    path.write_text(''.join(json.dumps(r) + '\n' for r in rows))
    return path


def run_mode(mode, folder, data, steps, batch_size, max_length, device='cpu', gradient_checkpointing=False,
             lr=1e-4):
    """One timed LoRA training run (after two warm-up steps): `padded` batches of `batch_size`, `packed`
    rows of `max_length`, or `qlora` (padded, 4-bit LLM; needs CUDA). Also used by gpu_train.py."""
    import torch
    from vlmtune.engine import TrainingModel, build_train_dataset, vlm_collate
    torch.manual_seed(0)
    on_gpu = device == 'cuda'
    dataset = build_train_dataset(folder, data, Path(data).parent / 'images', max_length=max_length, max_tiles=6,
                                  packing=(mode == 'packed'))
    model = TrainingModel(folder, vision_tower='frozen', connector='full', llm='lora',
                        quantization='nf4' if mode == 'qlora' else None, dtype='bf16' if on_gpu else 'fp32',
                        gradient_checkpointing=gradient_checkpointing).to(device)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr)
    per_step = 1 if mode == 'packed' else batch_size
    tokens = padded = samples = 0
    start = None
    for step in range(steps + 2):
        if step == 2:  # two warm-up steps
            if on_gpu:
                torch.cuda.synchronize()
                torch.cuda.reset_peak_memory_stats()
            start, tokens, padded, samples = time.perf_counter(), 0, 0, 0
        items = [dataset[(step * per_step + k) % len(dataset)] for k in range(per_step)]
        batch = vlm_collate(items)['data']
        packed = 'sample_lengths' in batch
        tokens += sum(batch['sample_lengths']) if packed else int(batch['attention_mask'].sum())
        samples += len(batch['sample_lengths']) if packed else batch['input_ids'].shape[0]
        padded += batch['input_ids'].numel()
        batch = {k: v.to(device) if hasattr(v, 'to') else v for k, v in batch.items()}
        losses = model(batch, mode='loss')  # MoE LLMs add their router loss: sum the terms as mmengine does
        sum(v for k, v in losses.items() if 'loss' in k).backward()
        optimizer.step()
        optimizer.zero_grad()
    if on_gpu:
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    return {'mode': mode, 'tokens_per_s': tokens / seconds, 'real_tokens': tokens, 'row_tokens': padded,
            'padding_fraction': 1 - tokens / padded, 'samples_per_s': samples / seconds, 'samples': samples,
            'seconds': seconds, 'peak_rss_mib': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            'peak_gib': torch.cuda.max_memory_allocated() / 2**30 if on_gpu else float('nan')}


def plan(families=None) -> list:
    """[(family, None)] for each family to run, [(family, why)] for each that is skipped."""
    from vlmtune.model.llm import REGISTRY
    rows = []
    for family in families or REGISTRY.names():
        if family not in REGISTRY:
            raise SystemExit(f'unknown LLM family {family!r}; registered: {REGISTRY.names()}')
        rows.append((family, None if REGISTRY.get(family).packing else
                     'skipped (its entry says packed rows are not computed per sample: packing=False)'))
    return rows


def bench_family(family, tmp: Path, data: Path, args) -> "list | str":
    """Both modes for one family's tiny model -> result rows ({'mode', 'error'} for a mode that failed), or
    why the family is skipped (its tiny model could not be built)."""
    from vlmtune.tiny import TinySpec, make_tiny_folder
    try:
        folder = make_tiny_folder(tmp / family, TinySpec(llm=family, vit_width=64, llm_width=128, llm_layers=3,
                                                         llm_intermediate=256, max_dynamic_patch=6))
    except Exception as exc:  # e.g. a family whose tiny folder cannot be written yet: say so, bench the rest
        return f'vlmtune.tiny could not build it: {type(exc).__name__}: {exc}'[:300]
    results = []
    for mode in ('padded', 'packed'):
        out = subprocess.run([sys.executable, __file__, '--steps', str(args.steps), '--batch-size',
                              str(args.batch_size), '--max-length', str(args.max_length), '--child', mode,
                              str(folder), str(data)], capture_output=True, text=True)
        if out.returncode:
            results.append({'mode': mode, 'error': (out.stderr.strip().splitlines() or ['failed'])[-1][:200]})
        else:
            results.append(json.loads(out.stdout.strip().splitlines()[-1]))
    return results


def print_table(family, results, steps):
    print(f'== {family}')
    print(f"{'mode':8s} {'tokens/s':>10s} {'tokens/step':>12s} {'padding':>8s} {'peak RSS MiB':>13s}")
    for r in results:
        if 'error' in r:
            print(f"{r['mode']:8s} failed: {r['error']}")
        else:
            print(f"{r['mode']:8s} {r['tokens_per_s']:10.0f} {r['real_tokens'] / steps:12.0f} "
                  f"{100 * r['padding_fraction']:7.1f}% {r['peak_rss_mib']:13.0f}")
    if not any('error' in r for r in results):
        print(f"packed / padded tokens/s: {results[1]['tokens_per_s'] / results[0]['tokens_per_s']:.2f}x")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--steps', type=int, default=None, help='timed steps (default 30; --quick: 8)')
    parser.add_argument('--batch-size', type=int, default=8, help='padded rows per step')
    parser.add_argument('--max-length', type=int, default=2048,
                        help='packed row length (default: about the row tokens of one padded batch)')
    parser.add_argument('--samples', type=int, default=400, help='dataset rows')
    parser.add_argument('--llm', nargs='+', help='LLM families (default: every registered one)')
    parser.add_argument('--list', action='store_true', help='print which families run or are skipped, and stop')
    parser.add_argument('--quick', action='store_true')
    parser.add_argument('--child', nargs=3, metavar=('MODE', 'FOLDER', 'DATA'), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.steps is None:
        args.steps = 8 if args.quick else 30
    if args.child:
        print(json.dumps(run_mode(*args.child, args.steps, args.batch_size, args.max_length)))
        return 0
    families = plan(args.llm)
    if args.list:
        for family, why in families:
            print(f'{family}: ' + (f'skipped ({why})' if why else 'runs'))
        return 0
    failed = False
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        data = make_data(tmp / 'data', args.samples)
        for family, why in families:
            if why:
                print(f'== {family}: skipped ({why})')
                continue
            results = bench_family(family, tmp, data, args)
            if isinstance(results, str):
                print(f'== {family}: skipped ({results})')
                continue
            print_table(family, results, args.steps)
            failed |= any('error' in r for r in results)
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
