"""A checkpoint layout written in a user's own file, outside the package, named by a recipe that also lives
outside it (`save_layout = 'my_layouts.FlatLayout'`): the run trains, `vlmtune convert` writes the folder in
that layout (and self-checks it), and a fresh process that imports the module loads it back, all with zero
package edits. The layout meets vlmtune.interfaces.Layout by its members alone."""
import json
import os
import sys

import pytest

from helpers.probes import REPO
from helpers.training import run, user_recipe

pytestmark = pytest.mark.trainings

USER_LAYOUT = '''
import json
from pathlib import Path

from safetensors.torch import load_file, save_file

from vlmtune.formats.tokenizers import load_tokenizer as tokenizer_of, save_tokenizer
from vlmtune.model.spec import ModelSpec

SPEC, WEIGHTS = 'flat_spec.json', 'flat.safetensors'


class FlatLayout:
    """One spec file, one weights file under `model.*` names, the tokenizer beside them."""
    NAME, ORDER = 'my_flat', 90

    def detect(self, folder):
        return (Path(folder) / SPEC).is_file()

    def read_spec(self, folder):
        return ModelSpec.from_dict(json.loads((Path(folder) / SPEC).read_text()))

    def read_state(self, folder):
        return load_file(str(Path(folder) / WEIGHTS))

    def load_tokenizer(self, folder):
        return tokenizer_of(folder)

    def unsupported(self, spec):
        return None

    def to_layout(self, state, spec):
        return {'model.' + k: v for k, v in state.items()}

    def from_layout(self, state, spec):
        return {k[len('model.'):]: v for k, v in state.items()}

    def part_of(self, key):
        return key.split('.')[1]

    def write(self, staging, spec, state, tokenizer, dtype, max_shard_bytes, base_folder=None):
        (Path(staging) / SPEC).write_text(json.dumps(spec.to_dict()))
        save_file({k: v.detach().to(dtype).contiguous() for k, v in self.to_layout(state, spec).items()},
                  str(Path(staging) / WEIGHTS))
        save_tokenizer(tokenizer, staging, spec.build_template().chat_template(spec.system_message))

    def describe(self, folder, spec):
        return {'torch_dtype': None, 'missing': []}
'''

USER_RECIPE = '''
from mmengine.config import read_base
from xtuner.engine.runner import TrainLoop

with read_base():
    from vlmtune.recipes._base_.tiny_cpu import *

parts = dict(vision_tower=dict(type='intern_vit', pretrained={tower!r}), connector=dict(type='pixel_shuffle_mlp'),
             llm=dict(type='qwen2', pretrained={llm!r}),
             image_processor=dict(type='internvl_dynamic', image_size=56, max_tiles=1),
             template=dict(type='internvl2_5'))
model.update(checkpoint=None, parts=parts, vision_tower='frozen', connector='full', llm='lora')
train_dataloader['dataset'].update(checkpoint=None, parts=parts, data_path={data!r}, image_root={images!r})
train_cfg = dict(type=TrainLoop, max_iters=2)
default_hooks['checkpoint'].update(interval=2)
save_layout = 'my_layouts.FlatLayout'
'''

RELOAD = '''
import json, sys, torch
import my_layouts  # noqa: F401
from vlmtune.formats import layout_of, load, register_layout
register_layout(my_layouts.FlatLayout())
model, tokenizer = load(sys.argv[1])
answer = model.chat(tokenizer, torch.zeros(1, 3, 56, 56), 'What colour is it?', dict(max_new_tokens=3, do_sample=False))
print(json.dumps({'layout': layout_of(sys.argv[1]), 'answer': answer,
                  'connector': float(model.connector[1].weight.abs().sum())}))
'''


def user_env(folder):
    """The environment with the user's folder importable (their layout module lives there)."""
    return {**os.environ, 'PYTHONPATH': str(folder)}


def test_user_layout_trains_converts_and_reloads(tiny_parts, tmp_path):
    recipe, vlmtune = user_recipe(tmp_path, 'my_layouts', USER_LAYOUT, USER_RECIPE, tiny_parts)
    run(vlmtune + ['train', str(recipe), '--work-dir', str(tmp_path / 'w')], tmp_path, user_env(tmp_path))
    out = tmp_path / 'exported'
    converted = run(vlmtune + ['convert', str(recipe), str(tmp_path / 'w' / 'iter_2.pth'), str(out), '--dtype', 'fp32'],
                    tmp_path, user_env(tmp_path))
    assert 'self-check PASS' in converted.stdout and '(my_flat layout)' in converted.stdout
    assert sorted(p.name for p in out.iterdir() if p.name.startswith('flat')) == ['flat.safetensors', 'flat_spec.json']
    assert json.loads((out / 'flat_spec.json').read_text())['connector']['type'] == 'pixel_shuffle_mlp'
    (tmp_path / 'reload.py').write_text(RELOAD)
    reloaded = json.loads(run([sys.executable, str(tmp_path / 'reload.py'), str(out)], tmp_path, user_env(tmp_path)).stdout.strip()
                          .splitlines()[-1])
    assert reloaded['layout'] == 'my_flat' and isinstance(reloaded['answer'], str) and reloaded['connector'] > 0
    assert not list((REPO / 'vlmtune' / 'formats').glob('my_*.py'))  # no package edit
