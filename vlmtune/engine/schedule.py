"""Linear warmup over a fraction of the run, then cosine decay. The run length comes from the train
loop (mmengine fills a scheduler's missing `end` with max_iters), so a recipe that changes only
`max_iters` / `max_epochs` keeps a correct schedule."""
import math

from mmengine.optim.scheduler.lr_scheduler import LRSchedulerMixin
from mmengine.optim.scheduler.param_scheduler import _ParamScheduler


class WarmupCosineLR(LRSchedulerMixin, _ParamScheduler):
    def __init__(self, optimizer, warmup_ratio: float = 0.03, eta_min_ratio: float = 0.0, begin: int = 0,
                 end: int = 1000, last_step: int = -1, by_epoch: bool = False, verbose: bool = False, **kwargs):
        self.warmup_ratio, self.eta_min_ratio = warmup_ratio, eta_min_ratio
        super().__init__(optimizer, begin=begin, end=end, last_step=last_step, by_epoch=by_epoch, verbose=verbose)

    def factor(self, step: int) -> float:
        total = max(1, self.end - self.begin)
        warmup = max(1, int(round(self.warmup_ratio * total)))
        if step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        return self.eta_min_ratio + (1 - self.eta_min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    def _get_value(self):
        factor = self.factor(self.last_step - self.begin)
        return [base * factor for base in self.base_values]
