"""Real `xtuner train` runs of the tiny CPU recipe: plain, ZeRO-2, ZeRO-3, two processes, and a
SIGKILL followed by --resume."""
import json
import os
import signal
import subprocess

import pytest
import torch
from safetensors.torch import load_file

from helpers.training import assert_deepspeed_checkpoint_holds_trainable_only, assert_learns, losses, run, vlmtune_cmd, xtuner_cmd

pytestmark = pytest.mark.trainings

def test_plain_xtuner_run_learns_and_saves_only_trainable_weights(plain_run, ws):
    assert_learns(losses(plain_run))
    assert (plain_run / 'loss_curve.png').stat().st_size > 1000
    assert list(plain_run.rglob('events.out.tfevents.*'))  # tensorboard scalars
    state = torch.load(plain_run / 'iter_20.pth', map_location='cpu', weights_only=False)['state_dict']
    assert state and all('.lora_' in k or k.startswith('model.connector.') for k in state)
    assert any(k.startswith('model.llm.') for k in state) and not any('vision_tower' in k for k in state)
    base = load_file(str(ws['folder'] / 'model.safetensors'))  # the internvl layout's names
    for key in ('1.weight', '3.weight'):
        assert not torch.equal(state['model.connector.' + key], base['mlp1.' + key])
    assert all(v.abs().sum() > 0 for k, v in state.items() if 'lora_B' in k)


def test_deepspeed_zero2_learns(zero2_run, plain_run):
    assert_learns(losses(zero2_run))
    assert_deepspeed_checkpoint_holds_trainable_only(zero2_run)
    # Same start; DeepSpeed's optimizer path then differs slightly from mmengine's (recorded, not asserted).
    assert losses(zero2_run)[1] == pytest.approx(losses(plain_run)[1], abs=1e-5)


def test_deepspeed_zero3_learns_and_matches_zero2(zero2_run, zero3_run):
    work_dir = zero3_run
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


def test_two_nodes_match_one_process(plain_run, ws):
    """XTuner's multi-node variables: two torchrun launches (one process each, gloo on 127.0.0.1) x batch 2
    give the 1-process x batch 4 loss trajectory."""
    from vlmtune.net import free_port
    work_dir, port = ws['root'] / 'two_nodes', free_port()
    cmd = vlmtune_cmd(ws, work_dir, '--cfg-options', 'train_dataloader.batch_size=2')
    nodes = [subprocess.Popen(cmd, cwd=ws['root'], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              env={**os.environ, 'NNODES': '2', 'NODE_RANK': str(rank), 'ADDR': '127.0.0.1',
                                   'PORT': str(port), 'NPROC_PER_NODE': '1'}) for rank in (0, 1)]
    outputs = [node.communicate(timeout=900)[0] for node in nodes]
    assert [node.returncode for node in nodes] == [0, 0], [out[-3000:] for out in outputs]
    assert '--nnodes=2 --node_rank=0 --master_addr=127.0.0.1' in outputs[0]
    one, two = losses(plain_run), losses(work_dir)
    assert max(abs(one[i] - two[i]) for i in sorted(one)) < 1e-4, (one, two)


def test_multi_node_variables_are_checked_before_launch():
    from vlmtune.engine.launch import torchrun_options
    assert torchrun_options(1, 2, {'NODE_RANK': '1', 'ADDR': '10.0.0.1', 'PORT': '29600'}) == \
        ['--nproc_per_node=1', '--nnodes=2', '--node_rank=1', '--master_addr=10.0.0.1', '--master_port=29600']
    with pytest.raises(ValueError, match='NNODES=2 needs ADDR, NODE_RANK'):
        torchrun_options(8, 2, {'PORT': '29600'})
