"""The Q-Former (BLIP-2, on transformers' Blip2QFormerModel) and Perceiver resampler (TinyLLaVA) connectors:
(B, Q, H) for any patch count, cross-attention exactly in layers 0, 2, ..., output invariant to the order
of the image tokens, the connector equal to BLIP-2's own query path in a Blip2ForConditionalGeneration
built by transformers, the resampler's parameter count = the seed doc's formula, and a CLIP + Q-Former +
Llama composition from parts that trains a step and reloads with equal logits."""
import pytest
import torch
from transformers import Blip2Config, Blip2ForConditionalGeneration

from vlmtune.model.connector import REGISTRY as CONNECTORS

TINY_QFORMER = dict(hidden_size=64, num_hidden_layers=6, num_attention_heads=4, intermediate_size=128)


def qformer(vision_width=48, llm_width=80, queries=8):
    torch.manual_seed(0)
    return CONNECTORS.get('qformer')(vision_width, llm_width, num_query_tokens=queries, config=TINY_QFORMER).eval()


@pytest.mark.parametrize('name,settings', [('qformer', dict(num_query_tokens=8, config=TINY_QFORMER)),
                                           ('resampler', dict(num_queries=8, num_layers=2, heads=2, dim_head=16))])
@pytest.mark.parametrize('patches', [1, 17, 257])
def test_output_is_batch_queries_width_for_any_patch_count(name, settings, patches):
    connector = CONNECTORS.get(name)(48, 80, **settings).eval()
    with torch.no_grad():
        out = connector(torch.randn(3, patches, 48))
    assert out.shape == (3, 8, 80)
    assert CONNECTORS.get(name).tokens_out(settings, (16, 16)) == 8 == CONNECTORS.get(name).tokens_out(settings, (2, 3))


def test_cross_attention_exactly_every_second_layer():
    connector = qformer()
    assert connector.cross_attention_layers() == [0, 2, 4]
    assert [hasattr(layer, 'crossattention') for layer in connector.qformer.encoder.layer] == [True, False] * 3


@pytest.mark.parametrize('name,settings', [('qformer', dict(num_query_tokens=8, config=TINY_QFORMER)),
                                           ('resampler', dict(num_queries=8, num_layers=2, heads=2, dim_head=16))])
def test_output_does_not_depend_on_image_token_order(name, settings):
    torch.manual_seed(0)
    connector = CONNECTORS.get(name)(48, 80, **settings).eval()
    features = torch.randn(2, 30, 48)
    with torch.no_grad():
        out, permuted = connector(features), connector(features[:, torch.randperm(30)])
        other = connector(torch.randn(2, 30, 48))
    torch.testing.assert_close(permuted, out, atol=1e-5, rtol=0)
    assert (other - out).abs().max() > 1e-3  # the features do reach the output


def test_qformer_equals_blip2s_own_query_path():
    """Weights moved from a tiny Blip2ForConditionalGeneration (transformers' own classes) under the same
    names: our connector gives its language_projection(qformer(query_tokens, image embeddings))."""
    config = Blip2Config(vision_config=dict(hidden_size=48, intermediate_size=96, num_hidden_layers=2,
                                            num_attention_heads=4, image_size=28, patch_size=14),
                         qformer_config=TINY_QFORMER, text_config=dict(model_type='opt', hidden_size=80,
                         ffn_dim=160, num_hidden_layers=2, num_attention_heads=4, vocab_size=100,
                         word_embed_proj_dim=80), num_query_tokens=8)
    torch.manual_seed(0)
    blip2 = Blip2ForConditionalGeneration(config).eval()
    ours = qformer()
    theirs = {k: v for k, v in blip2.state_dict().items()
              if k.split('.')[0] in ('query_tokens', 'qformer', 'language_projection')}
    assert set(theirs) == set(ours.state_dict())  # the same parameter names, so blip2_hf maps 1:1
    ours.load_state_dict(theirs)
    pixels = torch.randn(2, 3, 28, 28)
    with torch.no_grad():
        image = blip2.vision_model(pixel_values=pixels).last_hidden_state
        queries = blip2.qformer(query_embeds=blip2.query_tokens.expand(2, -1, -1), encoder_hidden_states=image,
                                encoder_attention_mask=torch.ones(image.shape[:2], dtype=torch.long))
        expected = blip2.language_projection(queries.last_hidden_state)
        torch.testing.assert_close(ours(image), expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize('dv,h,q,layers', [(1024, 2560, 128, 3), (48, 80, 8, 2), (1152, 896, 64, 1)])
def test_resampler_parameter_count_is_the_formula(dv, h, q, layers):
    cls = CONNECTORS.get('resampler')
    with torch.device('meta'):
        connector = cls(dv, h, num_queries=q, num_layers=layers)
    assert sum(p.numel() for p in connector.parameters()) == cls.parameter_count(dv, h, q, layers)
    if (dv, h, q, layers) == (1024, 2560, 128, 3):
        assert cls.parameter_count(dv, h, q, layers) == 176_017_920  # seed-systems.md §4


@pytest.mark.parametrize('connector', [dict(type='qformer', num_query_tokens=6, config=TINY_QFORMER),
                                       dict(type='resampler', num_queries=6, num_layers=1, heads=2, dim_head=16)])
def test_clip_composition_trains_a_step_and_reloads(connector, tmp_path):
    from vlmtune.engine import TrainingModel
    from vlmtune.formats import load, save
    from vlmtune.tiny import TinyLlavaSpec, make_tiny_llava_parts
    parts = make_tiny_llava_parts(tmp_path / 'parts', spec=TinyLlavaSpec(image_size=56))
    spec = dict(vision_tower=dict(type='clip', pretrained=str(parts['vision_tower']), select_layer=-2),
                connector=connector, llm=dict(type='llama', pretrained=str(parts['llm'])),
                image_processor=dict(type='square', image_size=56), template=dict(type='vicuna_v1'))
    wrapper = TrainingModel(parts=spec, vision_tower='frozen', connector='full', llm='frozen', dtype='fp32')
    model, tokenizer = wrapper.model, wrapper.tokenizer
    assert model.num_image_token == 6
    ids = tokenizer('USER: ' + '<image>' * 6 + '\nWhat colour? ASSISTANT: red', return_tensors='pt').input_ids
    batch = dict(pixel_values=torch.randn(1, 3, 56, 56), input_ids=ids, labels=ids,
                 attention_mask=torch.ones_like(ids))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    losses = wrapper(batch)
    losses['loss'].backward()
    torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1).step()
    changed = {k for k, v in model.state_dict().items() if not torch.equal(v, before[k])}
    assert changed and all(k.startswith('connector.') for k in changed)
    out = save(model.eval(), tokenizer, tmp_path / 'saved', dtype='fp32')
    again, _ = load(out)
    with torch.no_grad():
        torch.testing.assert_close(again(**{k: v for k, v in batch.items() if k != 'labels'}).logits,
                                   model(**{k: v for k, v in batch.items() if k != 'labels'}).logits, atol=1e-6, rtol=0)


def test_blip2_vision_tower_gives_blip2s_image_embeddings():
    from vlmtune.model.vision_tower import REGISTRY as TOWERS
    config = dict(hidden_size=48, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4, image_size=28,
                  patch_size=14)
    torch.manual_seed(0)
    tower = TOWERS.get('blip2_vision')(config).eval()
    from transformers import Blip2VisionModel, Blip2VisionConfig
    theirs = Blip2VisionModel(Blip2VisionConfig(**config)).eval()
    theirs.load_state_dict({k[len('vision_model.'):]: v for k, v in tower.state_dict().items()})
    pixels = torch.randn(2, 3, 28, 28)
    with torch.no_grad():
        torch.testing.assert_close(tower(pixels), theirs(pixel_values=pixels).last_hidden_state, atol=1e-6, rtol=0)
    assert TOWERS.get('blip2_vision').patch_grid({'config': config}, 28) == (2, 2)
    assert TOWERS.get('blip2_vision').extra_tokens({}) == 1  # 4 patches + CLS: all 5 tokens, as BLIP-2 reads them
