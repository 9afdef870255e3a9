"""Real `xtuner train` runs of the tiny CPU recipe: plain, ZeRO-2, ZeRO-3, two processes, and a
SIGKILL followed by --resume."""
import hashlib
import json
import os
import signal
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

from conftest import REPO
from train_data import assert_equal_trained_tokens, make_colour_dataset
from vlmtune.engine import build_train_dataset
from vlmtune.engine.launch import shortcut_options

RECIPE = REPO / 'recipes' / 'tiny' / 'lora_cpu.py'


@pytest.fixture(scope='module')
def ws(tiny_folder, tmp_path_factory):
    folder = tiny_folder('internlm2', '6b')
    root = tmp_path_factory.mktemp('train')
    data, images = make_colour_dataset(root, n=32)
    assert_equal_trained_tokens(build_train_dataset(folder, data, images, max_length=512, max_tiles=2))
    return {'folder': folder, 'data': data, 'images': images, 'root': root,
            'options': shortcut_options(folder, data, images)}


def folder_hash(folder):
    digest = hashlib.sha256()
    for path in sorted(folder.rglob('*')):
        if path.is_file():
            digest.update(path.name.encode() + path.read_bytes())
    return digest.hexdigest()


def xtuner_cmd(ws, work_dir, *extra):
    return [sys.executable, '-m', 'xtuner.tools.train', str(RECIPE), '--work-dir', str(work_dir),
            '--cfg-options', *ws['options'], *extra]


def vlmtune_cmd(ws, work_dir, *extra):
    return [sys.executable, '-m', 'vlmtune.cli', 'train', str(RECIPE), '--work-dir', str(work_dir),
            '--checkpoint', str(ws['folder']), '--data', str(ws['data']), '--images', str(ws['images']), *extra]


def run(cmd, cwd):
    result = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, (result.stdout[-2000:], result.stderr[-4000:])
    return result


def losses(work_dir):
    history = json.loads((work_dir / 'loss_history.json').read_text())['train']
    return {h['iter']: h['loss'] for h in history}


def assert_learns(trajectory):
    values = [trajectory[i] for i in sorted(trajectory)]
    assert len(values) == 20
    assert sum(values[-5:]) / 5 < sum(values[:5]) / 5 - 0.2, values


@pytest.fixture(scope='module')
def plain_run(ws):
    before = folder_hash(ws['folder'])
    work_dir = ws['root'] / 'plain'
    run(xtuner_cmd(ws, work_dir), ws['root'])
    assert folder_hash(ws['folder']) == before  # the base folder is never written
    return work_dir


def test_plain_xtuner_run_learns_and_saves_only_trainable_weights(plain_run, ws):
    assert_learns(losses(plain_run))
    assert (plain_run / 'loss_curve.png').stat().st_size > 1000
    assert list(plain_run.rglob('events.out.tfevents.*'))  # tensorboard scalars
    state = torch.load(plain_run / 'iter_20.pth', map_location='cpu', weights_only=False)['state_dict']
    assert state and all('.lora_' in k or k.startswith('model.mlp1.') for k in state)
    assert any('language_model' in k for k in state) and not any('vision_model' in k for k in state)
    base = load_file(str(ws['folder'] / 'model.safetensors'))
    for key in ('mlp1.1.weight', 'mlp1.3.weight'):
        assert not torch.equal(state['model.' + key], base[key])
    assert all(v.abs().sum() > 0 for k, v in state.items() if 'lora_B' in k)


@pytest.fixture(scope='module')
def zero2_run(ws):
    work_dir = ws['root'] / 'zero2'
    out = run(vlmtune_cmd(ws, work_dir, '--deepspeed', 'zero2'), ws['root'])
    assert 'zero2_cpu.json' in out.stdout  # the CPU-safe variant was picked
    return work_dir


def assert_deepspeed_checkpoint_holds_trainable_only(work_dir):
    # ZeRO-2 writes mp_rank_00_model_states.pt, ZeRO-3 zero_pp_rank_0_mp_rank_00_model_states.pt.
    path = next((work_dir / 'iter_20.pth').glob('*model_states.pt'))
    states = torch.load(path, map_location='cpu', weights_only=False)['module']
    assert states and all('.lora_' in k or k.startswith('model.mlp1.') for k in states)


def test_deepspeed_zero2_learns(zero2_run, plain_run):
    assert_learns(losses(zero2_run))
    assert_deepspeed_checkpoint_holds_trainable_only(zero2_run)
    # Same start; DeepSpeed's optimizer path then differs slightly from mmengine's (recorded, not asserted).
    assert losses(zero2_run)[1] == pytest.approx(losses(plain_run)[1], abs=1e-5)


def test_deepspeed_zero3_learns_and_matches_zero2(zero2_run, ws):
    work_dir = ws['root'] / 'zero3'
    out = run(vlmtune_cmd(ws, work_dir, '--deepspeed', 'zero3'), ws['root'])
    assert 'zero3_cpu.json' in out.stdout
    trajectory, reference = losses(work_dir), losses(zero2_run)
    assert_learns(trajectory)
    assert max(abs(trajectory[i] - reference[i]) for i in reference) < 1e-4
    assert_deepspeed_checkpoint_holds_trainable_only(work_dir)


def test_two_processes_match_one(plain_run, ws):
    """2 processes x batch 2 vs 1 process x batch 4: same samples per step, same loss trajectory."""
    work_dir = ws['root'] / 'two_procs'
    run(vlmtune_cmd(ws, work_dir, '--nproc', '2', '--cfg-options', 'train_dataloader.batch_size=2'), ws['root'])
    one, two = losses(plain_run), losses(work_dir)
    diffs = [abs(one[i] - two[i]) for i in sorted(one)]
    (ws['root'] / 'two_procs_table.json').write_text(json.dumps({'one': one, 'two': two}))
    assert max(diffs) < 1e-4, diffs


def test_sigkill_then_resume_reaches_same_final_loss(plain_run, ws):
    work_dir = ws['root'] / 'killed'
    proc = subprocess.Popen(xtuner_cmd(ws, work_dir), cwd=ws['root'], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    killed_after = None
    for line in proc.stdout:
        if 'Saving checkpoint at 10 iterations' in line:
            os.killpg(proc.pid, signal.SIGKILL)
            killed_after = line
            break
    proc.wait(timeout=120)
    assert killed_after and proc.returncode == -signal.SIGKILL
    assert not (work_dir / 'iter_20.pth').exists()
    for checkpoint in work_dir.glob('iter_*.pth'):  # every checkpoint on disk is whole
        torch.load(checkpoint, map_location='cpu', weights_only=False)
    run(vlmtune_cmd(ws, work_dir, '--resume'), ws['root'])
    resumed, reference = losses(work_dir), losses(plain_run)
    assert min(resumed) > 5  # only the iterations after the resume point were run again
    assert abs(resumed[20] - reference[20]) < 1e-4, (resumed[20], reference[20])
