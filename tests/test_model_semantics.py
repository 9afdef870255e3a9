"""Pixel shuffle order, image tokens per tile, select_layer, image_flags dropping, the loss and the
InternLM2 wqkv grouping, each against hand-computed expectations; the package's InternLM2 against
transformers' Llama and against the exported remote code."""
import pytest
import torch
import torch.nn.functional as F
import transformers

from vlmtune.model.llm import internlm2_keys
from vlmtune.model.llm.internlm2_keys import fuse_wqkv, split_wqkv
from vlmtune.formats.internvl_remote import modeling_internlm2 as remote_internlm2
from vlmtune.formats.internvl_remote.configuration_internlm2 import InternLM2Config
from vlmtune.formats.internvl_remote.modeling_internvl_chat import pixel_shuffle as remote_pixel_shuffle
from vlmtune.model.connector.pixel_shuffle_mlp import pixel_shuffle
from vlmtune.model.llm import REGISTRY as LLMS
from vlmtune.tiny import TinySpec, build_tiny_model


def grid_4x4(channels=2):
    # x[r, c] = [10*r + c, 100 + 10*r + c, ...]: every entry names its position.
    x = torch.zeros(1, 4, 4, channels)
    for r in range(4):
        for c in range(4):
            x[0, r, c] = torch.tensor([100 * k + 10 * r + c for k in range(channels)], dtype=torch.float)
    return x


def expected_block(x, i, j):
    return torch.cat([x[0, 2 * i, 2 * j], x[0, 2 * i, 2 * j + 1], x[0, 2 * i + 1, 2 * j], x[0, 2 * i + 1, 2 * j + 1]])


@pytest.mark.parametrize('version', ['v1', 'v2'])
def test_pixel_shuffle_token_order(version):
    x = grid_4x4()
    out = pixel_shuffle(x, 0.5, version).reshape(1, 4, -1)
    for i in range(2):
        for j in range(2):
            t = i * 2 + j if version == 'v2' else j * 2 + i  # v1 is column-major over blocks
            assert torch.equal(out[0, t], expected_block(x, i, j)), (version, i, j)


def test_pixel_shuffle_v1_v2_same_content_transposed():
    x = torch.randn(2, 6, 6, 3)
    v1, v2 = pixel_shuffle(x, 0.5, 'v1'), pixel_shuffle(x, 0.5, 'v2')
    assert v1.shape == v2.shape == (2, 3, 3, 12)
    assert torch.equal(v1, v2.transpose(1, 2))
    for version in ('v1', 'v2'):  # the exported remote code computes the same
        assert torch.equal(remote_pixel_shuffle(x, 0.5, version), pixel_shuffle(x, 0.5, version))


def test_num_image_token_and_feature_shape():
    model, _ = build_tiny_model(TinySpec(image_size=448, vit_layers=1, llm_layers=1))
    assert model.num_image_token == 256  # (448 / 14)^2 * 0.5^2
    small, _ = build_tiny_model(TinySpec(image_size=56))
    assert small.num_image_token == 4
    with torch.no_grad():
        feats = model.extract_feature(torch.randn(2, 3, 448, 448))
    assert feats.shape == (2, 256, model.spec.llm_config().hidden_size)


def test_select_layer_takes_hidden_states_with_embeddings_first():
    model, _ = build_tiny_model(TinySpec(vit_layers=3))
    vit = model.vision_tower
    pixels = torch.randn(2, 3, 56, 56)
    with torch.no_grad():
        embeds = vit.embeddings(pixels)
        after_first = vit.encoder.layers[0](embeds)
        last = after_first
        for layer in vit.encoder.layers[1:]:
            last = layer(last)
        assert torch.allclose(vit.hidden_states(pixels, 0), embeds, atol=1e-6)
        assert torch.allclose(vit.hidden_states(pixels, 1), after_first, atol=1e-6)
        assert torch.allclose(vit.hidden_states(pixels, -1), last, atol=1e-6)
        assert torch.allclose(vit.hidden_states(pixels, -2), vit.hidden_states(pixels, 2), atol=1e-6)
        assert torch.allclose(vit(pixels), last[:, 1:], atol=1e-6)  # select_layer -1, CLS dropped


def test_position_embedding_resampling():
    model, _ = build_tiny_model(TinySpec())
    emb = model.vision_tower.embeddings
    with torch.no_grad():
        native = emb.resampled_patch_positions(4, 4)
        assert torch.allclose(native, emb.position_embedding[:, 1:], atol=1e-6)  # identity at native grid
        grid = emb.position_embedding[:, 1:].reshape(1, 4, 4, -1).permute(0, 3, 1, 2)
        expected = F.interpolate(grid, size=(6, 6), mode='bicubic', align_corners=False)
        expected = expected.flatten(2).transpose(1, 2)
        assert torch.allclose(emb.resampled_patch_positions(6, 6), expected, atol=1e-6)
        assert model.vision_tower(torch.randn(1, 3, 84, 84)).shape[1] == 36  # 6 x 6 patches, CLS dropped


@pytest.mark.parametrize('vit', ['300m', '6b'])
def test_vit_flavour_parameters(vit):
    model, _ = build_tiny_model(TinySpec(vit=vit))
    keys = set(model.state_dict())
    layer = 'vision_tower.encoder.layers.0.'
    if vit == '6b':
        assert {layer + 'attn.q_norm.weight', layer + 'attn.k_norm.weight'} <= keys
        assert layer + 'attn.qkv.bias' not in keys and layer + 'norm1.bias' not in keys
        assert model.state_dict()[layer + 'attn.q_norm.weight'].shape == (model.vision_tower.width,)
    else:
        assert {layer + 'attn.qkv.bias', layer + 'norm1.bias'} <= keys
        assert layer + 'attn.q_norm.weight' not in keys
    assert {layer + 'ls1', layer + 'ls2', 'connector.0.weight', 'connector.0.bias', 'connector.1.weight',
            'connector.3.weight'} <= keys


def _tiny_batch(model, tokenizer, tiles):
    n = model.num_image_token
    text = '<|im_start|>user\n<img>' + '<IMG_CONTEXT>' * n * tiles + '</img>\nhi<|im_end|><|im_start|>assistant\nok<|im_end|>'
    return tokenizer(text, return_tensors='pt')


def test_image_flags_zero_tiles_are_dropped():
    model, tokenizer = build_tiny_model(TinySpec())
    enc = _tiny_batch(model, tokenizer, tiles=2)
    kept = torch.randn(2, 3, 56, 56)
    with_dropped = torch.stack([kept[0], torch.randn(3, 56, 56), kept[1]])
    with torch.no_grad():
        ref = model(pixel_values=kept, input_ids=enc.input_ids, image_flags=torch.ones(2, 1, dtype=torch.long)).logits
        out = model(pixel_values=with_dropped, input_ids=enc.input_ids,
                    image_flags=torch.tensor([[1], [0], [1]])).logits
        assert torch.equal(out, ref)
        with pytest.raises(ValueError, match='IMG_CONTEXT'):
            model(pixel_values=with_dropped, input_ids=enc.input_ids, image_flags=torch.ones(3, 1, dtype=torch.long))


def test_loss_counts_answer_tokens_only():
    model, tokenizer = build_tiny_model(TinySpec())
    enc = _tiny_batch(model, tokenizer, tiles=1)
    ids = enc.input_ids
    labels = torch.full_like(ids, -100)
    answer = tokenizer('ok<|im_end|>', add_special_tokens=False).input_ids
    labels[0, -len(answer):] = torch.tensor(answer)
    with torch.no_grad():
        out = model(pixel_values=torch.randn(1, 3, 56, 56), input_ids=ids,
                    image_flags=torch.ones(1, 1, dtype=torch.long), labels=labels)
    logp = out.logits[0].float().log_softmax(-1)
    positions = range(ids.shape[1] - len(answer), ids.shape[1])
    expected = -sum(logp[p - 1, ids[0, p]] for p in positions) / len(answer)  # token p predicted at p-1
    assert torch.allclose(out.loss, expected, atol=1e-5)


@pytest.mark.parametrize('heads,kv_heads', [(4, 2), (6, 2), (4, 1), (4, 4)])
def test_internlm2_wqkv_split_fuse_round_trip(heads, kv_heads):
    head_dim, hidden = 3, 12
    rows = (heads + 2 * kv_heads) * head_dim
    wqkv = torch.arange(rows * hidden, dtype=torch.float).reshape(rows, hidden)
    q, k, v = split_wqkv(wqkv, heads, kv_heads)
    assert q.shape == (heads * head_dim, hidden) and k.shape == v.shape == (kv_heads * head_dim, hidden)
    groups = heads // kv_heads
    # Hand layout: KV head h owns rows [h*(g+2)*D, (h+1)*(g+2)*D): g query heads, then k_h, then v_h.
    block = (groups + 2) * head_dim
    for h in range(kv_heads):
        base = h * block
        assert torch.equal(q[h * groups * head_dim:(h + 1) * groups * head_dim], wqkv[base:base + groups * head_dim])
        assert torch.equal(k[h * head_dim:(h + 1) * head_dim], wqkv[base + groups * head_dim:base + block - head_dim])
        assert torch.equal(v[h * head_dim:(h + 1) * head_dim], wqkv[base + block - head_dim:base + block])
    assert torch.equal(fuse_wqkv(q, k, v, heads, kv_heads), wqkv)


INTERNLM2 = dict(vocab_size=50, hidden_size=24, intermediate_size=40, num_hidden_layers=2, num_attention_heads=6,
                 num_key_value_heads=2, max_position_embeddings=64, rms_norm_eps=1e-6, rope_theta=10000.0)


def _package_internlm2(config=INTERNLM2, attn='eager'):
    return LLMS.get('internlm2').build({'config': dict(config, bias=False)}, attn).eval()


def test_internlm2_matches_llama_with_split_weights():
    """Our fused-wqkv InternLM2 computes what transformers' Llama computes with q/k/v split out."""
    torch.manual_seed(0)
    ours = _package_internlm2()
    llama_cfg = transformers.LlamaConfig(attention_bias=False, **INTERNLM2)
    llama_cfg._attn_implementation = 'eager'
    llama = transformers.LlamaForCausalLM(llama_cfg).eval()
    mapped = {}
    for key, value in ours.state_dict().items():
        if key.endswith('self_attn.wqkv.weight'):
            stem = key[:-len('wqkv.weight')]
            for name, part in zip('qkv', split_wqkv(value, 6, 2)):
                mapped[f'{stem}{name}_proj.weight'] = part
        else:
            mapped[key] = value
    llama.load_state_dict(mapped, strict=True)
    ids = torch.randint(0, 50, (2, 9))
    mask = torch.ones_like(ids)
    mask[1, :3] = 0  # left padding
    with torch.no_grad():
        a = ours(input_ids=ids, attention_mask=mask).logits
        b = llama(input_ids=ids, attention_mask=mask).logits
    torch.testing.assert_close(a[0], b[0], atol=1e-5, rtol=0)
    torch.testing.assert_close(a[1, 3:], b[1, 3:], atol=1e-5, rtol=0)
    # Cached generation equals recomputing the whole sequence.
    with torch.no_grad():
        greedy = ours.generate(input_ids=ids[:1], max_new_tokens=5, do_sample=False, pad_token_id=0)
        manual = ids[:1]
        for _ in range(5):
            manual = torch.cat([manual, ours(input_ids=manual).logits[:, -1:].argmax(-1)], dim=1)
    assert torch.equal(greedy, manual)


@pytest.mark.parametrize('attn', ['eager', 'sdpa'])
def test_remote_internlm2_equals_package(attn):
    """The exported modeling_internlm2.py, given the official weights, computes the package's logits."""
    torch.manual_seed(1)
    remote = remote_internlm2.InternLM2ForCausalLM(InternLM2Config(bias=False, **INTERNLM2)).eval()
    ours = _package_internlm2(attn=attn)
    ours.load_state_dict(internlm2_keys.from_official(remote.state_dict()), strict=True)
    assert internlm2_keys.to_official(ours.state_dict()).keys() == remote.state_dict().keys()
    ids = torch.randint(0, 50, (2, 9))
    mask = torch.ones_like(ids)
    mask[1, :3] = 0
    with torch.no_grad():
        a, b = ours(input_ids=ids, attention_mask=mask).logits, remote(input_ids=ids, attention_mask=mask).logits
    torch.testing.assert_close(a[0], b[0], atol=1e-5, rtol=0)
    torch.testing.assert_close(a[1, 3:], b[1, 3:], atol=1e-5, rtol=0)
