"""Training hooks: fixed chat probes, validation loss / token accuracy, and a loss curve at the end."""
import json
from pathlib import Path

import torch
import torch.distributed as dist
from mmengine.hooks import Hook
from mmengine.logging import print_log

from PIL import Image

from ..data.dataset import ConversationDataset
from ..data.image.orientation import apply_rule


def unwrap(model):
    while hasattr(model, 'module'):
        model = model.module
    return model


def _mean_across_ranks(value: float) -> float:
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        tensor = torch.tensor([value], dtype=torch.float64)
        dist.all_reduce(tensor)
        return float(tensor.item() / dist.get_world_size())
    return value


class ChatProbeHook(Hook):
    """Every `interval` iterations (and at the end) answer fixed questions about fixed images."""
    priority = 'LOW'

    def __init__(self, probes, interval=50, max_new_tokens=32):
        self.probes, self.interval, self.max_new_tokens = probes, interval, max_new_tokens
        self.answers = []

    def _run(self, runner, tag):
        wrapper = unwrap(runner.model)
        model, tokenizer = wrapper.model, wrapper.tokenizer
        processor = model.spec.build_image_processor()
        was_training = model.training
        model.eval()
        for probe in self.probes:
            pixels = None
            if probe.get('image'):
                with Image.open(probe['image']) as image:
                    image = apply_rule(image.convert('RGB'), model.spec.exif_rule)  # as training opens it
                    pixels = processor.process(image).to(model.device, model.dtype)
            answer = model.chat(tokenizer, pixels, probe['question'],
                                dict(max_new_tokens=self.max_new_tokens, do_sample=False))
            self.answers.append({'iter': runner.iter, 'question': probe['question'], 'answer': answer})
            print_log(f'[chat probe {tag}] Q: {probe["question"]!r} A: {answer!r}', logger='current')
        model.train(was_training)

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        if self.every_n_train_iters(runner, self.interval):
            self._run(runner, f'iter {runner.iter + 1}')

    def after_train(self, runner):
        self._run(runner, 'end')


class ValidationHook(Hook):
    """Validation loss (token mean) and next-token accuracy on trained tokens of a held-out split."""
    priority = 'LOW'

    def __init__(self, data_path, image_root=None, interval=50, max_samples=64, batch_size=4):
        self.data_path, self.image_root = data_path, image_root
        self.interval, self.max_samples, self.batch_size = interval, max_samples, batch_size
        self.history = []
        self._dataset = None

    def _dataset_for(self, wrapper):
        if self._dataset is None:
            self._dataset = ConversationDataset(self.data_path, self.image_root, wrapper.data_spec(), progress=False)
        return self._dataset

    def evaluate(self, runner):
        from ..bench.teacher_forced import teacher_forced_scores
        wrapper = unwrap(runner.model)
        scores = teacher_forced_scores(wrapper.model, self._dataset_for(wrapper), self.max_samples, self.batch_size)
        result = {'iter': runner.iter, 'val_loss': scores['loss'], 'val_token_acc': scores['token_accuracy']}
        self.history.append(result)
        runner.message_hub.update_scalar('val/loss', result['val_loss'])
        runner.visualizer.add_scalars({'val/loss': result['val_loss'], 'val/token_acc': result['val_token_acc']},
                                      step=runner.iter)
        print_log(f"[validation] iter {runner.iter}: loss {result['val_loss']:.4f}, "
                  f"token accuracy {result['val_token_acc']:.3f}", logger='current')
        return result

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        if self.every_n_train_iters(runner, self.interval):
            self.evaluate(runner)


class LossCurveHook(Hook):
    """Records the (rank-averaged) training loss per iteration; writes loss_history.json and
    loss_curve.png (with validation points, if a ValidationHook ran) in the work dir at the end."""
    priority = 'VERY_LOW'

    def __init__(self):
        self.history = []

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        if outputs and 'loss' in outputs:
            # 'loss' is the optimised sum; its terms (an MoE's moe_aux_loss) and what else the model logs (a
            # preference run's rewards, log-probs, nll and bco_delta) are kept too.
            self.history.append({'iter': runner.iter + 1, **{key: _mean_across_ranks(float(value))
                                                             for key, value in outputs.items()}})

    def after_train(self, runner):
        if runner.rank != 0:
            return
        work_dir = Path(runner.work_dir)
        history_path = work_dir / 'loss_history.json'
        previous = json.loads(history_path.read_text()) if history_path.exists() else {'train': [], 'val': []}
        first_iter = self.history[0]['iter'] if self.history else None
        train = [h for h in previous['train'] if first_iter is None or h['iter'] < first_iter] + self.history
        val = [h for hook in runner.hooks if isinstance(hook, ValidationHook) for h in hook.history]
        history_path.write_text(json.dumps({'train': train, 'val': val}, indent=1))
        self._plot(train, val, work_dir / 'loss_curve.png')
        if self.history:  # the last iteration's loss, whatever the logger's interval printed
            print_log(f"[loss] iteration {self.history[-1]['iter']}: {self.history[-1]['loss']:.4f} (first this run: "
                      f"{self.history[0]['loss']:.4f}); every iteration in {history_path.name}, loss_curve.png",
                      logger='current')

    @staticmethod
    def _plot(train, val, path):
        import matplotlib
        matplotlib.use('Agg')
        import matplotlib.pyplot as plt
        preference = any('rewards_margins' in h for h in train)
        fig, axes = plt.subplots(1, 2 if preference else 1, figsize=(12 if preference else 7, 4), squeeze=False)
        ax = axes[0][0]
        ax.plot([h['iter'] for h in train], [h['loss'] for h in train], label='train loss')
        if preference:  # what a preference run learns: chosen over rejected
            for key in ('rewards_accuracies', 'rewards_margins', 'bco_delta'):
                axes[0][1].plot([h['iter'] for h in train], [h.get(key) for h in train], label=key)
            axes[0][1].set_xlabel('iteration'), axes[0][1].grid(alpha=0.3), axes[0][1].legend()
        if val:
            ax.plot([h['iter'] for h in val], [h['val_loss'] for h in val], 'o-', label='val loss')
        ax.set_xlabel('iteration')
        ax.set_ylabel('loss')
        ax.grid(alpha=0.3)
        ax.legend()
        fig.tight_layout()
        fig.savefig(path, dpi=100)
        plt.close(fig)


class ExpertLoadHook(Hook):
    """At the end of training, a validation pass (dropless, as inference) over `data_path`, or the first
    samples of the training data, that counts the tokens each expert of each MoE layer runs on:
    expert_load.json + expert_load.png in the work dir, and the parameters a token activates."""
    priority = 'VERY_LOW'

    def __init__(self, data_path=None, image_root=None, max_samples=64, batch_size=1):  # 1: no padding counted
        self.data_path, self.image_root, self.max_samples, self.batch_size = data_path, image_root, max_samples, \
            batch_size

    def after_train(self, runner):
        from ..bench.teacher_forced import teacher_forced_scores
        from ..model.moe.report import counting_expert_load, load_table, parameter_summary, write_load_report
        wrapper = unwrap(runner.model)
        llm = wrapper.model.llm
        dataset = runner.train_dataloader.dataset if self.data_path is None else ConversationDataset(
            self.data_path, self.image_root, wrapper.data_spec(), progress=False)
        if not isinstance(dataset, ConversationDataset):
            raise ValueError('ExpertLoadHook: the training data is packed; give the hook a data_path')
        with counting_expert_load(llm):
            teacher_forced_scores(wrapper.model, dataset, self.max_samples, self.batch_size)
        table, params = load_table(llm), parameter_summary(llm)
        if not table['layers'] or runner.rank != 0:
            return
        json_path, _ = write_load_report(table, params, runner.work_dir)
        print_log(f"[moe] expert load per layer -> {json_path} (.png); active {params['active_per_token']:,} of "
                  f"{params['total']:,} LLM parameters per token ({100 * params['active_fraction']:.1f}%)",
                  logger='current')


class BenchmarkEvalHook(Hook):
    """Scores the model on a benchmark in its own format (`vlmtune eval formats`) before training, every
    `interval` iterations (0: none) and at the end: work_dir/bench/<name>/iter_<N>/ holds each run's
    results, and compare.md / compare.png set the first run (the base) beside the last."""
    priority = 'LOW'

    def __init__(self, bench, data_path, image_root=None, interval=0, before_train=True, limit=None,
                 batch_size=8, prompt=None, max_new_tokens=None):
        self.bench, self.data_path, self.image_root = bench, data_path, image_root
        self.interval, self.before, self.limit, self.batch_size = interval, before_train, limit, batch_size
        self.prompt, self.max_new_tokens = prompt, max_new_tokens
        self.history = []

    def _run(self, runner, step):
        from ..bench.report import compare
        from ..bench.run import run_benchmark, write_results
        from ..serve.pipeline import TorchPipeline
        wrapper = unwrap(runner.model)
        model = wrapper.model
        was_training = model.training
        model.eval()
        try:
            result, rows = run_benchmark(self.bench, self.data_path, TorchPipeline.from_model(model, wrapper.tokenizer),
                                         self.image_root, self.prompt, self.limit, self.batch_size,
                                         self.max_new_tokens, progress=False, model=f'iter {step}')
        finally:
            model.train(was_training)
        self.history.append({'iter': step, result['headline']: result['value']})
        runner.visualizer.add_scalars({f"{self.bench}/{result['headline']}": result['value']}, step=step)
        print_log(f"[{self.bench}] iter {step}: {result['headline']} {result['value']:.4f} "
                  f"({result['questions_asked']} questions, {result['unanswered']} unanswered)", logger='current')
        if runner.rank != 0:
            return
        root = Path(runner.work_dir) / 'bench' / self.bench
        paths = write_results(result, rows, root / f'iter_{step}')
        self.history[-1]['results'] = str(paths['json'])
        if len(self.history) > 1:
            first, last = self.history[0], self.history[-1]
            compare([first['results'], last['results']], root, [f"iter {first['iter']}", f"iter {last['iter']}"])

    def before_train(self, runner):
        if self.before:
            self._run(runner, runner.iter)

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        if self.interval and self.every_n_train_iters(runner, self.interval):
            self._run(runner, runner.iter + 1)  # the loop counts this iteration after its hooks

    def after_train(self, runner):
        if not self.history or self.history[-1]['iter'] != runner.iter:
            self._run(runner, runner.iter)
