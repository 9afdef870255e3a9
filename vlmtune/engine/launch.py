"""`vlmtune train`: find the recipe (a file, or a shipped recipe by name), check its inputs up front,
resolve DeepSpeed configs (CPU-safe variants without a GPU), run xtuner's trainer (torchrun for
several processes) on a free port and return its real exit status (`xtuner train` itself returns 0
after a crash)."""
import json
import os
import sys
from pathlib import Path

from mmengine.config import Config
from mmengine.config.utils import ConfigParsingError

from ..formats import read_spec
from ..quiet import quiet_imports
from ..net import free_port
from . import recipes
from .recipes import RECIPES_DIR, RecipeError
from .console import run_quietly
from .model_source import split_sources
from .trainability import renamed_parts, validate_modes

DEEPSPEED_DIR = RECIPES_DIR / '_base_' / 'deepspeed'
DEEPSPEED_NAMES = ('zero2', 'zero3', 'zero3_offload')


def resolve_deepspeed(name_or_path: str, has_gpu: bool = None) -> Path:
    path = Path(name_or_path)
    if path.suffix == '.json':
        if not path.exists():
            raise RecipeError(f'{path}: DeepSpeed config not found')
        return path
    has_gpu = has_gpu if has_gpu is not None else _has_gpu()
    name = name_or_path.replace('deepspeed_', '')
    if name not in DEEPSPEED_NAMES:
        raise RecipeError(f'--deepspeed {name_or_path!r}: use one of {list(DEEPSPEED_NAMES)} or a .json path')
    if not has_gpu:
        if name == 'zero3_offload':
            raise RecipeError('zero3_offload needs a GPU; on CPU use zero2 or zero3')
        # fp16/bf16 off ("auto" would ask the CPU); train() turns model.dtype's on (deepspeed_with_model_dtype).
        # The CPU variants also set reduce_bucket_size 5e6: ZeRO allocates that many elements at every
        # backward (default 5e8, 1-2 GB), which on CPU cost ~0.23 s per iteration of a tiny model, and as
        # much resident memory.
        name += '_cpu'
    return DEEPSPEED_DIR / f'{name}.json'


def deepspeed_with_model_dtype(path: Path, dtype: str, work_dir: Path) -> Path:
    """The DeepSpeed config with fp16/bf16 `enabled` following the recipe's model.dtype: the file itself
    when it already does, else a copy in the work dir. The shipped configs are adjusted; a user's config
    may say "auto" (or nothing), or agree, and is refused when it contradicts model.dtype.

    DeepSpeed's engine, not the model, decides the training dtype: with bf16 (fp16) enabled it casts the
    whole module to it and keeps fp32 master weights; with both off it takes the parameters as they are.
    A bf16 model under an fp32 config trains a dtype mix: ZeRO-2 flattens each group's trainable
    parameters with torch.cat, which promotes e.g. a bf16 connector beside peft's fp32 LoRA adapters to
    fp32 (the connector then gets bf16 features); ZeRO-3 asserts one dtype. xtuner's "auto" follows the
    GPU, not model.dtype."""
    import torch
    from .training_model import resolve_dtype
    wanted = resolve_dtype(dtype)
    shipped = Path(path).parent == DEEPSPEED_DIR
    try:
        config = json.loads(Path(path).read_text(encoding='utf-8'))
    except json.JSONDecodeError as error:
        raise RecipeError(f'{path}: not a JSON DeepSpeed config ({error})') from None
    changed = False
    for key, key_dtype in (('fp16', torch.float16), ('bf16', torch.bfloat16)):
        section = config.setdefault(key, {})
        enabled, current = wanted == key_dtype, section.get('enabled', 'auto')
        if current == enabled:
            continue
        if current != 'auto' and not shipped:
            raise RecipeError(f'{path}: {key}.enabled is {current} but model.dtype is {dtype!r} '
                              f'({str(wanted).replace("torch.", "")}); set it to "auto" or change model.dtype')
        section['enabled'], changed = enabled, True
    if not changed:
        return Path(path)
    out = Path(work_dir) / Path(path).name
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + '.tmp')
    tmp.write_text(json.dumps(config, indent=2) + '\n', encoding='utf-8')
    tmp.replace(out)
    return out


def _has_gpu() -> bool:
    import torch
    return torch.cuda.is_available()


MODEL_SOURCES = ('model', 'train_dataloader.dataset')  # both build the recipe's model (weights / data path)


def shortcut_options(checkpoint=None, data=None, images=None, vision_tower=None, llm=None, meta=None) -> list:
    """--checkpoint/--data/--images/--vision-tower/--llm/--meta -> the cfg-options they stand for."""
    options = []
    if checkpoint:
        options += [f'{where}.checkpoint={checkpoint}' for where in MODEL_SOURCES]
    for part, folder in (('vision_tower', vision_tower), ('llm', llm)):
        if folder:
            options += [f'{where}.parts.{part}.pretrained={folder}' for where in MODEL_SOURCES]
    if data:  # a data file in place of a recipe's meta file
        options += [f'train_dataloader.dataset.data_path={data}'] + \
            (['train_dataloader.dataset.meta=None'] if not meta else [])
    if images:
        options.append(f'train_dataloader.dataset.image_root={images}')
    if meta:  # the meta file names the data and its roots: the recipe's own data_path and image_root step aside
        options += [f'train_dataloader.dataset.meta={meta}', 'train_dataloader.dataset.data_path=None',
                    'train_dataloader.dataset.image_root=None']
    return options


def load_recipe(recipe, cfg_options=()) -> Config:
    """A recipe file or a shipped recipe's name -> its config, with the cfg-options merged."""
    from . import compat
    path = recipes.resolve(recipe)
    try:
        with quiet_imports():  # the fixes and the recipe's imports load the training stack
            compat.apply()  # mmengine finds `vlmtune.recipes._base_` of an editable install only with its fix
            cfg = Config.fromfile(str(path))
    except ConfigParsingError as exc:
        if 'not found' in str(exc) and _has_relative_import(path):
            raise RecipeError(f'{path}: its relative _base_ import works only inside the package; copy recipes with '
                              f'`vlmtune copy-cfg NAME DEST` (it writes `from vlmtune.recipes._base_... import *`)') from None
        raise
    if cfg_options:
        from mmengine.config import DictAction
        parsed = {}
        for item in cfg_options:
            key, _, value = item.partition('=')
            parsed[key] = DictAction._parse_iterable(value)
        cfg.merge_from_dict(parsed)
        one_length(cfg, parsed)
    return cfg


LENGTHS = ('train_cfg.max_iters', 'train_cfg.max_epochs')


def one_length(cfg: Config, options: dict) -> None:
    """A run's length is max_iters or max_epochs, never both (xtuner's loop refuses): the one the options
    set wins over the recipe's."""
    given = [key for key in LENGTHS if options.get(key) is not None]
    if len(given) == 1 and cfg.get('train_cfg'):
        other = LENGTHS[1 - LENGTHS.index(given[0])].split('.')[1]
        cfg.train_cfg[other] = None


MODEL_SOURCE_FIELDS = ('checkpoint', 'parts', 'spec')  # what names the model; the data path reads the same


def with_dataset_mirrors(options) -> list:
    """The options, plus the dataset's copy of each model-source option the user gave for the model only
    (`model.parts.vision_tower.pretrained=DIR` sets the dataset's too): the data path builds the same
    composition as the model, so one option sets both. An option given for the dataset itself is kept."""
    options = list(options)
    given = {o.split('=', 1)[0] for o in options}
    for option in list(options):
        key, _, value = option.partition('=')
        where, _, rest = key.partition('.')
        mirror = f'train_dataloader.dataset.{rest}'
        if where == 'model' and rest.split('.')[0] in MODEL_SOURCE_FIELDS and mirror not in given:
            options.append(f'{mirror}={value}')
    return options


def with_one_length(options) -> list:
    """The options, plus `None` for the other length when they set one (what xtuner's own merge needs too)."""
    options = list(options)
    given = [key for key in LENGTHS if any(o.startswith(key + '=') and not o.endswith('=None') for o in options)]
    if len(given) == 1:
        other = LENGTHS[1 - LENGTHS.index(given[0])]
        options = [o for o in options if not o.startswith(other + '=')] + [f'{other}=None']
    return options


def length_options(iters=None, epochs=None) -> list:
    """--iters N / --epochs N as the options they stand for."""
    if iters is not None and epochs is not None:
        raise RecipeError('--iters and --epochs: give one (a run is either long)')
    if iters is not None:
        return [f'train_cfg.max_iters={int(iters)}']
    return [f'train_cfg.max_epochs={epochs}'] if epochs is not None else []


def precheck(cfg: Config) -> None:
    """Fail in a second, with one line, on inputs that would otherwise fail after minutes."""
    model, dataset = cfg.model, cfg.train_dataloader.dataset
    renamed_parts(model)
    validate_modes(vision_tower=model.get('vision_tower', 'frozen'), connector=model.get('connector', 'full'),
                   llm=model.get('llm', 'lora'))
    for where, part in (('model', model), ('train_dataloader.dataset', dataset)):
        folder = part.get('checkpoint')
        parts, _ = split_sources(None, part.get('parts'), part.get('spec')) if not folder else (None, None)
        if not folder and not parts:
            raise RecipeError(f'{where}.checkpoint is not set; pass --checkpoint DIR (or give {where}.parts, the '
                              f'part folders to build from)')
        if folder and not Path(folder).is_dir():
            raise RecipeError(f'{where}.checkpoint: checkpoint folder {folder} not found')
        if folder:
            check_data_fits(folder, read_spec(folder), dataset)
        for name, settings in (parts or {}).items():
            pretrained = (settings or {}).get('pretrained')
            if pretrained and not Path(pretrained).exists():
                flag = {'vision_tower': ' (--vision-tower DIR)', 'llm': ' (--llm DIR)'}.get(name, '')
                raise RecipeError(f'{where}.parts.{name}.pretrained: {pretrained} not found{flag}')
    for key in MODEL_SOURCE_FIELDS:  # the model and the data must describe the same model
        if model.get(key) != dataset.get(key):
            raise RecipeError(f'model.{key} and train_dataloader.dataset.{key} differ ({model.get(key)!r} vs '
                              f'{dataset.get(key)!r}); set both (the --checkpoint/--vision-tower/--llm flags do)')
    data_path, meta = dataset.get('data_path'), dataset.get('meta')
    if meta:
        from ..data.meta import read_meta
        read_meta(meta)  # a bad meta file stops here, in one line naming the entry and the fix
    elif not data_path or not Path(data_path).exists():
        raise RecipeError(f'train_dataloader.dataset.data_path: dataset file {data_path} not found; pass --data FILE '
                          f'(or --meta META_FILE)')
    image_root = dataset.get('image_root')
    if image_root and not Path(image_root).is_dir():
        raise RecipeError(f'train_dataloader.dataset.image_root: folder {image_root} not found; pass --images DIR')


RECIPES_FOR_LAYOUT = {'internvl': 'internvl', 'internvl_hf': 'internvl', 'llava_hf': 'llava',
                      'llava_next_hf': 'llava_next', 'blip2_hf': 'blip2', 'composite': 'tinyllava'}


def check_data_fits(folder, spec, dataset) -> None:
    """A recipe's data settings that the folder's image processor cannot take (an InternVL recipe's
    max_tiles on a LLaVA folder) fail here, naming the folder's family and the recipes that fit."""
    import inspect
    from ..data.image import REGISTRY as IMAGE_PROCESSORS
    from ..formats import layout_of
    kind = spec.image_processor['type']
    takes = inspect.signature(IMAGE_PROCESSORS.get(kind)).parameters
    if dataset.get('max_tiles') and 'max_tiles' not in takes:
        layout = layout_of(folder)
        raise RecipeError(f'{folder} is a {layout} folder ({spec.vision_tower["type"]} + {spec.connector["type"]} + '
                          f'{spec.family}, image processor {kind!r}: no tiles), but the recipe tiles images as '
                          f'InternVL does (train_dataloader.dataset.max_tiles={dataset.get("max_tiles")}). Use a '
                          f'recipe for this model (vlmtune list-cfg {RECIPES_FOR_LAYOUT.get(layout, "")}), or set '
                          f'train_dataloader.dataset.max_tiles=None')


def _has_relative_import(path: Path) -> bool:
    return any(line.lstrip().startswith('from .') for line in path.read_text(encoding='utf-8').splitlines())


def find_last_checkpoint(work_dir: Path) -> str:
    marker = work_dir / 'last_checkpoint'
    if not marker.exists():
        raise RecipeError(f'{work_dir}: no checkpoint to resume from (no last_checkpoint file)')
    return marker.read_text().strip()


def single_process_env(environ=None) -> dict:
    """The child's environment for one process. Without a launcher, DeepSpeed's `init_distributed`
    finds RANK/WORLD_SIZE/MASTER_ADDR/MASTER_PORT/LOCAL_RANK incomplete, runs its MPI discovery and
    sets MASTER_PORT to its default 29500 (then torch's env:// rendezvous binds it): a second run on
    the same machine dies with EADDRINUSE. Setting all five skips the discovery; MASTER_PORT is a free
    port unless the user chose one."""
    env = dict(os.environ if environ is None else environ)
    if not env.get('MASTER_PORT'):
        env['MASTER_PORT'] = str(free_port())
    for key, value in (('MASTER_ADDR', '127.0.0.1'), ('RANK', '0'), ('LOCAL_RANK', '0'), ('WORLD_SIZE', '1')):
        env.setdefault(key, value)
    return env


def torchrun_options(nproc: int, nodes: int, environ=None) -> list:
    """torchrun's rendezvous from XTuner's variables: NNODES, NODE_RANK, ADDR, PORT (MASTER_ADDR /
    MASTER_PORT too). Every node runs the same command with its own NODE_RANK; node 0 is at ADDR:PORT."""
    env = os.environ if environ is None else environ
    port = env.get('PORT') or env.get('MASTER_PORT')
    options = [f'--nproc_per_node={nproc}']
    if nodes > 1:
        addr = env.get('ADDR') or env.get('MASTER_ADDR')
        missing = [name for name, value in (('ADDR', addr), ('PORT', port), ('NODE_RANK', env.get('NODE_RANK')))
                   if not value]
        if missing:
            raise ValueError(f'NNODES={nodes} needs {", ".join(missing)} set on every node (node 0 listens on '
                             f'ADDR:PORT; NODE_RANK is 0..{nodes - 1})')
        return options + [f'--nnodes={nodes}', f'--node_rank={env["NODE_RANK"]}', f'--master_addr={addr}',
                          f'--master_port={port}']
    return options + [f'--master_port={port or free_port()}']


def train(recipe, deepspeed=None, cfg_options=(), work_dir=None, resume=None, nproc=None, seed=None) -> int:
    recipe = recipes.resolve(recipe)
    cfg_options = with_one_length(with_dataset_mirrors(cfg_options))
    cfg = load_recipe(recipe, cfg_options)
    precheck(cfg)
    work_dir = Path(work_dir or cfg.get('work_dir') or Path('work_dirs') / Path(recipe).stem)
    args = [str(recipe), '--work-dir', str(work_dir)]
    if cfg_options:
        args += ['--cfg-options', *cfg_options]
    if deepspeed:
        config = deepspeed_with_model_dtype(resolve_deepspeed(deepspeed), cfg.model.get('dtype', 'auto'), work_dir)
        args += ['--deepspeed', str(config)]
    if resume:
        if resume is not True and not Path(resume).exists():
            raise RecipeError(f'--resume {resume}: no such checkpoint (a work dir keeps its last '
                              f'default_hooks.checkpoint.max_keep_ckpts checkpoints; --resume alone takes its last)')
        args += ['--resume', find_last_checkpoint(work_dir) if resume is True else str(resume)]
    if seed is not None:
        args += ['--seed', str(seed)]
    nproc = int(nproc or os.environ.get('NPROC_PER_NODE', 1))
    nodes = int(os.environ.get('NNODES', 1))
    if nproc > 1 or nodes > 1:
        cmd = [sys.executable, '-m', 'torch.distributed.run', *torchrun_options(nproc, nodes),
               '-m', 'vlmtune.engine.xtuner_main', *args, '--launcher', 'pytorch']
        env = None  # torchrun sets the rendezvous variables of each process itself
    else:
        cmd = [sys.executable, '-m', 'vlmtune.engine.xtuner_main', *args]
        env = single_process_env()
    print('running: ' + ' '.join(cmd) + (f' (MASTER_PORT={env["MASTER_PORT"]})' if env else ''), flush=True)
    return run_quietly(cmd, env, work_dir)
