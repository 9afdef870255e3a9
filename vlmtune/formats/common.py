"""What every layout adapter shares: one-line checkpoint errors, safetensors reading and (sharded)
writing, and staged folder writes (built under a temporary sibling name, renamed into place only
when complete, so a failure never leaves a half-written folder or loses the previous one)."""
import json
import shutil
import uuid
from contextlib import contextmanager
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

DTYPES = {'bf16': torch.bfloat16, 'fp16': torch.float16, 'fp32': torch.float32}
DTYPE_NAMES = {torch.bfloat16: 'bfloat16', torch.float16: 'float16', torch.float32: 'float32'}


class CheckpointError(ValueError):
    """A problem with a checkpoint folder; the message names the file, key and fix."""


def read_json(path: Path, what: str = 'file') -> dict:
    if not path.exists():
        raise CheckpointError(f'{path}: missing ({what})')
    try:
        return json.loads(path.read_text(encoding='utf-8'))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f'{path}: not valid JSON ({exc})') from None


def folder_architecture(folder):
    """config.json's architectures[0], or None when the folder has no readable config (layout detection)."""
    try:
        cfg = json.loads((Path(folder) / 'config.json').read_text(encoding='utf-8'))
    except (OSError, ValueError):
        return None
    return (cfg.get('architectures') or [None])[0] if isinstance(cfg, dict) else None


def write_json(path: Path, data: dict) -> None:
    path.write_text(json.dumps(data, ensure_ascii=False, indent=2), encoding='utf-8')


def torch_dtype(dtype) -> torch.dtype:
    return DTYPES[dtype] if isinstance(dtype, str) else dtype


def weight_files(folder) -> list:
    folder = Path(folder)
    index = folder / 'model.safetensors.index.json'
    if index.exists():
        try:
            weight_map = json.loads(index.read_text(encoding='utf-8'))['weight_map']
        except (json.JSONDecodeError, KeyError) as exc:
            raise CheckpointError(f'{index}: unreadable index ({exc})') from None
        files = sorted(set(weight_map.values()))
        for name in files:
            if not (folder / name).exists():
                raise CheckpointError(f'{folder / name}: shard listed in {index.name} is missing')
        return [folder / name for name in files]
    if (folder / 'model.safetensors').exists():
        return [folder / 'model.safetensors']
    if list(folder.glob('*.bin')):
        raise CheckpointError(f'{folder}: only .bin weights found; save as safetensors first')
    raise CheckpointError(f'{folder}: no model.safetensors or model.safetensors.index.json')


def read_state_dict(folder) -> dict:
    state = {}
    for path in weight_files(folder):
        try:
            with safe_open(str(path), framework='pt') as handle:
                for key in handle.keys():
                    state[key] = handle.get_tensor(key)
        except Exception as exc:  # safetensors raises its own error types for truncated files
            raise CheckpointError(f'{path}: cannot read safetensors (truncated or corrupt: {exc})') from None
    return state


def weight_shapes(folder) -> dict:
    """key -> (shape, dtype name) from the safetensors headers, without reading any tensor."""
    shapes = {}
    for path in weight_files(folder):
        with safe_open(str(path), framework='pt') as handle:
            for key in handle.keys():
                piece = handle.get_slice(key)
                shapes[key] = (tuple(piece.get_shape()), piece.get_dtype())
    return shapes


SAFETENSORS_DTYPES = {'F32': 'fp32', 'BF16': 'bf16', 'F16': 'fp16'}


def stored_dtype(folder) -> str:
    """The dtype most of a folder's floating-point weights are stored in ('fp32' | 'bf16' | 'fp16'), from the
    safetensors headers (no tensor is read)."""
    sizes = {}
    for shape, name in weight_shapes(folder).values():
        if name in SAFETENSORS_DTYPES:
            numel = 1
            for dim in shape:
                numel *= dim
            sizes[SAFETENSORS_DTYPES[name]] = sizes.get(SAFETENSORS_DTYPES[name], 0) + numel
    if not sizes:
        raise CheckpointError(f'{folder}: no floating-point weights to tell the stored dtype from; pass --dtype')
    return max(sizes, key=sizes.get)


def write_weights(state: dict, out: Path, dtype: torch.dtype, max_shard_bytes: int) -> None:
    """model.safetensors, or model-0000k-of-0000n.safetensors + index above `max_shard_bytes`."""
    shards, current, current_bytes, seen = [], {}, 0, set()
    for key, tensor in state.items():
        tensor = tensor.detach().to('cpu', dtype if tensor.is_floating_point() else tensor.dtype).contiguous()
        if tensor.data_ptr() in seen:  # a tied weight under a second name: safetensors stores each tensor once
            tensor = tensor.clone()
        seen.add(tensor.data_ptr())
        size = tensor.numel() * tensor.element_size()
        if current and current_bytes + size > max_shard_bytes:
            shards.append(current)
            current, current_bytes = {}, 0
        current[key] = tensor
        current_bytes += size
    shards.append(current)
    if len(shards) == 1:
        save_file(shards[0], str(out / 'model.safetensors'), metadata={'format': 'pt'})
        return
    weight_map, total = {}, 0
    for i, shard in enumerate(shards, 1):
        name = f'model-{i:05d}-of-{len(shards):05d}.safetensors'
        save_file(shard, str(out / name), metadata={'format': 'pt'})
        for key, tensor in shard.items():
            weight_map[key] = name
            total += tensor.numel() * tensor.element_size()
    index = {'metadata': {'total_size': total}, 'weight_map': weight_map}
    (out / 'model.safetensors.index.json').write_text(json.dumps(index, indent=2), encoding='utf-8')


def prepare_output(out: Path, overwrite: bool) -> None:
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise FileExistsError(f'{out}: exists and is not a folder')
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise FileExistsError(f'{out}: folder is not empty; pass overwrite=True (--overwrite) to replace it')


@contextmanager
def staged_folder(out, overwrite: bool = False, tag: str = 'tmp'):
    """Yields a temporary sibling folder; on success it replaces `out` (the old one is removed only
    after the rename), on any failure it is deleted and `out` is untouched."""
    out = Path(out)
    prepare_output(out, overwrite)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = out.parent / f'.{out.name}.{tag}-{uuid.uuid4().hex[:8]}'
    staging.mkdir()
    try:
        yield staging
        if out.exists():
            old = out.parent / f'.{out.name}.old-{uuid.uuid4().hex[:8]}'
            out.rename(old)
            staging.rename(out)
            shutil.rmtree(old)
        else:
            staging.rename(out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def read_training_checkpoint(checkpoint) -> dict:
    """The weights a training run saved: an mmengine `.pth`, a DeepSpeed ZeRO folder `iter_N.pth/`
    (fp32 master weights), or a work dir (its `last_checkpoint`). Keys as the run named them."""
    path = Path(checkpoint)
    if path.is_dir() and (path / 'last_checkpoint').exists():  # a work dir
        path = Path((path / 'last_checkpoint').read_text().strip())
    if not path.exists():
        raise CheckpointError(f'{path}: checkpoint not found')
    if path.is_dir():  # DeepSpeed: save_dir = parent, tag = folder name
        from deepspeed.utils.zero_to_fp32 import get_fp32_state_dict_from_zero_checkpoint
        try:
            return get_fp32_state_dict_from_zero_checkpoint(str(path.parent), tag=path.name)
        except (FileNotFoundError, ValueError, KeyError, RuntimeError) as exc:
            raise CheckpointError(f'{path}: not a readable DeepSpeed checkpoint ({exc})') from None
    try:
        state = torch.load(path, map_location='cpu', weights_only=False)
    except Exception as exc:
        raise CheckpointError(f'{path}: cannot read checkpoint ({exc.__class__.__name__}: {exc})') from None
    return state.get('state_dict', state)
