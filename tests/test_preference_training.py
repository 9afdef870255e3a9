"""`vlmtune train mpo_cpu` on tiny colour pairs: the official MPO loss trains with its metrics logged (rewards,
log-probs, nll, bco_delta in the log line and loss_history.json); bco_pair's running mean is in the checkpoint, so a
run resumed from iteration 3 gives the uninterrupted run's losses and delta (atol 1e-6); the margins grow."""
import json
import random
import subprocess
import sys

import pytest
from PIL import Image

pytestmark = pytest.mark.trainings
COLOURS = {'red': (220, 30, 30), 'green': (30, 200, 40), 'blue': (30, 40, 220)}


def write_pairs(root, n=24, seed=0):
    rng, rows = random.Random(seed), []
    (root / 'images').mkdir(parents=True)
    for k in range(n):
        right = rng.choice(sorted(COLOURS))
        wrong = rng.choice([c for c in COLOURS if c != right])
        Image.new('RGB', (56, 56), COLOURS[right]).save(root / 'images' / f'{k}.png')
        rows.append({'image': f'{k}.png', 'question': 'What colour is it?', 'chosen': right, 'rejected': wrong})
    (root / 'pairs.jsonl').write_text(''.join(json.dumps(r) + '\n' for r in rows))
    return root / 'pairs.jsonl', root / 'images'


def train(folder, pairs, images, work_dir, iters, *extra):
    done = subprocess.run([sys.executable, '-m', 'vlmtune.cli', 'train', 'mpo_cpu', '--checkpoint', str(folder),
                           '--data', str(pairs), '--images', str(images), '--iters', str(iters), '--work-dir',
                           str(work_dir), '--cfg-options', 'default_hooks.checkpoint.interval=3',
                           'default_hooks.checkpoint.max_keep_ckpts=2', *extra],
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, (done.stdout[-2000:], done.stderr[-3000:])
    return {h['iter']: h for h in json.loads((work_dir / 'loss_history.json').read_text())['train']}, done.stdout


def test_mpo_trains_logs_its_metrics_and_resumes_exactly(tiny_folder, tmp_path):
    pairs, images = write_pairs(tmp_path / 'data')
    whole, shown = train(tiny_folder(), pairs, images, tmp_path / 'whole', 6)
    assert set(whole) == set(range(1, 7))
    for key in ('rewards_chosen', 'rewards_rejected', 'rewards_accuracies', 'rewards_margins', 'logps_chosen',
                'logps_rejected', 'nll', 'bco_delta'):
        assert key in whole[6] and key in shown, key
    assert whole[1]['rewards_margins'] == 0.0          # step 1: the policy is the reference (LoRA B = 0)
    deltas = [whole[i]['bco_delta'] for i in range(1, 7)]
    assert len(set(deltas)) == 6                        # the running mean moves every step
    resumed, _ = train(tiny_folder(), pairs, images, tmp_path / 'resumed', 6, '--resume',
                       str(tmp_path / 'whole' / 'iter_3.pth'))
    for i in (4, 5, 6):
        assert resumed[i]['loss'] == pytest.approx(whole[i]['loss'], abs=1e-6), i
        assert resumed[i]['bco_delta'] == pytest.approx(whole[i]['bco_delta'], abs=1e-6), i


def held_out_logps(folder, pairs, images):
    import torch
    from vlmtune.formats import data_spec_for_folder, load
    from vlmtune.preference.data import PreferenceDataset, preference_collate
    from vlmtune.preference.logps import sequence_logps
    model, _ = load(folder)
    model.eval()
    dataset = PreferenceDataset(pairs, images, data_spec_for_folder(folder, 1, 384), progress=False)
    with torch.no_grad():
        chosen, rejected, _ = sequence_logps(model, preference_collate([dataset[i] for i in range(len(dataset))], 0))
    return chosen, rejected


def test_mpo_then_convert_prefers_the_chosen_answers_on_held_out_pairs(tiny_folder, tmp_path):
    """Held-out pairs: the implicit reward (tuned vs base log-ratio) ranks chosen over rejected, and the tuned model
    itself gives the chosen answer more probability more often than the base did."""
    pairs, images = write_pairs(tmp_path / 'train')
    held, held_images = write_pairs(tmp_path / 'held', n=30, seed=1)
    parts = ['model.connector=full', 'model.vision_tower=full']
    train(tiny_folder(), pairs, images, tmp_path / 'work', 120, *parts, 'optim_wrapper.optimizer.lr=3e-3',
          'train_dataloader.batch_size=8')
    done = subprocess.run([sys.executable, '-m', 'vlmtune.cli', 'convert', 'mpo_cpu', str(tmp_path / 'work' /
                           'iter_120.pth'), str(tmp_path / 'tuned'), '--cfg-options', f'model.checkpoint={tiny_folder()}',
                           f'train_dataloader.dataset.checkpoint={tiny_folder()}', *parts],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    (base_c, base_r), (tuned_c, tuned_r) = (held_out_logps(f, held, held_images) for f in (tiny_folder(), tmp_path / 'tuned'))
    reward_accuracy = float(((tuned_c - base_c) > (tuned_r - base_r)).float().mean())
    before, after = float((base_c > base_r).float().mean()), float((tuned_c > tuned_r).float().mean())
    print(f'held-out: reward accuracy {reward_accuracy:.3f}; chosen more likely {before:.3f} -> {after:.3f}')
    assert reward_accuracy >= 0.8 and after > before
