"""tools/make_tiny_model.py: LLaVA parts on request, every option documented, nothing left behind."""
import json
import os
import subprocess
import sys

from helpers.probes import REPO

TOOL = str(REPO / 'tools' / 'make_tiny_model.py')


def test_llava_parts_are_written_and_build_a_model(tmp_path):
    scratch = tmp_path / 'scratch'   # the tool's temporary files go here, and must be gone after
    scratch.mkdir()
    out = subprocess.run([sys.executable, TOOL, str(tmp_path / 'p'), '--llava', 'siglip', '--parts', '--image-size', '56'],
                         capture_output=True, text=True, timeout=300, cwd=tmp_path,
                         env={**os.environ, 'TMPDIR': str(scratch)})
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads((tmp_path / 'p' / 'vision_tower' / 'config.json').read_text())['model_type'] == 'siglip_vision_model'
    assert json.loads((tmp_path / 'p' / 'llm' / 'config.json').read_text())['model_type'] == 'llama'
    assert sorted(p.name for p in tmp_path.iterdir()) == ['p', 'scratch'] and not list(scratch.iterdir())
    from vlmtune.engine.model_source import build_model
    model, _ = build_model(spec=dict(vision_tower=dict(type='siglip', pretrained=str(tmp_path / 'p' / 'vision_tower')),
                                     connector=dict(type='mlp2x_gelu'),
                                     llm=dict(type='llama', pretrained=str(tmp_path / 'p' / 'llm')),
                                     image_processor=dict(type='square', image_size=56), template=dict(type='vicuna_v1')))
    assert model.spec.family == 'llama'


def test_every_option_says_its_default_or_what_it_is():
    text = subprocess.run([sys.executable, TOOL, '--help'], capture_output=True, text=True, timeout=60).stdout
    assert 'any registered LLM family' in text and '300m (LayerNorm, qkv bias)' in text and 'CLIP/SigLIP + Llama' in text
