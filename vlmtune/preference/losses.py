"""The DPO-family losses the official InternVL 3.0 trainer selects through TRL (internvl-training notes §5.2-5.5), on
sequence log-probs (the sum over each answer's supervised tokens; for `ipo`, their mean):

    a = logp_pi(chosen) - logp_ref(chosen), b = logp_pi(rejected) - logp_ref(rejected), z = a - b

| type | per-pair loss |
|---|---|
| sigmoid | -(1 - eps) logsig(beta z) - eps logsig(-beta z) |
| hinge | max(0, 1 - beta z) |
| ipo | (z - 1 / (2 beta))^2 |
| bco_pair | -logsig(beta a - delta) - logsig(-(beta b - delta)), delta the running mean of the batch rewards |
| robust | [-(1 - eps) logsig(beta z) + eps logsig(-beta z)] / (1 - 2 eps) |
| sppo_hard | (a - 1 / (2 beta))^2 + (b + 1 / (2 beta))^2 |
| nca_pair | -logsig(beta a) - logsig(-beta a) / 2 - logsig(-beta b) / 2 |
| aot | sigmoid's form on sort(pi_c - pi_r) - sort(ref_c - ref_r) over the batch |
| aot_pair | sigmoid's form on sort(a) - sort(b) |
| exo_pair | the EXO form, eps 1e-3 when 0 |

A combination (MPO: sigmoid 0.8 + bco_pair 0.2, rpo_alpha 1) sums the weighted per-pair losses and adds rpo_alpha
times the NLL (the token mean over every supervised chosen token); the loss is the mean over pairs. Rewards are
beta * a and beta * b, weight-summed as the official trainer logs them.

Where we differ on purpose: exo_pair's eps 1e-3 applies to exo_pair alone (TRL 0.10.1 sets the trainer's
label_smoothing to 1e-3 on its first exo_pair call, so later types of the run use it too); delta is state the
caller saves with its checkpoints (the official trainer loses it on resume).
"""
import math
from dataclasses import dataclass
from typing import Dict, Optional, Tuple

import torch
import torch.nn.functional as F

LOSS_TYPES = ('sigmoid', 'hinge', 'ipo', 'bco_pair', 'robust', 'sppo_hard', 'nca_pair', 'aot', 'aot_pair',
              'exo_pair')
MPO = {'sigmoid': 0.8, 'bco_pair': 0.2}   # the official MPO scripts' weights (with rpo_alpha 1)


@dataclass
class RunningMean:
    """bco_pair's delta: TRL's RunningMoments mean (count starts at 1e-24, so the first update sets it). One update
    per loss call, with the batch's mean reward and count 1 (a process's; `n` processes: their mean, count n)."""
    mean: float = 0.0
    count: float = 1e-24

    def update(self, batch_mean: float, n: int = 1) -> float:
        total = self.count + n
        self.mean += float(torch.tensor((batch_mean - self.mean) * n / total, dtype=torch.float32))
        self.count = total
        return self.mean

    def state_dict(self) -> dict:
        return {'mean': self.mean, 'count': self.count}

    def load_state_dict(self, state: dict) -> None:
        self.mean, self.count = float(state['mean']), float(state['count'])


def _smoothed(x: torch.Tensor, beta: float, eps: float) -> torch.Tensor:
    return -F.logsigmoid(beta * x) * (1 - eps) - F.logsigmoid(-beta * x) * eps


def pair_losses(loss_type: str, chosen: torch.Tensor, rejected: torch.Tensor, ref_chosen: torch.Tensor,
                ref_rejected: torch.Tensor, beta: float = 0.1, label_smoothing: float = 0.0,
                running: Optional[RunningMean] = None) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(per-pair losses, chosen rewards, rejected rewards) for one loss type; `running` is bco_pair's delta."""
    a, b = chosen - ref_chosen, rejected - ref_rejected
    z, eps = (chosen - rejected) - (ref_chosen - ref_rejected), label_smoothing
    if loss_type == 'sigmoid':
        losses = _smoothed(z, beta, eps)
    elif loss_type == 'robust':
        losses = (-F.logsigmoid(beta * z) * (1 - eps) + F.logsigmoid(-beta * z) * eps) / (1 - 2 * eps)
    elif loss_type == 'exo_pair':
        eps = eps or 1e-3
        losses = (beta * z).sigmoid() * (F.logsigmoid(beta * z) - math.log(1 - eps)) + \
            (-beta * z).sigmoid() * (F.logsigmoid(-beta * z) - math.log(eps))
    elif loss_type == 'hinge':
        losses = torch.relu(1 - beta * z)
    elif loss_type == 'ipo':
        losses = (z - 1 / (2 * beta)) ** 2
    elif loss_type == 'bco_pair':
        if running is None:
            raise ValueError('bco_pair needs its running mean (RunningMean) kept across steps')
        delta = running.update(float(torch.cat((beta * a, beta * b)).mean().detach()))
        losses = -F.logsigmoid(beta * a - delta) - F.logsigmoid(-(beta * b - delta))
    elif loss_type == 'sppo_hard':
        losses = (a - 0.5 / beta) ** 2 + (b + 0.5 / beta) ** 2
    elif loss_type == 'nca_pair':
        losses = -F.logsigmoid(beta * a) - 0.5 * F.logsigmoid(-beta * a) - 0.5 * F.logsigmoid(-beta * b)
    elif loss_type == 'aot_pair':
        losses = _smoothed(torch.sort(a, dim=0)[0] - torch.sort(b, dim=0)[0], beta, eps)
    elif loss_type == 'aot':
        losses = _smoothed(torch.sort(chosen - rejected, dim=0)[0] - torch.sort(ref_chosen - ref_rejected, dim=0)[0],
                           beta, eps)
    else:
        raise ValueError(f'loss type {loss_type!r}: choose from {LOSS_TYPES}')
    return losses, beta * a.detach(), beta * b.detach()


def preference_loss(weights: Dict[str, float], chosen, rejected, ref_chosen, ref_rejected, beta: float = 0.1,
                    label_smoothing: float = 0.0, running: Optional[RunningMean] = None,
                    rpo_alpha: Optional[float] = None, nll: Optional[torch.Tensor] = None) -> Tuple[torch.Tensor, dict]:
    """The weighted combination, + rpo_alpha * nll, meaned over pairs; with the metrics the trainer logs."""
    losses = torch.zeros_like(chosen)
    chosen_rewards = torch.zeros_like(chosen)
    rejected_rewards = torch.zeros_like(chosen)
    for loss_type, weight in weights.items():
        part, r_c, r_r = pair_losses(loss_type, chosen, rejected, ref_chosen, ref_rejected, beta, label_smoothing,
                                     running)
        losses, chosen_rewards, rejected_rewards = losses + weight * part, chosen_rewards + weight * r_c, \
            rejected_rewards + weight * r_r
    if rpo_alpha is not None:
        if nll is None:
            raise ValueError('rpo_alpha needs the NLL of the chosen answers')
        losses = losses + rpo_alpha * nll
    metrics = {'rewards/chosen': chosen_rewards.mean().item(), 'rewards/rejected': rejected_rewards.mean().item(),
               'rewards/accuracies': (chosen_rewards > rejected_rewards).float().mean().item(),
               'rewards/margins': (chosen_rewards - rejected_rewards).mean().item(),
               'logps/chosen': chosen.detach().mean().item(), 'logps/rejected': rejected.detach().mean().item()}
    if nll is not None:
        metrics['nll_loss'] = float(nll)
    if running is not None and 'bco_pair' in weights:
        metrics['bco_delta'] = running.mean
    return losses.mean(), metrics
