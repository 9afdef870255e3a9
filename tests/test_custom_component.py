"""A connector written in a user's own file, outside the package, named by a dotted `type=` in a
recipe that also lives outside the package: it trains, converts (to the `vlmtune` layout, the one
that can hold a composition no family layout describes) and reloads in a fresh process, with zero
package edits. Its own token count per tile drives the data path."""
import json
import sys

import pytest

from helpers.probes import REPO
from helpers.training import run, user_recipe

pytestmark = pytest.mark.trainings

USER_CONNECTOR = '''
import torch
from torch import nn


class PooledProjector(nn.Module):
    """Average-pool the patch grid by `pool`, then one Linear into the LLM width."""
    lora_targets = ['proj']

    def __init__(self, vision_width, llm_width, pool=2):
        super().__init__()
        self.pool = pool
        self.proj = nn.Linear(vision_width, llm_width)

    @classmethod
    def tokens_out(cls, settings, patch_grid):
        pool = settings.get('pool', 2)
        return (patch_grid[0] // pool) * (patch_grid[1] // pool)

    def forward(self, features):
        tiles, patches, width = features.shape
        side = int(patches ** 0.5)
        grid = features.transpose(1, 2).reshape(tiles, width, side, side)
        return self.proj(nn.functional.avg_pool2d(grid, self.pool).flatten(2).transpose(1, 2))
'''

USER_RECIPE = '''
from mmengine.config import read_base
from xtuner.engine.runner import TrainLoop

with read_base():
    from vlmtune.recipes._base_.tiny_cpu import *

parts = dict(vision_tower=dict(type='intern_vit', pretrained={tower!r}),
             connector=dict(type='my_parts.PooledProjector', pool=4),
             llm=dict(type='qwen2', pretrained={llm!r}),
             image_processor=dict(type='internvl_dynamic', image_size=56, max_tiles=1),
             template=dict(type='internvl2_5'))
model.update(checkpoint=None, parts=parts, vision_tower='frozen', connector='full', llm='lora')
train_dataloader['dataset'].update(checkpoint=None, parts=parts, data_path={data!r}, image_root={images!r})
train_cfg = dict(type=TrainLoop, max_iters=3)
default_hooks['checkpoint'].update(interval=3)
'''

RELOAD = '''
import json, sys, torch
from vlmtune.formats import layout_of, load
model, tokenizer = load(sys.argv[1])
pixels = torch.zeros(1, 3, 56, 56)
answer = model.chat(tokenizer, pixels, 'What colour is it?', dict(max_new_tokens=3, do_sample=False))
print(json.dumps({'layout': layout_of(sys.argv[1]), 'connector': type(model.connector).__module__,
                  'tokens_per_tile': model.num_image_token, 'answer': answer}))
'''


def test_user_connector_trains_converts_and_reloads(tiny_parts, tmp_path):
    recipe, vlmtune = user_recipe(tmp_path, 'my_parts', USER_CONNECTOR, USER_RECIPE, tiny_parts)
    train = run(vlmtune + ['train', str(recipe), '--work-dir', str(tmp_path / 'w')], tmp_path)
    assert 'LoRA on llm' in train.stdout + train.stderr
    checkpoint = tmp_path / 'w' / 'iter_3.pth'
    out = tmp_path / 'exported'
    converted = run(vlmtune + ['convert', str(recipe), str(checkpoint), str(out), '--dtype', 'fp32'], tmp_path)
    assert 'self-check PASS' in converted.stdout and '(vlmtune layout)' in converted.stdout
    saved = json.loads((out / 'vlmtune_model.json').read_text())
    assert saved['spec']['connector'] == {'type': 'my_parts.PooledProjector', 'pool': 4}
    (tmp_path / 'reload.py').write_text(RELOAD)
    reloaded = json.loads(run([sys.executable, str(tmp_path / 'reload.py'), str(out)], tmp_path).stdout.strip()
                          .splitlines()[-1])
    assert reloaded['layout'] == 'vlmtune' and reloaded['connector'] == 'my_parts'
    assert reloaded['tokens_per_tile'] == 1  # (56 / 14 / 4)^2: the user's count, not pixel shuffle's 4
    assert isinstance(reloaded['answer'], str)
    assert not (REPO / 'vlmtune' / 'model' / 'connector' / 'my_parts.py').exists()  # no package edit
