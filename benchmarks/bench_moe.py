#!/usr/bin/env python
"""Dense vs MoE (MoE-LLaVA upcycling, E 4, top-2, every other layer) on the same tiny Qwen2 InternVL model,
side by side in one run: training tokens/s (forward + backward, capacity factor 1.5) and inference
tokens/s (dropless), with parameters total and active per token.

    python benchmarks/bench_moe.py [--steps 10] [--batch 4] [--length 256] [--width 256] [--layers 4]
"""
import argparse
import tempfile
import time
from pathlib import Path

import torch


def timed(model, batch, steps, train):
    model.train(train)
    context = torch.enable_grad() if train else torch.no_grad()
    with context:
        for step in range(steps + 1):  # step 0 warms up
            if step == 1:
                start = time.perf_counter()
            out = model(**batch)
            if train:
                out.loss.backward()
                model.zero_grad(set_to_none=True)
    return batch['input_ids'].numel() * steps / (time.perf_counter() - start)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--steps', type=int, default=10)
    parser.add_argument('--batch', type=int, default=4)
    parser.add_argument('--length', type=int, default=256)
    parser.add_argument('--width', type=int, default=256)
    parser.add_argument('--layers', type=int, default=4)
    args = parser.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    from vlmtune.formats import load
    from vlmtune.model.moe.report import parameter_summary
    from vlmtune.tiny import TinySpec, make_tiny_folder
    with tempfile.TemporaryDirectory() as tmp:
        folder = make_tiny_folder(Path(tmp) / 'dense', TinySpec(llm='qwen2', llm_width=args.width, llm_heads=8,
                                                                llm_kv_heads=8, llm_intermediate=4 * args.width,
                                                                llm_layers=args.layers))
        models = {'dense': load(folder)[0],
                  'moe E4 k2': load(folder, spec_overrides={'llm': {'moe': {'num_experts': 4, 'top_k': 2}}})[0]}
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(3, 300, (args.batch, args.length), generator=generator)
    context = models['dense'].img_context_token_id
    ids[ids == context] = 3
    ids[:, 1:1 + models['dense'].num_image_token] = context
    batch = {'pixel_values': torch.randn(args.batch, 3, 56, 56, generator=generator), 'input_ids': ids,
             'attention_mask': torch.ones_like(ids), 'image_flags': torch.ones(args.batch, 1, dtype=torch.long),
             'labels': ids}
    rows = []
    for name, model in models.items():
        params = parameter_summary(model.llm)
        rows.append((name, timed(model, batch, args.steps, True), timed(model, batch, args.steps, False),
                     params['total'], params['active_per_token']))
    print(f"{'model':10s} {'train tok/s':>12s} {'infer tok/s':>12s} {'LLM params':>11s} {'active/token':>13s}")
    for name, train, infer, total, active in rows:
        print(f'{name:10s} {train:12.0f} {infer:12.0f} {total:11,d} {active:13,d}')
    (_, dense_train, dense_infer, dense_total, _), (_, moe_train, moe_infer, moe_total, moe_active) = rows
    print(f'moe / dense: train {moe_train / dense_train:.2f}x, inference {moe_infer / dense_infer:.2f}x, '
          f'parameters {moe_total / dense_total:.2f}x total, {moe_active / dense_total:.2f}x active')


if __name__ == '__main__':
    main()
