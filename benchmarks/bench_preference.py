"""Benchmark: one MPO training step (policy + reference forward, backward, AdamW) our way beside the official
trainer's way, in one run, each in its own process (peak RSS is per process):

* ours: LoRA on the LLM, the reference = the disabled adapters, each pair's images encoded once for the chosen and
  rejected halves and for the reference (vlmtune/engine/preference_model.py);
* repeated tiles (the official trainer): the tiles repeated for the rejected half, and again for the reference, so
  the vision tower encodes every image four times per step — same loss and gradients (tests/test_preference_data.py);
* a frozen copy as the reference (what a full run needs; the same log-probs as the disabled adapters): its memory.

    python benchmarks/bench_preference.py            # a 224 px, 6-layer tower; 8 pairs of <= 6 tiles; 6 steps
    python benchmarks/bench_preference.py --quick

Not measured here: LLaMA-Factory's `stage: dpo` (its side environment trains SFT in bench_vs_llamafactory.py).
"""
import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def make_inputs(root: Path, pairs: int) -> tuple:
    import numpy as np
    from PIL import Image
    from vlmtune.tiny import TinySpec, make_tiny_folder
    folder = make_tiny_folder(root / 'model', TinySpec(image_size=224, vit_width=128, vit_layers=6, vit_heads=4,
                                                       llm_width=128, llm_layers=4, llm_intermediate=256))
    rng, rows = np.random.default_rng(0), []
    (root / 'images').mkdir()
    for k in range(pairs):
        size = [(448, 336), (672, 448), (224, 224)][k % 3]
        Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(root / 'images' / f'{k}.jpg')
        rows.append({'image': f'{k}.jpg', 'question': 'What is in the picture?', 'chosen': 'a noisy picture of colours',
                     'rejected': 'a cat'})
    (root / 'pairs.jsonl').write_text(''.join(json.dumps(r) + '\n' for r in rows))
    return folder, root / 'pairs.jsonl', root / 'images'


def run_one(way: str, folder: str, pairs: str, images: str, steps: int, batch: int) -> dict:
    """In this process: `steps` optimizer steps, the first one a warm-up; s/step and peak RSS."""
    import torch
    from vlmtune.engine.preference_model import PreferenceModel
    from vlmtune.formats import data_spec_for_folder
    from vlmtune.preference.data import PreferenceDataset, preference_collate
    from vlmtune.preference.logps import sequence_logps
    from vlmtune.preference.losses import preference_loss
    torch.manual_seed(0)
    model = PreferenceModel(checkpoint=folder, vision_tower='frozen', connector='frozen', llm='lora',
                            lora=dict(r=16, alpha=32, dropout=0.0), dtype='fp32', gradient_checkpointing=False,
                            reference='copy' if way == 'copy' else 'adapters')
    dataset = PreferenceDataset(pairs, images, data_spec_for_folder(folder, 6, 4096), progress=False)
    batches = [preference_collate([dataset[(s * batch + i) % len(dataset)] for i in range(batch)], 0)
               for s in range(steps)]
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    times = []
    for data in batches:
        started = time.perf_counter()
        if way in ('ours', 'copy'):
            loss = model(data)['loss']
        else:  # the official way: tiles repeated for the rejected half, and the reference encodes them again
            chosen, rejected, nll = sequence_logps(model.model, data, share_images=False)
            with torch.no_grad(), model.model.llm.disable_adapter():
                ref = sequence_logps(model.model, data, share_images=False)
            loss, _ = preference_loss(model.weights, chosen, rejected, ref[0], ref[1], model.beta, 0.0, model.running,
                                      model.rpo_alpha, nll)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        times.append(time.perf_counter() - started)
    return {'s_per_step': sum(times[1:]) / (len(times) - 1),
            'peak_rss_mb': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--pairs', type=int, default=8)
    parser.add_argument('--batch', type=int, default=2)
    parser.add_argument('--steps', type=int, default=6)
    parser.add_argument('--quick', action='store_true')
    parser.add_argument('--child', nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        way, folder, pairs, images = args.child
        print(json.dumps(run_one(way, folder, pairs, images, args.steps, args.batch)))
        return
    steps = 3 if args.quick else args.steps
    with tempfile.TemporaryDirectory() as tmp:
        folder, pairs, images = make_inputs(Path(tmp), args.pairs)
        rows = {}
        for way, key in (('repeated tiles (official)', 'repeated'), ('ours', 'ours'),
                         ('ours, frozen-copy reference', 'copy')):
            done = subprocess.run([sys.executable, __file__, '--steps', str(steps), '--batch', str(args.batch),
                                   '--child', key, str(folder), str(pairs), str(images)],
                                  capture_output=True, text=True, timeout=1800)
            if done.returncode != 0:
                raise SystemExit(done.stderr[-3000:])
            rows[way] = json.loads(done.stdout.strip().splitlines()[-1])
        base = rows['repeated tiles (official)']
        print(f'| MPO step ({args.batch} pairs, <= 6 tiles of 224 px) | s/step | peak RSS MB | speed vs repeated |\n'
              '|---|---|---|---|')
        for way, row in rows.items():
            print(f"| {way} | {row['s_per_step']:.3f} | {row['peak_rss_mb']:.0f} | "
                  f"{base['s_per_step'] / row['s_per_step']:.2f}x |")


if __name__ == '__main__':
    main()
