#!/usr/bin/env python
"""`vlmtune serve` (vLLM's CPU build) on a tiny engine-width InternVL folder, side by side in one run:
N requests one after another vs N concurrent clients (each its own image), and the in-process torch
pipeline answering the same N one by one and as one batch. Prints seconds, requests/s and the ratios.

    python benchmarks/bench_serve.py [--requests 16] [--max-new-tokens 16]
"""
import argparse
import tempfile
import time
from pathlib import Path

from PIL import Image


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--requests', type=int, default=16)
    parser.add_argument('--max-new-tokens', type=int, default=16)
    args = parser.parse_args()
    from vlmtune.bench.samples import COLOURS
    from vlmtune.serve import GenerationConfig, pipeline
    from vlmtune.serve.api_client import ApiPipeline
    from vlmtune.serve.engines import server_for
    from vlmtune.side_envs import ENGINES_DIR, VLLM_PIN, vllm_env
    from vlmtune.tiny import TinySpec, make_tiny_folder

    _, setup_s = timed(vllm_env)
    marker = ENGINES_DIR / VLLM_PIN.replace('==', '-') / '.complete'
    print(f'vLLM environment: {marker.parent} ({marker.read_text().split()[-2]} s to build when first made; '
          f'{setup_s:.1f} s now)')
    root = Path(tempfile.mkdtemp(prefix='bench-serve-'))
    folder = make_tiny_folder(root / 'tinyvl', TinySpec(llm='qwen2', llm_width=128))
    names = list(COLOURS)
    prompts = [(f'Describe image {i}.', Image.new('RGB', (56 + 28 * (i % 4), 56 + 28 * (i // 4 % 3)),
                                                    COLOURS[names[i % len(names)]])) for i in range(args.requests)]
    gen = GenerationConfig(max_new_tokens=args.max_new_tokens)
    server = server_for(folder, 'vllm', log_path=root / 'vllm.log')
    _, start_s = timed(server.start)
    try:
        api = ApiPipeline(server.url)
        api.chat(prompts[0], gen_config=gen)  # warm-up
        sequential, seq_s = timed(lambda: [api.chat(p, gen_config=gen).response.text for p in prompts])
        concurrent, con_s = timed(lambda: api.batch_answers(prompts, gen, workers=args.requests))
    finally:
        server.stop()
    pipe = pipeline(folder, backend='torch')
    pipe.batch_answers(prompts[:1], gen)  # warm-up
    _, torch_seq_s = timed(lambda: [pipe.chat(p, gen_config=gen).response.text for p in prompts])
    _, torch_batch_s = timed(lambda: pipe.batch_answers(prompts, gen))
    n = args.requests
    print(f'server start {start_s:.1f} s; {n} requests, {args.max_new_tokens} new tokens each, 2-core CPU')
    print('| path | seconds | requests/s |\n|---|---|---|')
    for name, seconds in (('vLLM, one after another', seq_s), (f'vLLM, {n} concurrent clients', con_s),
                          ('torch pipeline, one by one', torch_seq_s), (f'torch pipeline, one batch of {n}', torch_batch_s)):
        print(f'| {name} | {seconds:.2f} | {n / seconds:.1f} |')
    print(f'concurrent / sequential on vLLM: {seq_s / con_s:.1f}x; vLLM concurrent / torch batch: '
          f'{torch_batch_s / con_s:.1f}x; answers equal across the two vLLM runs: {concurrent == sequential}')


if __name__ == '__main__':
    main()
