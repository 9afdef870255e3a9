"""Trainability modes x model dtype x DeepSpeed stage, gradient checkpointing on: every run trains two
steps, everything trainable moves, nothing frozen moves; DeepSpeed trains one dtype (the model's), and
ZeRO-2 / ZeRO-3 give the plain run's losses. Then `vlmtune train` itself on the two failures users hit:
a bf16 model with a full connector beside LoRA under ZeRO-2 ("mat1 and mat2 must have the same dtype"),
and LLaVA stage 2 under ZeRO-3 with gradient checkpointing (CheckpointError "recomputed shape [0]")."""
import json
import math
import subprocess
import sys

import pytest

from helpers.probes import REPO
from helpers.training import run, vlmtune_cmd
from helpers.training_data import make_colour_dataset
from vlmtune.engine.launch import deepspeed_with_model_dtype, resolve_deepspeed
from vlmtune.engine.recipes import RecipeError
from vlmtune.tiny import TinyLlavaSpec, make_tiny_llava_folder

pytestmark = pytest.mark.trainings

PARTS = ('vision_tower', 'connector', 'llm')
# each mode in each part at least once, with LoRA beside full / partial parameters (the dtype-mix case)
MODES = [('frozen', 'full', 'lora'), ('lora', 'lora', 'full'), ('partial:1', 'lora', 'partial:1'),
         ('full', 'frozen', 'frozen')]
SETTINGS = [(dtype, stage) for dtype in ('fp32', 'bf16') for stage in ('none', 'zero2', 'zero3')]
LLAVA_MODES = [('lora', 'full', 'lora')]  # the CLIP tower's own checkpointed layers, LoRA in them


@pytest.fixture(scope='module')
def records(tiny_folder, tmp_path_factory):
    root = tmp_path_factory.mktemp('deepspeed-modes')
    data, images = make_colour_dataset(root, n=4)
    llava = make_tiny_llava_folder(root / 'llava', TinyLlavaSpec(image_size=56))
    runs = [dict(folder=str(folder), vision_tower=v, connector=c, llm=l, dtype=dtype, deepspeed=stage, data=data_options)
            for folder, modes, data_options in ((tiny_folder('qwen2', '300m'), MODES, {'max_tiles': 2}),
                                                (llava, LLAVA_MODES, {}))
            for v, c, l in modes for dtype, stage in SETTINGS]
    (root / 'runs.json').write_text(json.dumps(runs))
    result = subprocess.run([sys.executable, str(REPO / 'tests' / 'probes' / 'deepspeed_step_probe.py'), str(data),
                             str(images), str(root / 'runs.json'), str(root / 'out.json')],
                            capture_output=True, text=True, timeout=1200, cwd=root)
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads((root / 'out.json').read_text())
    return {(r['folder'] == str(llava), r['vision_tower'], r['connector'], r['llm'], r['dtype'], r['deepspeed']): r
            for r in out}


@pytest.mark.parametrize('dtype,stage', SETTINGS)
@pytest.mark.parametrize('llava,vision_tower,connector,llm', [(False, *m) for m in MODES] + [(True, *m) for m in LLAVA_MODES])
def test_modes_train_under_every_dtype_and_stage(records, llava, vision_tower, connector, llm, dtype, stage):
    record = records[llava, vision_tower, connector, llm, dtype, stage]
    assert 'error' not in record, record.get('traceback')
    assert all(math.isfinite(x) for x in record['losses']) and record['losses'][1] < record['losses'][0]
    assert not record['unmoved'] and not record['frozen_moved'], record
    for part, mode in zip(PARTS, (vision_tower, connector, llm)):
        moved = record['moved'][part]
        assert (moved['lora'] > 0) == (mode == 'lora') and (moved['other'] > 0) == (mode in ('full', 'partial:1')), \
            (part, mode, moved)
    trained_dtypes = {d for part in PARTS for d in record['dtypes'][part]}
    if stage != 'none':  # DeepSpeed trains the model's dtype throughout (fp32 masters kept by its optimizer)
        assert trained_dtypes == {'float32' if dtype == 'fp32' else 'bfloat16'}, record['dtypes']
    if stage != 'none' and dtype == 'fp32':  # ZeRO shards the same arithmetic
        plain = records[llava, vision_tower, connector, llm, dtype, 'none']['losses']
        assert record['losses'] == pytest.approx(plain, abs=1e-4)


def test_deepspeed_config_follows_the_model_dtype(tmp_path):
    shipped = resolve_deepspeed('zero2', has_gpu=False)
    assert deepspeed_with_model_dtype(shipped, 'fp32', tmp_path) == shipped      # agrees: used as is
    copy = deepspeed_with_model_dtype(shipped, 'bf16', tmp_path / 'work')
    config = json.loads(copy.read_text())
    assert copy.parent == tmp_path / 'work' and config['bf16']['enabled'] is True and config['fp16']['enabled'] is False
    assert json.loads(shipped.read_text())['bf16']['enabled'] is False              # the shipped file is not touched
    mine = tmp_path / 'mine.json'
    mine.write_text(json.dumps({'zero_optimization': {'stage': 2}, 'bf16': {'enabled': 'auto'}}))
    assert json.loads(deepspeed_with_model_dtype(mine, 'bf16', tmp_path / 'w2').read_text())['bf16']['enabled'] is True
    mine.write_text(json.dumps({'zero_optimization': {'stage': 2}, 'bf16': {'enabled': False}}))
    with pytest.raises(RecipeError, match=r'mine.json: bf16.enabled is False but model.dtype is .bf16.'):
        deepspeed_with_model_dtype(mine, 'bf16', tmp_path / 'w3')


def test_cli_bf16_full_connector_beside_lora_under_zero2(ws):
    work_dir = ws['root'] / 'bf16-zero2'
    run(vlmtune_cmd(ws, work_dir, '--deepspeed', 'zero2', '--cfg-options', 'model.dtype=bf16', 'model.connector=full',
                    'train_cfg.max_iters=2', 'default_hooks.checkpoint.interval=2'), ws['root'])
    assert json.loads((work_dir / 'zero2_cpu.json').read_text())['bf16']['enabled'] is True


def test_cli_llava_stage_two_under_zero3_with_gradient_checkpointing(tmp_path):
    from vlmtune.tiny import make_tiny_llava_parts
    parts = make_tiny_llava_parts(tmp_path / 'parts', spec=TinyLlavaSpec(image_size=56))
    data, images = make_colour_dataset(tmp_path, n=8)
    common = ['--vision-tower', str(parts['vision_tower']), '--llm', str(parts['llm']), '--data', str(data),
              '--images', str(images)]
    cli = [sys.executable, '-m', 'vlmtune.cli', 'train']
    iters = ['train_cfg.max_iters=2', 'default_hooks.checkpoint.interval=2']
    stage1 = tmp_path / 'stage1'
    run([*cli, 'llava_pretrain_cpu', *common, '--work-dir', str(stage1), '--cfg-options', *iters], tmp_path)
    run([*cli, 'llava_lora_cpu', *common, '--deepspeed', 'zero3', '--work-dir', str(tmp_path / 'stage2'), '--cfg-options',
         f'model.parts.connector.pretrained={stage1}', f'train_dataloader.dataset.parts.connector.pretrained={stage1}',
         'model.gradient_checkpointing=True', *iters], tmp_path)
    assert (tmp_path / 'stage2' / 'iter_2.pth').exists()
