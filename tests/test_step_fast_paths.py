"""The training step's fast paths give the plain path's numbers: uint8 tiles normalised by the model,
the padding mask dropped for right-padded batches, and the CPU half-precision patch convolution."""
import pytest
import torch
from torch import nn

from helpers.training_data import make_colour_dataset
from vlmtune.data.collate import pad_collate
from vlmtune.engine import build_train_dataset
from vlmtune.model.packed_attention import enable_packed_attention
from vlmtune.model.cpu_half import PatchConv2d, differentiable_attention, use_patch_conv
from vlmtune.model.vlm import unneeded_padding_mask_dropped
from vlmtune.tiny import TinySpec, build_tiny_model


@pytest.fixture(scope='module')
def colour_data(tmp_path_factory):
    return make_colour_dataset(tmp_path_factory.mktemp('fast-paths'), n=6)


def loss_and_grads(model, batch):
    model.zero_grad(set_to_none=True)
    loss = model(**batch).loss
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def test_uint8_tiles_leave_the_loader_and_the_model_normalises_them_to_the_same_numbers(tiny_folder, colour_data):
    folder = tiny_folder(llm='qwen2', max_dynamic_patch=2)
    data, images = colour_data
    raw = build_train_dataset(folder, data, images, max_length=512)
    floats = build_train_dataset(folder, data, images, max_length=512, uint8_pixels=False)
    assert raw[0]['pixel_values'].dtype == torch.uint8 and floats[0]['pixel_values'].dtype == torch.float32
    processor = raw.spec.image_processor
    for i in range(len(raw)):
        assert torch.equal(processor.normalize(raw[i]['pixel_values']), floats[i]['pixel_values']), i
    model, tokenizer = build_tiny_model(TinySpec(llm='qwen2', max_dynamic_patch=2))
    model.train()
    batches = [pad_collate([d[0], d[1]], 0) for d in (raw, floats)]
    (loss_u8, grads_u8), (loss_f, grads_f) = (loss_and_grads(model, b) for b in batches)
    assert torch.equal(loss_u8, loss_f) and grads_u8.keys() == grads_f.keys()
    assert all(torch.equal(grads_u8[k], grads_f[k]) for k in grads_f)


def test_a_right_padded_training_batch_needs_no_padding_mask():
    right = torch.tensor([[1, 1, 1, 0], [1, 1, 1, 1]])
    assert unneeded_padding_mask_dropped(right) is None
    for kept in (torch.tensor([[0, 1, 1, 1], [1, 1, 1, 1]]), torch.tensor([[1, 0, 1, 1], [1, 1, 1, 1]])):
        assert unneeded_padding_mask_dropped(kept) is kept  # left padding, a hole
    block = torch.zeros(1, 1, 4, 4)
    assert unneeded_padding_mask_dropped(block) is block  # packed rows keep their block mask


@pytest.mark.parametrize('llm', ['internlm2', 'qwen2'])
@pytest.mark.parametrize('packed_attention', [False, True])
def test_the_padded_batch_loss_and_gradients_equal_each_sample_run_alone(llm, packed_attention, tiny_folder,
                                                                         colour_data):
    """Dropping the mask must change nothing: the padded batch's token-mean loss and its gradients equal
    those of the samples run one at a time (no padding at all), weighted by their trained tokens. Training
    runs the LLM under `sdpa_packed`: there too no mask reaches the attention."""
    folder = tiny_folder(llm=llm, max_dynamic_patch=2)
    data, images = colour_data
    dataset = build_train_dataset(folder, data, images, max_length=512)
    samples = [dataset[i] for i in range(len(dataset))]
    samples.sort(key=lambda s: len(s['input_ids']))
    short, long = samples[0], samples[-1]
    assert len(short['input_ids']) < len(long['input_ids'])  # the batch pads
    model, _ = build_tiny_model(TinySpec(llm=llm, max_dynamic_patch=2))
    model.train()
    for module in model.modules():  # dropout would draw differently per call
        if isinstance(module, nn.Dropout):
            module.p = 0.0
    if packed_attention:
        assert enable_packed_attention(model.llm)
    seen = []
    model.llm.model.layers[0].self_attn.register_forward_pre_hook(
        lambda m, a, kw: seen.append(kw['attention_mask']), with_kwargs=True)
    batch_loss, batch_grads = loss_and_grads(model, pad_collate([short, long], 0))
    assert seen == [None]  # the fast path ran: no mask reached the attention
    weights = [int((s['labels'][1:] != -100).sum()) for s in (short, long)]
    alone = [loss_and_grads(model, pad_collate([s], 0)) for s in (short, long)]
    expected = sum(w * loss for w, (loss, _) in zip(weights, alone)) / sum(weights)
    torch.testing.assert_close(batch_loss, expected, rtol=1e-5, atol=1e-6)
    for name, grad in batch_grads.items():
        combined = sum(w * grads[name] for w, (_, grads) in zip(weights, alone)) / sum(weights)
        torch.testing.assert_close(grad, combined, rtol=1e-4, atol=1e-6, msg=name)


def test_the_cpu_half_precision_patch_convolution_is_an_fp32_convolution_rounded_once():
    torch.manual_seed(0)
    plain = nn.Conv2d(3, 8, 14, 14)
    fast = PatchConv2d(3, 8, 14, 14)
    fast.load_state_dict(plain.state_dict())
    x = torch.randn(2, 3, 56, 56)
    assert torch.equal(fast(x), plain(x))  # fp32: nn.Conv2d itself
    fast_bf16, x_bf16 = fast.to(torch.bfloat16), x.to(torch.bfloat16)
    reference = nn.functional.conv2d(x_bf16.float(), fast_bf16.weight.float(), fast_bf16.bias.float(), stride=14)
    out = fast_bf16(x_bf16)
    assert out.dtype == torch.bfloat16 and torch.equal(out, reference.to(torch.bfloat16))
    x_bf16.requires_grad_(True)
    fast_bf16(x_bf16).sum().backward()
    assert x_bf16.grad is not None and x_bf16.grad.dtype == torch.bfloat16


def test_every_tower_embeds_patches_with_it_under_unchanged_names():
    model, _ = build_tiny_model(TinySpec(llm='qwen2'))
    assert type(model.vision_tower.embeddings.patch_embedding) is PatchConv2d
    assert 'embeddings.patch_embedding.weight' in model.vision_tower.state_dict()
    from vlmtune.model.vision_tower.clip import CLIPTower
    tower = CLIPTower({'hidden_size': 32, 'intermediate_size': 64, 'num_hidden_layers': 2, 'num_attention_heads': 2,
                       'image_size': 56, 'patch_size': 14})
    assert type(tower.vision_model.embeddings.patch_embedding) is PatchConv2d
    assert 'vision_model.embeddings.patch_embedding.weight' in tower.state_dict()
    wrapped = use_patch_conv(nn.Sequential(nn.Conv2d(3, 4, 2), nn.Linear(2, 2)))
    assert type(wrapped[0]) is PatchConv2d and type(wrapped[1]) is nn.Linear


def test_attention_with_a_backward_to_come_runs_in_fp32_on_cpu_half_precision():
    seen = []

    def attend(q, k, v, mask):
        seen.append((q.dtype, None if mask is None else mask.dtype))
        return torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    torch.manual_seed(0)
    q, k, v = (torch.randn(1, 2, 8, 16) for _ in range(3))
    mask = torch.zeros(1, 1, 8, 8).masked_fill(torch.ones(8, 8, dtype=torch.bool).triu(1), -1e30)
    half = [t.to(torch.bfloat16).requires_grad_(True) for t in (q, k, v)]
    out = differentiable_attention(attend, *half, mask.to(torch.bfloat16))
    assert seen == [(torch.float32, torch.float32)] and out.dtype == torch.bfloat16
    out.float().sum().backward()
    reference = [t.detach().float().requires_grad_(True) for t in half]
    attend(*reference, mask).sum().backward()
    for got, want in zip(half, reference):
        assert got.grad.dtype == torch.bfloat16
        torch.testing.assert_close(got.grad.float(), want.grad.to(torch.bfloat16).float())
    with torch.no_grad():  # forward only (frozen towers, generation): half precision stays
        differentiable_attention(attend, *(t.detach() for t in half))
    differentiable_attention(attend, q, k, v)  # fp32: as given
    assert seen[-2:] == [(torch.bfloat16, None), (torch.float32, None)]


@pytest.mark.parametrize('llm', ['qwen2', 'internlm2', 'phi3', 'llama', 'qwen3'])
def test_the_loss_from_labelled_positions_only_equals_the_full_logits_loss(llm, tiny_folder, colour_data):
    """Training asks for the loss only: the LM head runs on the labelled positions (through peft's LoRA
    wrapper too); loss and gradients equal those from the full [batch, length, vocab] logits."""
    from vlmtune.engine.trainability import LoraSettings, apply_trainability
    folder = tiny_folder(llm=llm, max_dynamic_patch=2)
    data, images = colour_data
    dataset = build_train_dataset(folder, data, images, max_length=512)
    batch = pad_collate([dataset[i] for i in range(3)], 0)
    model, _ = build_tiny_model(TinySpec(llm=llm, max_dynamic_patch=2))
    apply_trainability(model, vision_tower='frozen', connector='full', llm='lora', lora=LoraSettings(r=4, alpha=8, dropout=0.0))
    model.train()
    full_loss, full_grads = loss_and_grads(model, batch)
    model.zero_grad(set_to_none=True)
    out = model(**batch, return_logits=False)
    out.loss.backward()
    assert out.logits is None and out.lm_loss is out.loss
    torch.testing.assert_close(out.loss, full_loss, rtol=1e-6, atol=1e-6)
    grads = {n: p.grad for n, p in model.named_parameters() if p.grad is not None}
    assert grads.keys() == full_grads.keys() and any('lora_' in n for n in grads)
    for name, grad in grads.items():
        torch.testing.assert_close(grad, full_grads[name], rtol=1e-5, atol=1e-7, msg=name)
