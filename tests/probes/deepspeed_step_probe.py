"""Run in a subprocess (DeepSpeed's process group and ZeRO-3's config are process-wide): two optimizer
steps of TrainingModel under each run's trainability modes, model dtype and DeepSpeed stage, with
gradient checkpointing on, as `vlmtune train` sets DeepSpeed up (the shipped CPU config made to follow
model.dtype; ZeRO-3's config live before the model is built, as xtuner's strategy holds it).

    python deepspeed_step_probe.py DATA IMAGES RUNS.json OUT.json

RUNS: [{'folder', 'data' (build_train_dataset options), 'vision_tower', 'connector', 'llm', 'dtype', 'deepspeed' (none / zero2 / zero3)}]; OUT: one
record per run: {'error'} or {'losses', 'dtypes' (per part, of what trains), 'moved' (per part: how many
LoRA / other tensors), 'frozen_moved', 'unmoved' (tower layers above LLaVA's select_layer left out: they get
no gradient; DeepSpeed's zero gradients with AdamW's weight decay still move them)}."""
import json
import os
import sys
import tempfile
import traceback
from pathlib import Path

import torch

from vlmtune.data.collate import pad_collate
from vlmtune.engine import TrainingModel, build_train_dataset
from vlmtune.engine.launch import deepspeed_with_model_dtype, resolve_deepspeed
from vlmtune.net import free_port

PARTS = ('vision_tower', 'connector', 'llm')
STEPS = 2  # LoRA B starts at zero, so A only moves on the second step


def deepspeed_config(name, dtype, work_dir):
    path = deepspeed_with_model_dtype(resolve_deepspeed(name, has_gpu=False), dtype, work_dir)
    config = json.loads(path.read_text())
    config.update(train_micro_batch_size_per_gpu=1, gradient_accumulation_steps=1, gradient_clipping=1.0)
    return config


def gathered(model, params):
    """{name: fp32 copy} of the named parameters, whole under ZeRO-3 too."""
    import deepspeed
    names = dict(model.named_parameters())
    with deepspeed.zero.GatheredParameters([names[k] for k in params], modifier_rank=None):
        return {k: names[k].detach().float().clone() for k in params}


def one_run(run, batch, work_dir):
    import deepspeed
    from transformers.integrations import HfDeepSpeedConfig
    torch.manual_seed(0)
    config = keep_alive = None
    if run['deepspeed'] != 'none':
        config = deepspeed_config(run['deepspeed'], run['dtype'], work_dir)
        if config['zero_optimization']['stage'] == 3:
            keep_alive = HfDeepSpeedConfig(config)  # noqa: F841  (transformers reads it while it lives)
    wrapper = TrainingModel(run['folder'], vision_tower=run['vision_tower'], connector=run['connector'], llm=run['llm'],
                            lora=dict(r=4, alpha=8, dropout=0.0), dtype=run['dtype'], gradient_checkpointing=True)
    trainable = [p for p in wrapper.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=1e-2)
    if config is None:
        engine = wrapper
    else:
        engine, optimizer, _, _ = deepspeed.initialize(model=wrapper, optimizer=optimizer, config=config)
    names = [k for k, _ in wrapper.model.named_parameters()]
    before = gathered(wrapper.model, names)
    trains = {k for k, p in wrapper.model.named_parameters() if p.requires_grad}
    dtypes = {part: sorted({str(p.dtype).replace('torch.', '') for k, p in wrapper.model.named_parameters()
                            if k.startswith(part + '.') and p.requires_grad}) for part in PARTS}
    losses = []
    for step in range(STEPS):
        loss = engine(batch, mode='loss')['loss']
        losses.append(float(loss))
        if config is None:
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
        else:
            engine.backward(loss)
            engine.step()
    after = gathered(wrapper.model, names)
    moved = {k for k in names if not torch.equal(before[k], after[k])}
    upto = getattr(wrapper.model.vision_tower, 'upto', None)  # LLaVA's tower runs up to its select_layer
    unreached = {k for k in trains if upto is not None and k.startswith('vision_tower.') and '.layers.' in k
                 and int(k.split('.layers.')[1].split('.')[0]) >= upto}
    del keep_alive
    return {'losses': losses, 'dtypes': dtypes,
            'moved': {part: {kind: sum(k.startswith(part + '.') and ('.lora_' in k) == (kind == 'lora')
                                       for k in moved & trains) for kind in ('lora', 'other')} for part in PARTS},
            'frozen_moved': sorted(moved - trains), 'unmoved': sorted(trains - moved - unreached)}


def main(data, images, runs_path, out_path):
    os.environ.update(RANK='0', LOCAL_RANK='0', WORLD_SIZE='1', MASTER_ADDR='127.0.0.1', MASTER_PORT=str(free_port()))
    import deepspeed
    deepspeed.init_distributed(dist_backend='gloo')
    batches, records = {}, []
    for run in json.loads(Path(runs_path).read_text()):
        if run['folder'] not in batches:
            dataset = build_train_dataset(run['folder'], data, images, max_length=256, **run.get('data', {}))
            batches[run['folder']] = pad_collate([dataset[i] for i in range(2)], 0)
        with tempfile.TemporaryDirectory() as work_dir:
            try:
                records.append({**run, **one_run(run, batches[run['folder']], work_dir)})
            except Exception as error:  # noqa: BLE001  (the test reports each run's error)
                records.append({**run, 'error': f'{type(error).__name__}: {error}',
                                'traceback': traceback.format_exc()[-3000:]})
        print(json.dumps({k: records[-1].get(k) for k in (*run, 'losses', 'error') if k != 'folder'}), flush=True)
    Path(out_path).write_text(json.dumps(records, indent=1))


if __name__ == '__main__':
    main(*sys.argv[1:5])
