"""Contract tests generated from the registries (timm's habit): every registered vision tower, connector, LLM
family, image processor and template is built tiny from its own tiny settings, put into each reference
composition below in place of that composition's own part, run, trained a step, saved in every layout
that holds the result, reloaded by vlmtune and loaded by the layout's owner (tests/helpers/owners.py) with
equal logits. A part registered tomorrow is covered with no test edit; one that cannot be built tiny, or
that no composition holds, fails here by name.

The compositions are built once (the `contracts` fixture); the per-part tests assert on what it recorded.
"""
import pytest
import torch

from helpers.owners import KNOWN_LIMITS, OWNERS, inputs_for, owner_logits
from vlmtune.data.image import REGISTRY as IMAGE_PROCESSORS
from vlmtune.data.normalisation import SIGLIP_MEAN, SIGLIP_STD
from vlmtune.data.templates import REGISTRY as TEMPLATES
from vlmtune.engine.trainability import apply_trainability
from vlmtune.formats import holds, layouts, load, save
from vlmtune.interfaces import Connector, ImageProcessor, Layout, LLMFamily, Template, VisionTower
from vlmtune.model.connector import REGISTRY as CONNECTORS
from vlmtune.model.llm import REGISTRY as LLMS
from vlmtune.model.vision_tower import REGISTRY as VISION_TOWERS
from vlmtune.tiny import compose_tiny

pytestmark = pytest.mark.side_envs

# One composition per family of layouts; a part under test replaces its kind in each (None: the LLM's template).
REFERENCES = {
    'internvl': dict(vision_tower='intern_vit', connector='pixel_shuffle_mlp', image_processor='internvl_dynamic',
                     template=None),
    'llava': dict(vision_tower='clip', connector='mlp2x_gelu', image_processor='pad', template='vicuna_v1'),
    'llava_next': dict(vision_tower='clip', connector='mlp2x_gelu', image_processor='anyres', template='vicuna_v1'),
    'blip2': dict(vision_tower='blip2_vision', connector='qformer', image_processor=('square', {'crop': False}),
                  template='plain'),
    'tinyllava': dict(vision_tower='siglip', connector='resampler',
                      image_processor=('square', {'crop': False, 'mean': SIGLIP_MEAN, 'std': SIGLIP_STD}),
                      template='vicuna_v1'),
}
REFERENCE_LLM = 'qwen2'
KINDS = {'vision_tower': (VISION_TOWERS, VisionTower), 'connector': (CONNECTORS, Connector), 'llm': (LLMS, LLMFamily),
         'image_processor': (IMAGE_PROCESSORS, ImageProcessor), 'template': (TEMPLATES, Template)}
PARTS = [(kind, name) for kind, (registry, _) in KINDS.items() for name in registry.names()
         if not name.startswith('test_')]  # (templates a test module registers for itself)
RELOAD_ATOL, OWNER_ATOL = 1e-5, 1e-4


def compositions_of(kind, name):
    """The reference compositions with `name` as their `kind` (deduplicated, in REFERENCES order)."""
    out = []
    for reference in REFERENCES.values():
        parts = {**reference, 'llm': REFERENCE_LLM, kind: name}
        if parts not in out:
            out.append(parts)
    return out


def forward(model, batch):
    with torch.no_grad():
        return model(**{k: v for k, v in batch.items() if k != 'labels'}).logits


def train_one_step(model, batch):
    """The connector fully (the LLM where the connector has no weights), one SGD step: what trains moves,
    nothing else does."""
    trains_connector = any(True for _ in model.connector.parameters())
    apply_trainability(model, vision_tower='frozen', connector='full' if trains_connector else 'frozen',
                       llm='frozen' if trains_connector else 'full')
    before = {k: v.clone() for k, v in model.state_dict().items()}
    trainable = {k for k, p in model.named_parameters() if p.requires_grad}
    model.train()
    loss = model(**batch, labels=batch['input_ids'], return_logits=False).loss
    loss.backward()
    torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.5).step()
    model.eval().requires_grad_(False)
    changed = {k for k, v in model.state_dict().items() if not torch.equal(v, before[k])}
    return float(loss), changed, trainable


@pytest.fixture(scope='module')
def contracts(tmp_path_factory):
    """{(kind, name): [record per composition]}; record: parts, layouts held, reload / owner differences."""
    root = tmp_path_factory.mktemp('contracts')
    built, records, jobs = {}, {}, []
    for kind, name in PARTS:
        records[kind, name] = []
        for parts in compositions_of(kind, name):
            key = repr(sorted(parts.items()))
            if key not in built:
                built[key] = build_and_save(parts, root / f'c{len(built)}', jobs)
            records[kind, name].append(built[key])
    for (record, layout), result in zip([(r, l) for r, l, _, _ in jobs],
                                        owner_logits([(l, f, b, r['family']) for r, l, f, b in jobs], root)):
        record['owner'][layout] = result.get('error') or float((result['logits'] - record['logits']).abs().max())
    return records


def build_and_save(parts, folder, jobs) -> dict:
    record = {'parts': parts, 'reload': {}, 'owner': {}}
    try:
        model, tokenizer = compose_tiny(**parts)
        batch = inputs_for(model, tokenizer)
    except (ValueError, TypeError) as exc:  # a composition these parts cannot make (said why)
        record['error'] = f'{type(exc).__name__}: {exc}'
        return record
    record['loss'], record['changed'], record['trainable'] = train_one_step(model, batch)
    record['logits'] = forward(model, batch)
    record['family'] = model.spec.family
    record['layouts'] = [layout.NAME for layout in layouts() if holds(layout.NAME, model.spec)]
    for index, layout in enumerate(record['layouts']):
        out = save(model, tokenizer, folder.parent / f'{folder.name}_{index}_{layout}', layout=layout, dtype='fp32')
        again, _ = load(out)
        record['reload'][layout] = float((forward(again, batch) - record['logits']).abs().max())
        if OWNERS.get(layout):
            jobs.append((record, layout, out, batch))
    return record


def test_registered_parts_satisfy_their_interfaces():
    for kind, (registry, protocol) in KINDS.items():
        for name in registry.names():
            assert isinstance(registry.get(name), protocol), (kind, name)
    for layout in layouts():
        assert isinstance(layout, Layout), layout.NAME


def test_every_layout_has_an_owner():
    assert {layout.NAME for layout in layouts()} <= set(OWNERS)


def test_every_layout_holds_a_reference_composition(contracts):
    """A layout no reference composition reaches would go unchecked: add its composition to REFERENCES."""
    reached = {layout for records in contracts.values() for r in records for layout in r.get('layouts', [])}
    assert {layout.NAME for layout in layouts()} <= reached


@pytest.mark.parametrize('kind,name', PARTS, ids=[f'{k}-{n}' for k, n in PARTS])
def test_part_builds_trains_saves_and_loads_in_its_owners_code(contracts, kind, name):
    records = contracts[kind, name]
    built = [r for r in records if 'error' not in r]
    assert built, f'{kind} {name!r} builds into no reference composition: {[r["error"] for r in records]}'
    for record in built:
        where = record['parts']
        assert torch.isfinite(record['logits']).all() and record['loss'] == record['loss'], where
        assert record['changed'] and record['changed'] <= record['trainable'], where
        assert record['reload'] and max(record['reload'].values()) <= RELOAD_ATOL, (where, record['reload'])
        for layout, diff in record['owner'].items():
            limit = KNOWN_LIMITS.get((layout, where['llm']))
            if limit:  # the owner's own limit, with its own error
                assert limit in diff, (where, layout, diff)
                continue
            assert not isinstance(diff, str), (where, layout, diff)
            assert diff <= OWNER_ATOL, (where, layout, diff)
    family_layouts = {layout for r in built for layout in r['layouts'] if layout != 'vlmtune'}
    print(f'\n{kind} {name}: {len(built)} compositions, layouts {sorted(family_layouts)}, owners '
          f'{sorted({layout for r in built for layout in r["owner"]})}')


@pytest.mark.parametrize('parts', [REFERENCES[name] for name in ('llava', 'blip2', 'tinyllava')],
                         ids=['llava', 'blip2', 'tinyllava'])
def test_tied_heads_round_trip_in_every_layout(parts, tmp_path):
    """An LLM whose head is its input embedding (Gemma, OPT, Qwen2-0.5B): every layout holding it saves the
    tensor as transformers does and reloads it tied, with equal logits."""
    from vlmtune.model.vlm import VisionLanguageModel
    model, tokenizer = compose_tiny(**{**parts, 'llm': REFERENCE_LLM})
    tied = VisionLanguageModel(model.spec.override({'llm': {'config': {'tie_word_embeddings': True}}})).eval()
    tied.set_tokenizer(tokenizer)
    assert tied.llm.get_output_embeddings().weight is tied.llm.get_input_embeddings().weight
    batch = inputs_for(tied, tokenizer)
    logits = forward(tied, batch)
    held = [layout.NAME for layout in layouts() if holds(layout.NAME, tied.spec)]
    assert len(held) >= 2
    for layout in held:
        again, _ = load(save(tied, tokenizer, tmp_path / layout, layout=layout, dtype='fp32'))
        assert again.llm.get_output_embeddings().weight is again.llm.get_input_embeddings().weight, layout
        assert (forward(again, batch) - logits).abs().max() <= RELOAD_ATOL, layout
