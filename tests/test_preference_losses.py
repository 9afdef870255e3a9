"""The preference losses (vlmtune/preference/losses.py) against TRL 0.10.1's DPOTrainer.dpo_loss (the version the
official InternVL 3.0 tree trains MPO with, in a cached side environment): per-pair losses and rewards for every
loss type on random log-probs, bco_pair's running mean over 3 steps; the MPO combination equals the worked example
of the training notes (1.761548, then 1.393039)."""
import json
import os
import subprocess
import sys

import pytest
import torch

from helpers.probes import REPO
from vlmtune.preference.losses import LOSS_TYPES, MPO, RunningMean, pair_losses, preference_loss
from vlmtune.side_envs import side_env

PROBE = REPO / 'tests' / 'probes' / 'trl_probe.py'


def random_steps(seed=0, steps=3, pairs=6):
    gen = torch.Generator().manual_seed(seed)
    return [[(-40 * torch.rand(pairs, generator=gen) - 5).tolist() for _ in range(4)] for _ in range(steps)]


@pytest.fixture(scope='module', params=[0.0, 0.1], ids=['eps0', 'eps0.1'])
def theirs(request, tmp_path_factory):
    root = tmp_path_factory.mktemp('trl')
    cases = {'beta': 0.1, 'label_smoothing': request.param, 'types': list(LOSS_TYPES), 'steps': random_steps()}
    (root / 'cases.json').write_text(json.dumps(cases))
    env = dict(os.environ, PYTHONPATH=str(side_env('trl-0.10.1')))
    done = subprocess.run([sys.executable, str(PROBE), str(root / 'cases.json'), str(root / 'out.json')],
                          cwd=PROBE.parent, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return cases, json.loads((root / 'out.json').read_text())


@pytest.mark.side_envs
@pytest.mark.parametrize('loss_type', LOSS_TYPES)
def test_every_loss_type_equals_trl_0_10_1(theirs, loss_type):
    cases, out = theirs
    running = RunningMean()
    for step, (losses, chosen, rejected) in zip(cases['steps'], out[loss_type]['steps']):
        ours = pair_losses(loss_type, *(torch.tensor(v) for v in step), beta=cases['beta'],
                           label_smoothing=cases['label_smoothing'], running=running)
        for mine, trl in zip(ours, (losses, chosen, rejected)):
            assert torch.allclose(mine, torch.tensor(trl), atol=1e-6), (loss_type, mine, trl)
    if loss_type == 'bco_pair':   # delta over 3 steps
        assert running.mean == pytest.approx(out[loss_type]['running_means'][-1], abs=1e-6)
        assert len(set(round(m, 6) for m in out[loss_type]['running_means'])) == 3


def test_mpo_equals_the_worked_example():
    running = RunningMean()
    loss, metrics = preference_loss(MPO, torch.tensor([-10., -20.]), torch.tensor([-12., -18.]),
                                    torch.tensor([-11., -19.]), torch.tensor([-11.5, -19.5]), running=running,
                                    rpo_alpha=1.0, nll=torch.tensor(0.9))
    assert loss.item() == pytest.approx(1.761548, abs=1e-6) and running.mean == pytest.approx(0.025, abs=1e-7)
    assert metrics['rewards/chosen'] == pytest.approx(0.0, abs=1e-7)
    assert metrics['rewards/margins'] == pytest.approx(-0.05, abs=1e-7) and metrics['rewards/accuracies'] == 0.5
    loss, _ = preference_loss(MPO, torch.tensor([3., 2.]), torch.tensor([-1., 0.]), torch.zeros(2), torch.zeros(2),
                              running=running, rpo_alpha=1.0, nll=torch.tensor(0.7))
    assert loss.item() == pytest.approx(1.393039, abs=1e-6) and running.mean == pytest.approx(0.0625, abs=1e-7)


def test_the_running_mean_resumes_from_its_saved_state():
    whole, first = RunningMean(), RunningMean()
    for value in (0.025, 0.1):
        whole.update(value)
    first.update(0.025)
    resumed = RunningMean()
    resumed.load_state_dict(json.loads(json.dumps(first.state_dict())))   # as a checkpoint stores it
    resumed.update(0.1)
    assert resumed.mean == whole.mean == pytest.approx(0.0625)
