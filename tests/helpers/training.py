"""Real tiny training runs as tests run them: the commands (xtuner's and vlmtune's), their losses and
what they checkpoint."""
import hashlib
import json
import subprocess
import sys
import textwrap

import torch

from .probes import REPO

RECIPE = REPO / 'vlmtune' / 'recipes' / 'tiny' / 'lora_cpu.py'


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


def user_recipe(tmp_path, module_name, module_text, recipe_text, parts) -> tuple:
    """A user's own module and a recipe naming it, both outside the package, with tiny part folders and
    colour data: (recipe path, `vlmtune` command prefix)."""
    from .training_data import make_colour_dataset
    (tmp_path / f'{module_name}.py').write_text(module_text)
    data, images = make_colour_dataset(tmp_path / 'data', n=8)
    recipe = tmp_path / 'my_recipe.py'
    recipe.write_text(textwrap.dedent(recipe_text).format(tower=str(parts['vision_tower']), llm=str(parts['llm']),
                                                          data=str(data), images=str(images)))
    return recipe, [sys.executable, '-m', 'vlmtune.cli']


def run(cmd, cwd, env=None):
    result = subprocess.run([str(c) for c in cmd], cwd=cwd, capture_output=True, text=True, timeout=900, env=env)
    assert result.returncode == 0, (result.stdout[-2000:], result.stderr[-4000:])
    return result


def losses(work_dir):
    history = json.loads((work_dir / 'loss_history.json').read_text())['train']
    return {h['iter']: h['loss'] for h in history}


def assert_learns(trajectory):
    values = [trajectory[i] for i in sorted(trajectory)]
    assert len(values) == 20
    assert sum(values[-5:]) / 5 < sum(values[:5]) / 5 - 0.2, values


def assert_deepspeed_checkpoint_holds_trainable_only(work_dir):
    # ZeRO-2 writes mp_rank_00_model_states.pt, ZeRO-3 zero_pp_rank_0_mp_rank_00_model_states.pt.
    path = next((work_dir / 'iter_20.pth').glob('*model_states.pt'))
    states = torch.load(path, map_location='cpu', weights_only=False)['module']
    assert states and all('.lora_' in k or k.startswith('model.connector.') for k in states)
