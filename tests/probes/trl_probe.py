"""Run in a subprocess with TRL 0.10.1 (the official InternVL 3.0 tree's) first on PYTHONPATH, vlmtune hidden: its
DPOTrainer.dpo_loss on given log-probs, for each loss type, bco_pair's running mean carried across steps.

    python trl_probe.py CASES.json OUT.json

CASES: {'beta', 'label_smoothing', 'types': [...], 'steps': [[chosen, rejected, ref_chosen, ref_rejected], ...]};
OUT: {type: [[losses, chosen_rewards, rejected_rewards] per step]} and, for bco_pair, the running mean per step."""
import json
import sys
from types import SimpleNamespace

import hide_vlmtune  # noqa: F401  (first: vlmtune cannot be imported from here on)
import torch
from trl.trainer.dpo_trainer import DPOTrainer
from trl.trainer.utils import RunningMoments


def main(cases_path, out_path):
    cases = json.load(open(cases_path))
    accelerator = SimpleNamespace(device=torch.device('cpu'), use_distributed=False)
    out = {}
    for loss_type in cases['types']:
        trainer = SimpleNamespace(beta=cases['beta'], label_smoothing=cases['label_smoothing'], loss_type=loss_type,
                                  reference_free=False, f_divergence_type='reverse_kl', f_divergence_params=None,
                                  accelerator=accelerator, running=RunningMoments(accelerator))
        steps, means = [], []
        for step in cases['steps']:
            losses, chosen, rejected = DPOTrainer.dpo_loss(trainer, *(torch.tensor(v) for v in step))
            steps.append([losses.tolist(), chosen.tolist(), rejected.tolist()])
            means.append(trainer.running.mean)
        out[loss_type] = {'steps': steps, 'running_means': means}
    json.dump(out, open(out_path, 'w'))


if __name__ == '__main__':
    main(*sys.argv[1:3])
