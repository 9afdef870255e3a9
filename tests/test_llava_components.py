"""LLaVA's parts (seed doc §1-§2): CLIP / SigLIP towers against transformers' own hidden states,
the linear / mlpNx_gelu / identity connectors, a model composed from tiny CLIP + Vicuna-style parts
against transformers' LlavaForConditionalGeneration, and partial:K on the CLIP tower."""
import pytest
import torch
from transformers import (CLIPConfig, CLIPModel, CLIPVisionConfig, CLIPVisionModel, LlamaConfig, LlavaConfig,
                          LlavaForConditionalGeneration, SiglipVisionConfig, SiglipVisionModel)

from vlmtune.engine.trainability import apply_trainability
from vlmtune.engine.model_source import build_model
from vlmtune.model.connector import REGISTRY as CONNECTORS
from vlmtune.model.vision_tower import REGISTRY as TOWERS
from vlmtune.tiny import TinyLlavaSpec, make_tiny_llava_parts, make_tiny_tower_folder

# ViT-L/14-336 / so400m-14-384 patch grids at a tiny width and depth: token counts are the real ones.
TINY_VIT = dict(hidden_size=16, intermediate_size=32, num_hidden_layers=3, num_attention_heads=2, patch_size=14)
REFERENCE = {'clip': (CLIPVisionConfig, CLIPVisionModel, 336), 'siglip': (SiglipVisionConfig, SiglipVisionModel, 384)}


def tiny_tower(kind, **settings):
    torch.manual_seed(0)
    config = dict(TINY_VIT, image_size=REFERENCE[kind][2])
    return TOWERS.get(kind)(config=config, **settings).eval(), config


def reference_hidden_states(kind, tower, config, pixel_values):
    """transformers' own model with the tower's weights under the same names (the pooling head aside)."""
    config_class, model_class, _ = REFERENCE[kind]
    reference = model_class(config_class(**config)).eval()
    result = reference.load_state_dict(tower.state_dict(), strict=False)
    assert not result.unexpected_keys and all(k.startswith('vision_model.head.') for k in result.missing_keys)
    with torch.no_grad():
        return reference(pixel_values, output_hidden_states=True).hidden_states


@pytest.mark.parametrize('kind,feature,dropped,tokens', [
    ('clip', 'patch', 1, 576), ('clip', 'cls_patch', 0, 577), ('siglip', 'patch', 0, 729),
    ('siglip', 'drop_first', 1, 728)])
def test_tower_equals_transformers_hidden_states(kind, feature, dropped, tokens):
    size = REFERENCE[kind][2]
    pixel_values = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(1))
    outputs = {}
    for layer in (-1, -2):
        tower, config = tiny_tower(kind, select_layer=layer, select_feature=feature)
        hidden = reference_hidden_states(kind, tower, config, pixel_values)
        with torch.no_grad():
            outputs[layer] = tower(pixel_values)
        assert outputs[layer].shape == (2, tokens, 16)
        torch.testing.assert_close(outputs[layer], hidden[layer][:, dropped:], atol=1e-6, rtol=0)
        settings = {'config': config, 'select_feature': feature}
        rows, cols = type(tower).patch_grid(settings, config['image_size'])
        assert rows * cols + type(tower).extra_tokens(settings) == tokens
    assert not torch.allclose(outputs[-1], outputs[-2])  # the layers really differ


def test_tower_settings_fail_clearly():
    with pytest.raises(ValueError, match='select_feature'):
        tiny_tower('siglip', select_feature='cls_patch')  # SigLIP has no CLS
    with pytest.raises(ValueError, match='select_layer'):
        tiny_tower('clip', select_layer=-5)  # 3 blocks: hidden_states has 4 entries
    with pytest.raises(ValueError, match='interpolate_pos_encoding'):
        TOWERS.get('clip').patch_grid({'config': dict(TINY_VIT, image_size=336)}, 448)
    assert TOWERS.get('clip').patch_grid({'config': dict(TINY_VIT, image_size=336), 'interpolate_pos_encoding': True},
                                         448) == (32, 32)


def test_frozen_tower_runs_without_autograd_and_trainable_one_backpropagates():
    tower, config = tiny_tower('clip')  # select_layer -2: blocks 0 and 1 run
    pixel_values = torch.randn(1, 3, 336, 336)
    grad_mode = []
    tower.blocks()[0].register_forward_hook(lambda *_: grad_mode.append(torch.is_grad_enabled()))
    tower.requires_grad_(False)
    assert not tower(pixel_values).requires_grad and grad_mode == [False]  # no graph is recorded
    block = tower.blocks()[1]
    block.requires_grad_(True)
    expected = tower(pixel_values)
    assert grad_mode[-1] is True
    expected.square().sum().backward()
    grads = [p.grad.clone() for p in block.parameters()]
    block.zero_grad()
    tower.train().set_gradient_checkpointing(True)  # dropouts are 0: same numbers
    out = tower(pixel_values)
    out.square().sum().backward()
    torch.testing.assert_close(out, expected, atol=1e-6, rtol=0)
    for grad, p in zip(grads, block.parameters()):
        torch.testing.assert_close(p.grad, grad, atol=1e-5, rtol=1e-4)
    assert all(p.grad is None for p in tower.blocks()[2].parameters())  # after layer -2: never runs


# --- connectors ---------------------------------------------------------------------------------
def test_mlp2x_gelu_order_and_llava_parameter_counts():
    mlp = CONNECTORS.get('mlp2x_gelu')
    layers = list(mlp(vision_width=8, llm_width=12))
    assert [type(m).__name__ for m in layers] == ['Linear', 'GELU', 'Linear'] and layers[1].approximate == 'none'
    assert list(mlp(8, 12).state_dict()) == ['0.weight', '0.bias', '2.weight', '2.bias']
    with torch.device('meta'):  # the real sizes, nothing allocated
        for hidden, expected in ((4096, 20_979_712), (5120, 31_467_520)):
            assert sum(p.numel() for p in mlp(1024, hidden).parameters()) == expected == \
                1024 * hidden + hidden + hidden * hidden + hidden


def test_mlp2x_gelu_computes_linear_gelu_linear():
    torch.manual_seed(0)
    mlp = CONNECTORS.get('mlp2x_gelu')(8, 12)
    x = torch.randn(2, 5, 8)
    manual = x @ mlp[0].weight.T + mlp[0].bias
    manual = torch.nn.functional.gelu(manual) @ mlp[2].weight.T + mlp[2].bias
    torch.testing.assert_close(mlp(x), manual)


@pytest.mark.parametrize('depth', range(1, 9))
def test_mlp_depths(depth):
    mlp = CONNECTORS.get(f'mlp{depth}x_gelu')(8, 12)
    assert len(mlp) == 2 * depth - 1 and mlp.lora_targets == [str(2 * i) for i in range(depth)]
    assert sum(p.numel() for p in mlp.parameters()) == 8 * 12 + 12 + (depth - 1) * (12 * 12 + 12)


def test_linear_and_identity_connectors():
    linear = CONNECTORS.get('linear')(vision_width=8, llm_width=12)
    assert list(linear.state_dict()) == ['weight', 'bias']  # LLaVA's mm_projector.weight / .bias
    assert linear(torch.randn(2, 5, 8)).shape == (2, 5, 12)
    x = torch.randn(2, 5, 8)
    assert CONNECTORS.get('identity')(8, 8)(x) is x
    with pytest.raises(ValueError, match='8 wide but the LLM 12'):
        CONNECTORS.get('identity')(8, 12)


@pytest.mark.parametrize('name', ['linear', 'mlp2x_gelu', 'identity'])
def test_connector_token_counts(name):
    connector = CONNECTORS.get(name)
    assert connector.tokens_out({}, (24, 24)) == 576
    assert connector.tokens_out({}, (24, 24), extra_tokens=1) == 577
    assert connector.tokens_out({}, (27, 27), extra_tokens=-1) == 728
    assert connector.grid_out({}, (24, 24)) == (24, 24)


# --- composed from tiny parts --------------------------------------------------------------------
@pytest.fixture(scope='module')
def parts(tmp_path_factory):
    out = tmp_path_factory.mktemp('llava-parts')
    made = make_tiny_llava_parts(out, tower='clip')
    made['siglip'] = make_tiny_tower_folder(out / 'siglip', TinyLlavaSpec(tower='siglip'))
    return made


def llava_spec(parts, tower='clip', **tower_settings):
    folder = parts['vision_tower'] if tower == 'clip' else parts['siglip']
    return dict(vision_tower={'type': tower, 'pretrained': str(folder), **tower_settings},
                connector={'type': 'mlp2x_gelu'}, llm={'type': 'llama', 'pretrained': str(parts['llm'])},
                image_processor={'type': 'internvl_dynamic', 'image_size': 336 if tower == 'clip' else 384,
                                 'max_tiles': 1},
                template={'type': 'internvl2_5'})


def to_llava_hf(model, tokenizer, parts):
    """transformers' LlavaForConditionalGeneration holding the same weights (prefix renames only)."""
    text = LlamaConfig.from_pretrained(parts['llm'])
    text.vocab_size = len(tokenizer)
    config = LlavaConfig(vision_config=CLIPVisionConfig.from_pretrained(parts['vision_tower']).to_dict(),
                         text_config=text.to_dict(), projector_hidden_act='gelu', vision_feature_layer=-2,
                         vision_feature_select_strategy='default',
                         image_token_index=tokenizer.convert_tokens_to_ids('<IMG_CONTEXT>'))
    renames = {'connector.0.': 'multi_modal_projector.linear_1.', 'connector.2.': 'multi_modal_projector.linear_2.',
               'llm.': 'language_model.'}
    state = {}
    for key, value in model.state_dict().items():
        for old, new in renames.items():
            key = new + key[len(old):] if key.startswith(old) else key
        state[key] = value
    reference = LlavaForConditionalGeneration(config).eval()
    reference.load_state_dict(state, strict=True)
    return reference


def test_composed_clip_vicuna_equals_transformers_llava(parts):
    model, tokenizer = build_model(spec=llava_spec(parts))
    assert model.image_tokens.per_tile == 576 and model.llm.config.head_dim == 32
    reference = to_llava_hf(model, tokenizer, parts)
    pixel_values = torch.randn(1, 3, 336, 336, generator=torch.Generator().manual_seed(0))
    prompt = model.image_tokens.expand('<image>\nWhat is in the image? A cat.', [1])
    inputs = tokenizer(prompt, return_tensors='pt')
    labels = inputs.input_ids.clone()
    with torch.no_grad():
        features = model.extract_feature(pixel_values)
        expected = reference.get_image_features(pixel_values, vision_feature_layer=-2,
                                                vision_feature_select_strategy='default')
        ours = model(pixel_values=pixel_values, input_ids=inputs.input_ids, attention_mask=inputs.attention_mask,
                     labels=labels)
        theirs = reference(pixel_values=pixel_values, input_ids=inputs.input_ids,
                           attention_mask=inputs.attention_mask, labels=labels)
    assert features.shape == (1, 576, 128)
    torch.testing.assert_close(features, expected, atol=1e-6, rtol=0)
    torch.testing.assert_close(ours.logits, theirs.logits, atol=1e-5, rtol=0)
    torch.testing.assert_close(ours.loss, theirs.loss, atol=1e-6, rtol=0)


def test_siglip_parts_keep_the_pooling_head_and_count_both_selections(parts):
    model, _ = build_model(spec=llava_spec(parts, 'siglip'))
    assert model.image_tokens.per_tile == 729
    released = SiglipVisionModel.from_pretrained(parts['siglip']).eval()
    heads = {k: v for k, v in model.vision_tower.state_dict().items() if '.head.' in k}
    assert heads and all(torch.equal(v, released.state_dict()[k]) for k, v in heads.items())  # round-trips whole
    pixel_values = torch.randn(1, 3, 384, 384)
    with torch.no_grad():
        torch.testing.assert_close(model.vision_tower(pixel_values),
                                   released(pixel_values, output_hidden_states=True).hidden_states[-2], atol=1e-6,
                                   rtol=0)
    model, _ = build_model(spec=llava_spec(parts, 'siglip', select_feature='drop_first'))
    assert model.image_tokens.per_tile == 728 and model.extract_feature(pixel_values).shape[1] == 728


def test_parts_take_the_vision_half_of_a_two_tower_clip_folder(parts, tmp_path):
    """OpenAI releases CLIPModel folders (text tower, projections, nested vision_config)."""
    vision = CLIPVisionConfig.from_pretrained(parts['vision_tower'])
    torch.manual_seed(3)
    full = CLIPModel(CLIPConfig(vision_config=vision.to_dict(),
                                text_config=dict(hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                                 num_attention_heads=2), projection_dim=8))
    full.save_pretrained(tmp_path / 'clip-full')
    model, _ = build_model(spec={**llava_spec(parts), 'vision_tower': {'type': 'clip',
                                                                         'pretrained': str(tmp_path / 'clip-full')}})
    assert 'text_config' not in model.spec.vision_tower['config']
    expected = full.vision_model.state_dict()
    ours = model.vision_tower.vision_model.state_dict()
    assert ours.keys() == expected.keys() and all(torch.equal(v, expected[k]) for k, v in ours.items())


def test_partial_k_on_the_clip_tower_trains_layers_k_and_up(parts):
    model, tokenizer = build_model(spec=llava_spec(parts))
    report = apply_trainability(model, vision_tower='partial:1', connector='full', llm='frozen')
    trainable = {k for k, p in model.vision_tower.named_parameters() if p.requires_grad}
    expected = {k for k, _ in model.vision_tower.named_parameters() if k.startswith(
        ('vision_model.encoder.layers.1.', 'vision_model.encoder.layers.2.'))}
    assert trainable == expected and report.trainable > 0
    features = model.extract_feature(torch.randn(1, 3, 336, 336))
    features.square().mean().backward()
    layers = model.vision_tower.blocks()
    assert all(p.grad is not None for p in layers[1].parameters())  # layer -2 of 3 is block 1
    assert all(p.grad is None for p in layers[0].parameters())
    with pytest.raises(ValueError, match='K must be 0..2'):
        apply_trainability(build_model(spec=llava_spec(parts))[0], vision_tower='partial:3', connector='full', llm='frozen')


def test_lora_on_the_clip_tower_matches_its_declared_targets(parts):
    model, _ = build_model(spec=llava_spec(parts))
    report = apply_trainability(model, vision_tower='lora', connector='full', llm='frozen')
    assert len(report.lora_matches['vision_tower']) == 6 * 3  # q, k, v, out, fc1, fc2 in each of 3 blocks
    assert model.extract_feature(torch.randn(1, 3, 336, 336)).requires_grad


def test_tiny_parts_are_plain_transformers_folders(parts):
    from transformers import AutoTokenizer, LlamaForCausalLM, LlamaTokenizer, LlamaTokenizerFast
    assert sorted(p.name for p in parts['vision_tower'].iterdir()) == ['config.json', 'model.safetensors']
    assert CLIPVisionModel.from_pretrained(parts['vision_tower']).config.image_size == 336
    llm = LlamaForCausalLM.from_pretrained(parts['llm'])
    fast, slow = AutoTokenizer.from_pretrained(parts['llm']), LlamaTokenizer.from_pretrained(parts['llm'])
    assert isinstance(fast, LlamaTokenizerFast) and len(fast) == len(slow) == llm.config.vocab_size
    assert (fast.unk_token_id, fast.bos_token_id, fast.eos_token_id, fast.pad_token) == (0, 1, 2, None)
    assert '<image>' not in fast.get_vocab() and '<IMG_CONTEXT>' not in fast.get_vocab()
    text = 'USER: <image>\nWhat is in the image? ASSISTANT: A cat.</s>USER: 12 apples'
    assert fast(text).input_ids == slow(text).input_ids and fast.tokenize('A cat')[0] == '\u2581A'
