#!/usr/bin/env python
"""Training throughput beside LLaMA-Factory 0.9.5, in one invocation, on the same tiny InternVL model and data
as bench_vs_xtuner.py: LLaMA-Factory's own SFT/LoRA path (`run_exp`, what `llamafactory-cli train cfg.yaml`
calls) on the folder in transformers' native -hf layout (our converter's output), and `vlmtune train` on the
official folder; neither under DeepSpeed. Prints s/iter (iterations `--skip`+1..N), samples/s, tokens/s and
peak RSS of each, and their ratio to LLaMA-Factory's fp32 row.

    python benchmarks/bench_vs_llamafactory.py [--iters 60] [--skip 10] [--rows 32] [--dtypes bf16 fp32] [--repeats 3]

Both: LoRA r 128 / alpha 256 / dropout 0.05 on the LLM's linear layers, vision tower and connector frozen, batch 2,
448 px, <= 12 tiles (+ thumbnail), batches grouped by length, AdamW lr 1e-4 (weight decay 0.05, clip 1.0) with
3% warm-up then cosine, SDPA attention, no gradient checkpointing. The -hf layout is a Llama text model, so
LLaMA-Factory's LoRA sits on q/k/v_proj where ours sits on InternLM2's fused wqkv. LLaMA-Factory's bf16 row
loads a bf16 copy of the folder (it loads the checkpoint's dtype) and trains under CPU bf16 autocast (use_cpu).
LLaMA-Factory runs from a cached side environment (vlmtune/side_envs.py PINS) first on its subprocess' PYTHONPATH only.
tokens/s counts our tokenisation of the rows for both (LLaMA-Factory's differs by a few system-prompt tokens).
"""
import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

import torch
import yaml

from bench_vs_xtuner import (LORA, LR, SHAPES, alternate, make_data, measure, our_command, print_rows,
                             tokens_per_sample)
from vlmtune.side_envs import side_env


# Runs in the side environment: LLaMA-Factory's own entry point, plus a callback that prints each optimizer
# step's wall time (on_step_end to on_step_end: data, forward, backward, optimizer, logging, epoch restarts) in
# mmengine's log format, so bench_vs_xtuner.measure reads both frameworks alike. trainer_log.jsonl's
# elapsed_time has whole seconds only.
LAUNCHER = '''
import time
from transformers import TrainerCallback
from llamafactory.train.tuner import run_exp

class StepTimer(TrainerCallback):
    def on_train_begin(self, args, state, control, **kwargs):
        self.last = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        now = time.perf_counter()
        print(f'Iter(train) [{state.global_step}/{state.max_steps}] time: {now - self.last:.4f}', flush=True)
        self.last = now

run_exp(callbacks=[StepTimer()])  # reads the YAML named by sys.argv[1], as llamafactory-cli train does
'''


def llamafactory_env() -> Path:
    return side_env('llamafactory-0.9.5')


def llamafactory_dataset(data_json: Path, images: Path, out: Path) -> Path:
    """bench_vs_xtuner's LLaVA rows as a LLaMA-Factory dataset_dir: sharegpt formatting (from human/gpt is its
    default tagging), `images` a list of absolute paths."""
    out.mkdir(parents=True)
    rows = [{'conversations': row['conversations'], 'images': [str(images / row['image'])]}
            for row in json.loads(data_json.read_text())]
    (out / 'bench.json').write_text(json.dumps(rows))
    (out / 'dataset_info.json').write_text(json.dumps({'bench': {
        'file_name': 'bench.json', 'formatting': 'sharegpt',
        'columns': {'messages': 'conversations', 'images': 'images'}}}))
    return out


def llamafactory_config(model_hf: Path, dataset_dir: Path, dtype: str, iters: int, work: Path) -> Path:
    config = dict(
        model_name_or_path=str(model_hf), cache_dir=str(work / 'hf-cache'), flash_attn='sdpa',
        image_max_pixels=2048 * 2048,  # default 768 * 768 would shrink 1344x896 before tiling; ours never does
        stage='sft', do_train=True, finetuning_type='lora', lora_rank=LORA['r'], lora_alpha=LORA['alpha'],
        lora_dropout=LORA['dropout'],
        # the LLM's linears; LLaMA-Factory drops the vision tower's q/k/v_proj (freeze_vision_tower), as 'all' does
        lora_target='q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj',
        freeze_vision_tower=True, freeze_multi_modal_projector=True, disable_gradient_checkpointing=True,
        dataset='bench', dataset_dir=str(dataset_dir), template='intern_vl', cutoff_len=8192,
        preprocessing_num_workers=1, overwrite_cache=True, dataloader_num_workers=0,
        group_by_length=True,  # ours batches similar lengths together (the official group_by_length)
        per_device_train_batch_size=2, gradient_accumulation_steps=1, max_steps=iters, learning_rate=LR,
        lr_scheduler_type='cosine', warmup_ratio=0.03, weight_decay=0.05, max_grad_norm=1.0, seed=0,
        logging_steps=1, save_strategy='no', report_to='none', output_dir=str(work), overwrite_output_dir=True,
        # without a GPU transformers refuses bf16 unless told the run is on the CPU (then bf16 is CPU autocast)
        use_cpu=not torch.cuda.is_available(), bf16=dtype == 'bf16')
    path = work.parent / f'{work.name}.yaml'
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--iters', type=int, default=60)
    parser.add_argument('--skip', type=int, default=10, help='iterations left out of the mean (warm-up)')
    parser.add_argument('--rows', type=int, default=32)
    parser.add_argument('--dtypes', nargs='+', default=['bf16', 'fp32'], choices=['bf16', 'fp32'])
    parser.add_argument('--repeats', type=int, default=1, help='runs of each row, in alternating order; the '
                        'table shows each row\'s median run (this machine drifts by +-15%% between runs)')
    args = parser.parse_args(argv)
    env_root = llamafactory_env()
    from vlmtune.formats import load, save
    from vlmtune.tiny import TinySpec, make_tiny_folder
    root = Path(tempfile.mkdtemp(prefix='bench-vs-llamafactory-'))
    folder = make_tiny_folder(root / 'model', TinySpec(**SHAPES['tiny']))
    model, tokenizer = load(folder)
    lf_dtypes = ['fp32'] + [d for d in args.dtypes if d != 'fp32']  # LLaMA-Factory's fp32 row: the baseline
    model_hf = {dtype: save(model, tokenizer, root / f'model-hf-{dtype}', layout='internvl_hf', dtype=dtype)
                for dtype in lf_dtypes}
    data_json, data_jsonl, images = make_data(root / 'data', args.rows)
    dataset_dir = llamafactory_dataset(data_json, images, root / 'data-llamafactory')
    tokens = tokens_per_sample(folder, data_jsonl, images)
    print(f'model: tiny InternVL {folder} (-hf copies for LLaMA-Factory); {args.rows} rows, {tokens:.0f} '
          f'tokens/sample; batch 2, LoRA r {LORA["r"]}, vision tower + connector frozen, no DeepSpeed; {args.iters} '
          f'iterations, mean of {args.skip + 1}..{args.iters}; LLaMA-Factory from {env_root}', flush=True)
    pythonpath = os.pathsep.join(filter(None, [str(env_root), os.environ.get('PYTHONPATH')]))

    def llamafactory_run(dtype):
        def run(rep):
            config = llamafactory_config(model_hf[dtype], dataset_dir, dtype, args.iters, root / f'work-lf-{dtype}-{rep}')
            # `env` execs the interpreter: the side env reaches this subprocess only, and wait4 still sees it
            return measure(f'LLaMA-Factory 0.9.5 ({dtype})', ['env', f'PYTHONPATH={pythonpath}', sys.executable,
                                                              '-c', LAUNCHER, str(config)], root, args.skip, tokens)
        return run

    def our_run(dtype):  # as bench_vs_xtuner's rows, without DeepSpeed (the LLaMA-Factory setup)
        return lambda rep: measure(f'vlmtune train ({dtype})', our_command(
            folder, data_jsonl, images, root / f'work-{dtype}-{rep}', dtype, args.iters), root, args.skip, tokens)
    runners = [llamafactory_run(dtype) for dtype in lf_dtypes] + [our_run(dtype) for dtype in args.dtypes]
    runs = alternate(runners, args.repeats)
    print_rows(runs, 'ours vs LLaMA-Factory (fp32)', args.repeats)
    (root / 'results.json').write_text(json.dumps(runs, indent=1))
    print(f'\nresults: {root / "results.json"}')


if __name__ == '__main__':
    main()
