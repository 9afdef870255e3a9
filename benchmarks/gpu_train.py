#!/usr/bin/env python
"""LoRA training throughput and peak GPU memory of an InternVL2-2B-shaped model (InternViT-300M-448px
+ InternLM2-1.8B widths and depths, random bf16 weights, LLM LoRA r16, vision tower frozen, connector full):
padded vs packed batches and LoRA vs QLoRA, each in its own process, on a mixed-length dataset at
448px x up to 6 tiles. `benchmarks/gpu_train.sh` adds the ZeRO-2 row (`vlmtune train`).

    python benchmarks/gpu_train.py [--shape 2b|tiny] [--device cuda|cpu] [--steps 20] [--modes padded packed qlora]

`--shape tiny --device cpu` runs the same code on a tiny model (CI smoke test).
"""
import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_packing import make_data, run_mode  # noqa: E402

# InternVL2-2B = InternViT-300M-448px + mlp1 + InternLM2-chat-1.8B (see the model's config.json).
SHAPES = {
    '2b': dict(llm='internlm2', vit='300m', template='internlm2-chat', image_size=448, vit_width=1024, vit_layers=24,
               vit_heads=16, llm_width=2048, llm_layers=24, llm_heads=16, llm_kv_heads=8, llm_intermediate=8192,
               llm_vocab_rows=92553, max_dynamic_patch=6),
    'tiny': dict(llm='internlm2', vit='300m', template='internlm2-chat', image_size=56, vit_width=32, vit_layers=2,
                 vit_heads=2, llm_width=64, llm_layers=2, llm_heads=4, llm_kv_heads=2, llm_intermediate=128,
                 max_dynamic_patch=6),
}


def build_folder(out: Path, shape: str) -> Path:
    from vlmtune.tiny import TinySpec, make_tiny_folder
    return make_tiny_folder(out, TinySpec(**SHAPES[shape]), dtype='bf16' if shape == '2b' else 'fp32')


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--shape', choices=sorted(SHAPES), default='2b')
    parser.add_argument('--device', default='cuda')
    parser.add_argument('--steps', type=int, default=20)
    parser.add_argument('--batch-size', type=int, default=4, help='padded rows per step')
    parser.add_argument('--max-length', type=int, default=8192, help='packed row length')
    parser.add_argument('--samples', type=int, default=200)
    parser.add_argument('--modes', nargs='+', default=['padded', 'packed', 'qlora'])
    parser.add_argument('--folder', help='reuse a model folder built by an earlier run')
    parser.add_argument('--json', help='also write the rows here')
    parser.add_argument('--child', nargs=3, metavar=('MODE', 'FOLDER', 'DATA'), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(run_mode(*args.child, args.steps, args.batch_size, args.max_length, args.device,
                                  gradient_checkpointing=True, lr=1e-5)))
        return 0
    tile = SHAPES[args.shape]['image_size']
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        folder = Path(args.folder) if args.folder else build_folder(tmp / 'model', args.shape)
        data = make_data(tmp / 'data', args.samples, tile=tile)
        rows = []
        for mode in args.modes:
            out = subprocess.run([sys.executable, __file__, '--steps', str(args.steps), '--batch-size',
                                  str(args.batch_size), '--max-length', str(args.max_length), '--device',
                                  args.device, '--child', mode, str(folder), str(data)], capture_output=True, text=True)
            if out.returncode != 0:  # e.g. QLoRA without bitsandbytes: report the row, keep going
                reason = (out.stderr.strip().splitlines() or ['failed'])[-1]
                rows.append({'mode': mode, 'error': reason[:160]})
            else:
                rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    print(f"{args.shape} model, {args.device}, LoRA r16, {args.steps} timed steps")
    print(f"{'mode':8s} {'samples/s':>10s} {'peak GiB':>9s}")
    for r in rows:
        print(f"{r['mode']:8s} {r['samples_per_s']:10.2f} {r['peak_gib']:9.2f}" if 'error' not in r
              else f"{r['mode']:8s} not run: {r['error']}")
    done = {r['mode']: r for r in rows if 'error' not in r}
    if 'padded' in done and 'packed' in done:
        print(f"packed / padded samples/s: {done['packed']['samples_per_s'] / done['padded']['samples_per_s']:.2f}x")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == '__main__':
    sys.exit(main())
