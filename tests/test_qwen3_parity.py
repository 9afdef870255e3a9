"""Our Qwen3 / Qwen3-MoE (built on transformers 4.48's Llama) against transformers' own classes in
cached side envs (4.57.6 and 5.24.0, vlmtune hidden): same weights -> same logits on a left-padded
batch, same loss and router aux loss, same greedy cached generation step by step; the folders our
classes save load there with no missing or unexpected keys."""
import os
import subprocess
import sys

import pytest
import torch

from helpers.probes import REPO
from vlmtune.side_envs import side_env
from vlmtune.model.llm import REGISTRY

pytestmark = pytest.mark.side_envs

ENVS = ('tf-4.57', 'tf-5.24')
NEW_TOKENS = 6
CONFIGS = {
    'qwen3': dict(vocab_size=160, hidden_size=64, intermediate_size=96, num_hidden_layers=3, num_attention_heads=4,
                  num_key_value_heads=2, head_dim=32, rope_theta=1000000.0, tie_word_embeddings=True),
    # Layer 1 dense (mlp_only_layers), layers 0 and 2 sparse; renormalised top-2 of 4 experts.
    'qwen3_moe': dict(vocab_size=160, hidden_size=64, intermediate_size=96, num_hidden_layers=3,
                      num_attention_heads=4, num_key_value_heads=2, head_dim=32, num_experts=4, num_experts_per_tok=2,
                      moe_intermediate_size=32, norm_topk_prob=True, mlp_only_layers=[1], router_aux_loss_coef=0.01),
    'qwen3_moe_raw_topk': dict(vocab_size=160, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
                               num_attention_heads=4, num_key_value_heads=4, num_experts=3, num_experts_per_tok=2,
                               moe_intermediate_size=48, norm_topk_prob=False, decoder_sparse_step=2),
}


def family(name):
    return 'qwen3' if name == 'qwen3' else 'qwen3_moe'


def inputs():
    generator = torch.Generator().manual_seed(1)
    ids = torch.randint(1, 160, (2, 9), generator=generator)
    mask = torch.ones_like(ids)
    mask[0, :3] = 0  # left padding
    ids[0, :3] = 0
    labels = ids.masked_fill(mask == 0, -100)
    labels[0, 3] = -100  # predicted from a padded position, whose logits neither side defines
    return {'input_ids': ids, 'attention_mask': mask, 'labels': labels}


def ours(name):
    torch.manual_seed(0)
    model = REGISTRY.get(family(name)).build({'config': CONFIGS[name]}, 'sdpa').eval()
    with torch.no_grad():  # norms start at 1: make the q/k norms matter
        for module_name, p in model.named_parameters():
            if 'norm' in module_name:
                p.add_(0.1 * torch.randn_like(p))
    return model


@pytest.fixture(scope='module')
def probes(tmp_path_factory):
    root = tmp_path_factory.mktemp('qwen3')
    runs, reference = [], {}
    for name in CONFIGS:
        model = ours(name)
        folder = root / name
        model.save_pretrained(str(folder), safe_serialization=True)
        batch = inputs()
        extra = {'output_router_logits': True} if name != 'qwen3' else {}
        with torch.no_grad():
            out = model(**batch, **extra)
            gen = model.generate(input_ids=batch['input_ids'], attention_mask=batch['attention_mask'],
                                 max_new_tokens=NEW_TOKENS, do_sample=False, use_cache=True,
                                 return_dict_in_generate=True, output_scores=True, pad_token_id=0)
        reference[name] = {'logits': out.logits, 'loss': out.loss, 'aux_loss': getattr(out, 'aux_loss', None),
                           'sequences': gen.sequences, 'scores': torch.stack(gen.scores, 1)}
        runs.append({'name': name, 'folder': str(folder), 'inputs': batch, 'new_tokens': NEW_TOKENS})
    results = {}
    for env in ENVS:
        torch.save({'runs': runs}, root / f'job-{env}.pt')
        environ = dict(os.environ, PYTHONPATH=str(side_env(env)), HF_HUB_OFFLINE='1')
        result = subprocess.run([sys.executable, str(REPO / 'tests' / 'probes' / 'qwen3_probe.py'), str(root / f'job-{env}.pt'),
                                 str(root / f'out-{env}.pt')], cwd=REPO / 'tests' / 'probes', env=environ,
                                capture_output=True, text=True, timeout=900)
        assert result.returncode == 0, result.stderr[-4000:]
        results[env] = dict(zip(CONFIGS, torch.load(root / f'out-{env}.pt', weights_only=False)))
    return results, reference


@pytest.mark.parametrize('env', ENVS)
@pytest.mark.parametrize('name', list(CONFIGS))
def test_transformers_own_class_gives_our_numbers(probes, env, name):
    results, reference = probes
    got, want = results[env][name], reference[name]
    expected_class = 'Qwen3ForCausalLM' if name == 'qwen3' else 'Qwen3MoeForCausalLM'
    assert got['class'] == expected_class and not got['missing'] and not got['unexpected'], got
    real = inputs()['attention_mask'].bool()  # padded positions' logits are not defined by either
    diff = (got['logits'] - want['logits'])[real].abs().max().item()
    print(f'{name} under transformers {got["version"]}: max logit diff {diff:.2e}')
    assert diff < 1e-4
    assert abs(got['loss'].item() - want['loss'].item()) < 1e-4
    if name != 'qwen3':
        assert want['aux_loss'] is not None and abs(got['aux_loss'].item() - want['aux_loss'].item()) < 1e-5
    assert torch.equal(got['sequences'], want['sequences'])
    assert (got['scores'] - want['scores']).abs().max().item() < 1e-4
