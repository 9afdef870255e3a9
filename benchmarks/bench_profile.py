"""Where one training step of ours goes (used by bench_vs_xtuner.py; runnable alone):
data (read + tile + encode + collate), ViT, connector, LLM forward, backward, optimizer, and the rest
of a measured `vlmtune train` iteration (DeepSpeed, runner, hooks).

    python benchmarks/bench_profile.py FOLDER DATA.jsonl IMAGES [--dtype bf16] [--steps 16]
"""
import argparse
import time
from contextlib import contextmanager

import torch

RECIPE = 'lora_cpu'


@contextmanager
def module_timer(modules: dict, totals: dict):
    """Accumulate forward seconds per named module through forward pre / post hooks."""
    handles, starts = [], {}
    for name, module in modules.items():
        totals.setdefault(name, 0.0)
        handles.append(module.register_forward_pre_hook(lambda m, a, name=name: starts.__setitem__(name, time.perf_counter())))
        handles.append(module.register_forward_hook(
            lambda m, a, o, name=name: totals.__setitem__(name, totals[name] + time.perf_counter() - starts[name])))
    try:
        yield totals
    finally:
        for handle in handles:
            handle.remove()


def profile_step(folder, data_jsonl, images, dtype='bf16', lora=None, steps=16, batch=2):
    from mmengine.registry import MODELS
    from vlmtune.engine import build_train_dataset, vlm_collate
    from vlmtune.engine.launch import load_recipe
    from vlmtune.engine.recipes import resolve
    from vlmtune.engine.sampler import LengthGroupedSampler
    lora = lora or dict(r=128, alpha=256, dropout=0.05)
    cfg = load_recipe(resolve(RECIPE), [f'model.checkpoint={folder}', 'model.connector=frozen', 'model.vision_tower=frozen',
                               f'model.dtype={dtype}', f'model.lora.r={lora["r"]}', f'model.lora.alpha={lora["alpha"]}',
                               f'model.lora.dropout={lora["dropout"]}'])
    wrapper = MODELS.build(cfg.model)
    wrapper.train()
    dataset = build_train_dataset(folder, data_jsonl, images, max_length=8192, max_tiles=12)
    order = iter(LengthGroupedSampler(dataset, seed=0))  # the recipe's sampler: the batches training sees
    params = [p for p in wrapper.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-4)
    vlm = wrapper.model
    # the decoder: training runs it directly and the LM head on the labelled positions only (model/vlm.py)
    parts = {'ViT': vlm.vision_tower, 'connector': vlm.connector, 'LLM forward': vlm.llm.get_decoder()}
    totals, tiles = {'data': 0.0, 'backward': 0.0, 'optimizer': 0.0}, 0
    for step in range(steps + 1):  # step 0 warms up
        if step == 1:
            totals = {k: 0.0 for k in totals}
            forward_totals = {}
        start = time.perf_counter()
        samples = [dataset[next(order)] for _ in range(batch)]
        collated = vlm_collate(samples)
        tiles += sum(int(s['pixel_values'].shape[0]) for s in samples) if step else 0
        totals['data'] += time.perf_counter() - start
        with module_timer(parts, forward_totals if step else {}):
            loss = wrapper(collated['data'], mode='loss')['loss']
        start = time.perf_counter()
        loss.backward()
        totals['backward'] += time.perf_counter() - start
        start = time.perf_counter()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        totals['optimizer'] += time.perf_counter() - start
    return {**{k: v / steps for k, v in forward_totals.items()}, **{k: v / steps for k, v in totals.items()}}, tiles / steps


def print_profile(folder, data_jsonl, images, measured_s_per_iter=None, dtype='bf16', lora=None, steps=16):
    profile, tiles = profile_step(folder, data_jsonl, images, dtype, lora, steps)
    order = ['data', 'ViT', 'connector', 'LLM forward', 'backward', 'optimizer']
    total = sum(profile[k] for k in order)
    rows = [(k, profile[k]) for k in order]
    if measured_s_per_iter:
        rows.append(('DeepSpeed + runner + hooks (measured iteration - the parts)', max(0.0, measured_s_per_iter - total)))
    whole = measured_s_per_iter or total
    print(f'\nprofile of our step ({dtype}, batch 2, {tiles:.1f} tiles per batch, mean of {steps} steps):')
    print('| part | ms | share |\n|---|---|---|')
    for name, seconds in rows:
        print(f'| {name} | {1000 * seconds:.1f} | {100 * seconds / whole:.0f}% |')
    biggest = max(rows, key=lambda r: r[1])[0]
    hints = {'data': 'decode + the two resizes: the loader runs near that limit (bench_tiling.py); workers overlap it',
             'ViT': "the frozen ViT's attention over 1025 patches per tile: fewer tiles (max_tiles)",
             'backward': 'SDPA backward and the LoRA matmuls (no recomputation: gradient_checkpointing is off)',
             'optimizer': 'a fused / foreach AdamW', 'LLM forward': 'SDPA over the longest row: length grouping',
             'connector': 'the pixel-shuffle copy'}
    print(f'largest: {biggest} -> {hints.get(biggest, "DeepSpeed on CPU: its ZeRO-2 bookkeeping per step")}')
    return profile


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('folder')
    parser.add_argument('data')
    parser.add_argument('images')
    parser.add_argument('--dtype', default='bf16')
    parser.add_argument('--steps', type=int, default=16)
    args = parser.parse_args()
    print_profile(args.folder, args.data, args.images, dtype=args.dtype, steps=args.steps)


if __name__ == '__main__':
    main()
