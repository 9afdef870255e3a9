"""The composition matrix: every tower {intern_vit, clip, siglip} x connector {pixel_shuffle_mlp, mlp2x_gelu,
qformer, resampler} with Qwen2 and Llama, built from tiny parts: one training step moves the connector,
the model saves in its natural layout and reloads with equal logits, and the layout's own code loads it
too: internvl's remote code and the composite layout's (one subprocess each, vlmtune hidden),
transformers' LlavaForConditionalGeneration in-process for llava_hf. Prints the matrix.
"""
import os
import subprocess
import sys

import pytest
import torch

from helpers.probes import package_outputs, probe_inputs, REPO, run_probe
from vlmtune.engine import TrainingModel
from vlmtune.formats import layout_of, load, save
from vlmtune.tiny import TinyLlavaSpec, TinySpec, make_tiny_llava_parts, make_tiny_parts

pytestmark = pytest.mark.side_envs

TOWERS = ('intern_vit', 'clip', 'siglip')
CONNECTORS = {'pixel_shuffle_mlp': dict(type='pixel_shuffle_mlp'), 'mlp2x_gelu': dict(type='mlp2x_gelu'),
              'qformer': dict(type='qformer', num_query_tokens=4, config=dict(hidden_size=32, num_hidden_layers=2,
                                                                             num_attention_heads=2, intermediate_size=64)),
              'resampler': dict(type='resampler', num_queries=4, num_layers=1, heads=2, dim_head=16)}
LLMS = ('qwen2', 'llama')
# InternViT rows use InternVL's template (its layout's remote code knows it), CLIP / SigLIP rows LLaVA's.
TEMPLATES = {'intern_vit': 'internvl2_5', 'clip': 'vicuna_v1', 'siglip': 'vicuna_v1'}
# InternVL's templates do not cover llama / phi3 prompts in the remote code: only InternViT rows need them.


@pytest.fixture(scope='module')
def parts(tmp_path_factory):
    root = tmp_path_factory.mktemp('matrix')
    intern = make_tiny_parts(root / 'intern', TinySpec(llm='qwen2'))
    clip = make_tiny_llava_parts(root / 'clip', spec=TinyLlavaSpec(image_size=56))
    siglip = make_tiny_llava_parts(root / 'siglip', tower='siglip', spec=TinyLlavaSpec(tower='siglip', image_size=56))
    return {'towers': {'intern_vit': intern['vision_tower'], 'clip': clip['vision_tower'],
                       'siglip': siglip['vision_tower']},
            'llms': {'qwen2': intern['llm'], 'llama': clip['llm'],
                     **{family: make_tiny_parts(root / family, TinySpec(llm=family))['llm'] for family in ('phi3', 'qwen3')}}}


def spec_for(parts, tower, connector, llm):
    tower_spec = dict(type=tower, pretrained=str(parts['towers'][tower]))
    if tower != 'intern_vit':
        tower_spec['select_layer'] = -2
    if (tower, connector) == ('intern_vit', 'pixel_shuffle_mlp'):  # InternVL itself: dynamic tiles
        processor = dict(type='internvl_dynamic', image_size=56, max_tiles=2)
    else:  # one resized image (InternViT: ImageNet mean/std, as InternVL normalises)
        plain = {'intern_vit': {'crop': False, 'mean': (0.485, 0.456, 0.406), 'std': (0.229, 0.224, 0.225)},
                 'siglip': {'crop': False, 'mean': (0.5,) * 3, 'std': (0.5,) * 3}, 'clip': {}}[tower]
        processor = dict(type='square', image_size=56, **plain)
    return dict(vision_tower=tower_spec, connector=dict(CONNECTORS[connector]),
                llm=dict(type=llm, pretrained=str(parts['llms'][llm])), image_processor=processor,
                template=dict(type=TEMPLATES[tower]))


# One row each for the other LLM families (InternLM2 comes as a whole InternVL folder: its LLM folders are
# remote-code ones, not parts).
EXTRA_ROWS = [('intern_vit', 'pixel_shuffle_mlp', 'internlm2'), ('clip', 'mlp2x_gelu', 'phi3'),
              ('siglip', 'qformer', 'qwen3')]
ROWS = [(t, c, l) for t in TOWERS for c in sorted(CONNECTORS) for l in LLMS] + EXTRA_ROWS


def compose_train_save_reload(parts, tiny_folder, tower, connector, llm, tmp_path) -> dict:
    """One row: {'layout', 'reload' (max logit difference), 'owner' (the layout's own code, where it runs
    in-process), 'composite' ((folder, inputs, package logits) of a composite folder)}."""
    torch.manual_seed(0)
    source = dict(checkpoint=str(tiny_folder('internlm2', '6b'))) if llm == 'internlm2' else \
        dict(parts=spec_for(parts, tower, connector, llm))
    wrapper = TrainingModel(**source, vision_tower='frozen', connector='full', llm='frozen', dtype='fp32',
                          gradient_checkpointing=False)
    model, tokenizer = wrapper.model, wrapper.tokenizer
    inputs = probe_inputs(tokenizer, model.num_image_token, tiles=1) if tower == 'intern_vit' else None
    prompt = model.image_tokens.expand(model.prompt('<image>\nWhat colour?'), [1])
    ids = tokenizer(prompt + ' red', return_tensors='pt').input_ids
    batch = dict(pixel_values=torch.randn(1, 3, 56, 56), input_ids=ids, labels=ids, attention_mask=torch.ones_like(ids),
                 image_flags=torch.ones(1, 1, dtype=torch.long))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    wrapper(batch)['loss'].backward()
    torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.5).step()
    changed = {k for k, v in model.state_dict().items() if not torch.equal(v, before[k])}
    model.eval()
    out = save(model, tokenizer, tmp_path / f'{tower}_{connector}_{llm}', dtype='fp32')  # module names: distinct
    layout = layout_of(out)
    forward = {k: v for k, v in batch.items() if k != 'labels'}
    again, _ = load(out)
    with torch.no_grad():
        reference = model(**forward).logits
        diff = (again(**forward).logits - reference).abs().max().item()
    owner = None
    if layout == 'internvl':
        ref_logits, ref_answers = package_outputs(again, tokenizer, inputs)
        probe = run_probe(out, inputs, tmp_path)
        assert not probe['vlmtune_imported'] and probe['answers'] == ref_answers
        owner = (probe['logits'].float() - ref_logits).abs().max().item()
    elif layout == 'llava_hf':
        from transformers import LlavaForConditionalGeneration
        theirs = LlavaForConditionalGeneration.from_pretrained(str(out)).eval()
        with torch.no_grad():
            owner = (theirs(input_ids=ids, pixel_values=batch['pixel_values'], attention_mask=batch['attention_mask'])
                     .logits - reference).abs().max().item()
    print(f'\n{tower:10s} {connector:17s} {llm:6s} -> {layout:9s} reload {diff:.1e}'
          + (f', owner code {owner:.1e}' if owner is not None else
             ', owner code: test_composite_folders_load_without_vlmtune' if layout == 'composite' else ', vlmtune only'))
    return {'layout': layout, 'reload': diff, 'owner': owner, 'changed': changed,
            'composite': (out, forward, reference) if layout == 'composite' else None}


@pytest.fixture(scope='module')
def matrix(parts, tiny_folder, tmp_path_factory):
    """{row: record or the exception it raised}: the whole matrix, built once for the tests below."""
    out = {}
    for row in ROWS:
        try:
            out[row] = compose_train_save_reload(parts, tiny_folder, *row, tmp_path_factory.mktemp('row'))
        except Exception as error:  # noqa: BLE001  (the row's own test reports it)
            out[row] = error
    return out


@pytest.mark.parametrize('tower,connector,llm', ROWS)
def test_composition_trains_saves_and_reloads(matrix, tower, connector, llm):
    record = matrix[tower, connector, llm]
    if isinstance(record, Exception):
        raise record
    assert record['changed'] and all(k.startswith('connector.') for k in record['changed'])
    assert record['reload'] <= 1e-6
    assert record['owner'] is None or record['owner'] <= 1e-4, record['owner']


def test_natural_layouts_are_the_family_ones_where_they_exist(matrix):
    assert not [row for row, record in matrix.items() if isinstance(record, Exception)]
    for (tower, connector, llm), record in matrix.items():
        layout = record['layout']
        expected = 'internvl' if (tower, connector) == ('intern_vit', 'pixel_shuffle_mlp') else \
            'llava_hf' if (tower, connector) in (('clip', 'mlp2x_gelu'), ('siglip', 'mlp2x_gelu')) else \
            'composite'
        assert layout == expected, (tower, connector, llm, layout)


def test_composite_folders_load_without_vlmtune(matrix, tmp_path):
    """AutoModelForCausalLM.from_pretrained(folder, trust_remote_code=True) with vlmtune hidden: the same
    logits as the package (atol 1e-5), greedy generation runs, and AutoImageProcessor's pixels equal ours."""
    COMPOSITE = {row: record['composite'] for row, record in matrix.items()
                 if not isinstance(record, Exception) and record['composite']}
    assert len(COMPOSITE) == 19, sorted(COMPOSITE)
    from PIL import Image
    from vlmtune.formats import load
    picture = Image.new('RGB', (90, 60), (180, 40, 90))
    cases = sorted(COMPOSITE)
    runs = [{'folder': str(COMPOSITE[c][0]), 'inputs': {k: v for k, v in COMPOSITE[c][1].items()
                                                       if k in ('input_ids', 'pixel_values', 'attention_mask')},
             'image': picture} for c in cases]
    torch.save({'runs': runs}, tmp_path / 'job.pt')
    env = dict(os.environ, HF_MODULES_CACHE=str(tmp_path / 'modules'))
    env.pop('PYTHONPATH', None)
    result = subprocess.run([sys.executable, str(REPO / 'tests' / 'probes' / 'composite_probe.py'), str(tmp_path / 'job.pt'),
                             str(tmp_path / 'out.pt')], cwd=REPO / 'tests' / 'probes', env=env, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    for case, got in zip(cases, torch.load(tmp_path / 'out.pt', weights_only=False)):
        assert 'error' not in got, (case, got.get('error'))
        folder, _, reference = COMPOSITE[case]
        diff = (got['logits'] - reference).abs().max().item()
        print(f'\ncomposite {case}: {got["model"]} / {got["llm"]} / {got["processor"]}, logit diff {diff:.1e}')
        assert diff <= 1e-5 and got['generated'].shape[1] == 3
        ours = load(folder)[0].image_processor.process(picture)
        torch.testing.assert_close(got['pixels'], ours, atol=1e-6, rtol=0)
