"""The model an MPO / DPO recipe trains: the supervised TrainingModel's build and trainability, with the preference
loss (vlmtune/preference) in place of the supervised one. The reference is the start model: where only the LLM's
LoRA adapters train it is the same model with its adapters disabled (no second copy in memory), and the pairs'
images are encoded once for policy and reference; otherwise a frozen copy of the start checkpoint. bco_pair's
running mean is part of the checkpoint, so a resumed run continues it."""
import torch
from mmengine.logging import print_log

from ..preference.logps import pair_image_embeddings, sequence_logps
from ..preference.losses import LOSS_TYPES, MPO, RunningMean, preference_loss
from .model_source import build_model
from .training_model import TrainingModel, resolve_dtype

METRICS = ('rewards/chosen', 'rewards/rejected', 'rewards/accuracies', 'rewards/margins', 'logps/chosen',
           'logps/rejected', 'nll_loss', 'bco_delta')


class PreferenceModel(TrainingModel):
    def __init__(self, *args, loss: dict = None, beta: float = 0.1, label_smoothing: float = 0.0,
                 rpo_alpha: float = 1.0, reference: str = 'auto', **kwargs):
        """loss: {type: weight} (default MPO's sigmoid 0.8 + bco_pair 0.2); rpo_alpha: the chosen NLL's weight (None:
        off); reference: 'auto' | 'adapters' (LoRA disabled) | 'copy' (a frozen copy of the checkpoint)."""
        super().__init__(*args, **kwargs)
        self.weights = dict(loss or MPO)
        unknown = sorted(set(self.weights) - set(LOSS_TYPES))
        if unknown:
            raise ValueError(f'model.loss: unknown type(s) {unknown}; choose from {LOSS_TYPES}')
        self.beta, self.label_smoothing, self.rpo_alpha = beta, label_smoothing, rpo_alpha
        self.running = RunningMean()
        llm_lora_only = (self.recipe_meta['vision_tower'], self.recipe_meta['connector'], self.recipe_meta['llm']) == \
            ('frozen', 'frozen', 'lora')
        if reference == 'auto':
            reference = 'adapters' if llm_lora_only else 'copy'
        if reference == 'adapters' and not llm_lora_only:
            raise ValueError("reference='adapters' needs LoRA on the LLM and nothing else trained (the disabled "
                             "adapters are then the start model); use reference='copy'")
        self.reference_kind, self._reference = reference, []
        if reference == 'copy':  # kept out of the module tree: no optimizer state, not checkpointed
            ref, _ = build_model(self.checkpoint, self.recipe_meta['spec'], dtype=resolve_dtype(kwargs.get('dtype', 'auto')),
                                 parts=self.recipe_meta['parts'])
            self._reference.append(ref.eval().requires_grad_(False))
        print_log(f'preference: {self.weights}, beta {beta}, rpo_alpha {rpo_alpha}, reference: {reference}',
                  logger='current')

    def get_extra_state(self):
        return {'running': self.running.state_dict()}

    def set_extra_state(self, state):
        self.running.load_state_dict(state['running'])

    def state_dict(self, destination=None, prefix='', keep_vars=False):
        out = super().state_dict(destination, prefix, keep_vars)
        out[prefix + '_extra_state'] = self.get_extra_state()
        return out

    def load_state_dict(self, state_dict, strict: bool = False, assign: bool = False):
        if '_extra_state' in state_dict:
            self.set_extra_state(state_dict['_extra_state'])
        return super().load_state_dict({k: v for k, v in state_dict.items() if k != '_extra_state'}, strict, assign)

    def reference_logps(self, batch: dict, mean: bool, image=None) -> tuple:
        with torch.no_grad():
            if self.reference_kind == 'adapters':
                with self.model.llm.disable_adapter():
                    chosen, rejected, _ = sequence_logps(self.model, batch, mean, image=image)
            else:
                chosen, rejected, _ = sequence_logps(self._reference[0], batch, mean)
        return chosen, rejected

    def forward(self, data, data_samples=None, mode='loss'):
        mean = 'ipo' in self.weights  # IPO's log-probs are per-token means
        image = None
        if self.reference_kind == 'adapters':  # tower and connector frozen: one image pass for policy and reference
            with torch.no_grad():
                image = pair_image_embeddings(self.model, data)
        chosen, rejected, nll = sequence_logps(self.model, data, mean, image=image)
        ref_chosen, ref_rejected = self.reference_logps(data, mean, image)
        loss, metrics = preference_loss(self.weights, chosen, rejected, ref_chosen, ref_rejected, self.beta,
                                        self.label_smoothing, self.running, self.rpo_alpha, nll)
        # mmengine sums every logged key with 'loss' in its name into the loss: the NLL is logged as 'nll'
        logged = {name.replace('/', '_').replace('nll_loss', 'nll'): torch.tensor(metrics[name])
                  for name in METRICS if name in metrics}
        return {'loss': loss, **logged}
