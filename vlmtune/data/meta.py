"""The official InternVL meta file: one JSON object, a dataset name -> its settings, read as the official fine-tuning
code reads it (internvl-training notes, section 1).

| key | official | here |
|---|---|---|
| root | prefix of the rows' relative image paths (an absolute path ignores it) | the same |
| annotation | a `.jsonl` file (asserted) | `.jsonl` or `.json` (the conversation formats the package reads) |
| repeat_time | required; < 1: the first int(N*r) rows in file order; > 1: 3.0 asserts an int (2.0 fails), 3.5 truncates | default 1; < 1 as official; > 1 an integer value (2 or 2.0), a fraction is an error, not truncated |
| data_augment | the JPEG degradation on every tile (3.0 requires the key) | optional, default false |
| max_dynamic_patch | this source's tile budget (tiling and length) | the same |
| length | documented, read by no code | accepted and ignored |

Relative `root` / `annotation` paths are taken from the current directory, as the official scripts take them; where
that holds nothing, from the meta file's folder. Sources keep the file's order and are concatenated.
"""
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional

KNOWN_KEYS = {'root', 'annotation', 'repeat_time', 'data_augment', 'max_dynamic_patch', 'length', 'min_dynamic_patch'}


class MetaFileError(ValueError):
    """A meta file that cannot be used; the message names the file, the entry and the fix."""


@dataclass(frozen=True)
class MetaSource:
    name: str
    root: Path
    annotation: Path
    repeat_time: float = 1
    data_augment: bool = False
    max_dynamic_patch: Optional[int] = None

    def selection(self, rows: int) -> List[int]:
        """The annotation's row indices this source trains on, in order (before rejected rows are left out)."""
        if self.repeat_time < 1:
            return list(range(int(rows * self.repeat_time)))
        return list(range(rows)) * int(self.repeat_time)


def _path(value, meta_path: Path) -> Path:
    path = Path(value).expanduser()
    if path.is_absolute() or path.exists():
        return path
    beside = meta_path.parent / path
    return beside if beside.exists() else path


def _repeat_time(value, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise MetaFileError(f'{where}: repeat_time {value!r} is not a positive number (1 keeps every row once, 0.3 '
                            f'the first 30%, 2 every row twice)')
    if value > 1 and value != int(value):
        raise MetaFileError(f'{where}: repeat_time {value} is fractional above 1; the official 3.0 code asserts an '
                            f'integer (3.5 silently drops the fraction): use {int(value)} or {int(value) + 1}')
    return value


def read_meta(meta_path) -> List[MetaSource]:
    meta_path = Path(meta_path)
    if not meta_path.is_file():
        raise MetaFileError(f'{meta_path}: meta file not found')
    try:
        meta = json.loads(meta_path.read_text(encoding='utf-8'))
    except ValueError as exc:  # the official debug_mpo.json's trailing comma lands here too
        raise MetaFileError(f'{meta_path}: not valid JSON ({exc}); a meta file is one object, name -> '
                            '{"root", "annotation", "repeat_time", ...}') from None
    if not isinstance(meta, dict) or not meta:
        raise MetaFileError(f'{meta_path}: a meta file is a non-empty JSON object, name -> '
                            '{"root": IMAGE_FOLDER, "annotation": FILE.jsonl, "repeat_time": 1}')
    return [_source(name, entry, meta_path) for name, entry in meta.items()]


def source_named(meta_path, name: Optional[str] = None) -> MetaSource:
    """One source of a meta file by name (default: the first)."""
    sources = read_meta(meta_path)
    if name is None:
        return sources[0]
    for source in sources:
        if source.name == name:
            return source
    raise MetaFileError(f'{meta_path}: no source {name!r}; its sources: {[s.name for s in sources]}')


def _source(name: str, entry, meta_path: Path) -> MetaSource:
    where = f'{meta_path}: entry {name!r}'
    if not isinstance(entry, dict):
        raise MetaFileError(f'{where}: not an object of settings')
    for key in ('root', 'annotation'):
        if not entry.get(key):
            raise MetaFileError(f'{where}: no "{key}" (every entry names its image folder "root" and its rows '
                                f'"annotation")')
    unknown = sorted(set(entry) - KNOWN_KEYS)
    if unknown:
        raise MetaFileError(f'{where}: unknown key(s) {unknown}; known: {sorted(KNOWN_KEYS)}')
    annotation = _path(entry['annotation'], meta_path)
    if annotation.suffix not in ('.jsonl', '.json'):
        raise MetaFileError(f'{where}: annotation {annotation} is not a .jsonl (or .json) file')
    if not annotation.is_file():
        raise MetaFileError(f'{where}: annotation {annotation} not found (relative paths are taken from the current '
                            f'directory, then from {meta_path.parent})')
    tiles = entry.get('max_dynamic_patch')
    if tiles is not None and (isinstance(tiles, bool) or not isinstance(tiles, int) or tiles < 1):
        raise MetaFileError(f'{where}: max_dynamic_patch {tiles!r} is not a positive integer')
    augment = entry.get('data_augment', False)
    if not isinstance(augment, bool):
        raise MetaFileError(f'{where}: data_augment {augment!r} is not true or false')
    return MetaSource(name, _path(entry['root'], meta_path), annotation, _repeat_time(entry.get('repeat_time', 1), where),
                      augment, tiles)
