"""Dataset and collate builders referenced by recipes."""
import random
from pathlib import Path

from torch.utils.data import Dataset

from ..data.collate import greedy_pack, pack_collate, pad_collate
from ..data.loss_weights import check_reduction
from ..data.image.orientation import check_rule
from ..data.dataset import ConversationDataset
from ..data.meta import read_meta
from ..data.mixture import MixtureDataset
from ..preference.data import PreferenceDataset, preference_collate
from .model_source import resolve_spec


class PackedDataset(Dataset):
    """Items are groups of samples whose total length fits `max_length` (one packed row each)."""

    def __init__(self, dataset: ConversationDataset, max_length: int, seed: int = 0):
        order = list(range(len(dataset)))
        random.Random(seed).shuffle(order)
        packs = greedy_pack([dataset.lengths[i] for i in order], max_length)
        self.dataset = dataset
        self.packs = [[order[i] for i in pack] for pack in packs]
        self.lengths = [sum(dataset.lengths[i] for i in pack) for pack in self.packs]

    def __len__(self):
        return len(self.packs)

    def __getitem__(self, index):
        return [self.dataset[i] for i in self.packs[index]]


def build_train_dataset(checkpoint=None, data_path=None, image_root=None, max_length=4096, max_tiles=None,
                        packing=False, jpeg_augment=False, seed=0, cache_dir=None, spec=None, exif=None,
                        uint8_pixels=True, parts=None, strict=False, meta=None, frames=(8, 32), pairs=False):
    """checkpoint / parts / spec: the model, as the recipe's `model` names it (the data path asks its spec for
    the template, image processor and image tokens; no weights are read). exif: the EXIF orientation rule
    ('ignore' / 'transpose'; default: the model's, which is 'ignore' unless its folder says otherwise);
    `vlmtune convert` writes it into the folder so every serving path applies it. uint8_pixels: tiles
    leave the loader as bytes where the image processor can hand them out (InternVL's), and the model
    normalises them on its device (the same float32 numbers, a quarter of the host memory traffic).
    strict: any row that cannot be trained stops the run (`vlmtune train --strict`) instead of being skipped.
    meta: an official InternVL meta file (data/meta.py) in place of data_path / image_root: its sources, each with
    its repeat_time, data_augment and max_dynamic_patch, trained as one mixture. frames: (min, max) frames drawn per
    video row (the official --min_num_frame / --max_num_frame, 8 and 32). pairs: preference rows (question, chosen,
    rejected; vlmtune/preference/data.py) for an MPO / DPO recipe."""
    if meta and data_path:
        raise ValueError(f'train_dataloader.dataset: both meta={meta} and data_path={data_path}; give one (`vlmtune '
                         f'train --meta FILE` clears data_path)')
    if not meta and (not data_path or not Path(data_path).exists()):
        raise FileNotFoundError(f'{data_path}: dataset file not found')
    model_spec, tokenizer = resolve_spec(checkpoint, spec, parts)
    llm = model_spec.component('llm')
    if packing and not llm.packing:
        raise ValueError(f'packing=True: the {llm.family} LLM computes no packed rows (its attention takes no '
                         f'per-sample block mask); set train_dataloader.dataset.packing=False')
    if exif:
        model_spec = model_spec.override({'image_processor': {'exif': check_rule(exif)}})

    def read(path, root, tiles, augment):
        tiled = model_spec.override({'image_processor': {'max_tiles': tiles}}) if tiles else model_spec
        data_spec = tiled.data_spec(tokenizer, max_length, augment, uint8_pixels)
        data_spec.min_frames, data_spec.max_frames = frames
        return (PreferenceDataset if pairs else ConversationDataset)(path, root, data_spec, cache_dir=cache_dir, seed=seed)
    if meta:
        sources = read_meta(meta)
        dataset = MixtureDataset(sources, [read(s.annotation, s.root, s.max_dynamic_patch or max_tiles,
                                                s.data_augment) for s in sources])
        print(dataset.summary())
        where = meta
    else:
        dataset, where = read(data_path, image_root, max_tiles, jpeg_augment), data_path
    if dataset.rejects:
        first = dataset.rejects[0]
        source = f'{first["file"]} ' if 'file' in first else ''
        message = (f'{where}: {len(dataset.rejects)} row(s) cannot be trained, e.g. {source}row {first["row"]}: '
                   f'{first["reason"]} (`vlmtune data check {"--meta " + str(meta) if meta else data_path + " --images IMAGES"}'
                   f' --model FOLDER` lists them)')
        if strict:
            raise ValueError(f'{message}; --strict stops here')
        print(f'{message}; they are skipped')
    if not len(dataset):
        raise ValueError(f'{where}: no trainable rows')
    return PackedDataset(dataset, max_length, seed) if packing else dataset


def vlm_collate(samples, pad_token_id: int = 0, loss_reduction: str = 'token'):
    """Padded batch, or, for packed items (lists of samples), one packed row per batch; loss_reduction 'token' |
    'sample' | 'square' (data/loss_weights.py) weighs each sample's tokens as InternVL's fine-tuning code does."""
    check_reduction(loss_reduction)
    if isinstance(samples[0], list):
        if len(samples) != 1:
            raise ValueError('packed training takes batch_size=1 (each item is already a full row)')
        return {'data': pack_collate(samples[0], pad_token_id, loss_reduction=loss_reduction), 'data_samples': None}
    return {'data': pad_collate(samples, pad_token_id, loss_reduction), 'data_samples': None}


def pair_collate(samples, pad_token_id: int = 0, loss_reduction: str = 'token'):
    """Preference pairs: 2B rows (the chosen answers, then the rejected ones) and each pair's tiles once."""
    if loss_reduction != 'token':
        raise ValueError(f'loss_reduction {loss_reduction!r}: preference losses sum each answer\'s log-probs; the '
                         f'token weighting of supervised recipes does not apply (leave it at token)')
    return {'data': preference_collate(samples, pad_token_id), 'data_samples': None}
