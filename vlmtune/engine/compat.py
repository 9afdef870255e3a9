"""Small fixes that let mmengine / xtuner / DeepSpeed run on a CPU-only machine, applied once when
`vlmtune.engine` is imported (recipes reference it, so `xtuner train` imports it before the runner
initialises distributed mode). Each fix says why; none changes behaviour on a GPU machine.
"""
import os
import tempfile

import torch

_APPLIED = False


def _cpu_bf16_probe():
    # torch 2.5.1 lacks torch.cpu.is_bf16_supported, which xtuner / DeepSpeed's "auto" dtype calls.
    if not hasattr(torch.cpu, 'is_bf16_supported'):
        torch.cpu.is_bf16_supported = lambda: False


def _init_dist_without_cuda():
    # mmengine's _init_dist_pytorch calls torch.cuda.set_device unconditionally and defaults to NCCL;
    # without CUDA skip the device pin and use gloo, so multi-process CPU runs work with any recipe.
    from mmengine.dist import utils as dist_utils
    original = dist_utils._init_dist_pytorch
    if getattr(original, '_vlmtune_patched', False):
        return

    def init_dist_pytorch(backend, *args, **kwargs):
        if torch.cuda.is_available():
            return original(backend, *args, **kwargs)
        saved = torch.cuda.set_device
        torch.cuda.set_device = lambda *a, **k: None
        try:
            return original('gloo' if backend == 'nccl' else backend, *args, **kwargs)
        finally:
            torch.cuda.set_device = saved

    init_dist_pytorch._vlmtune_patched = True
    dist_utils._init_dist_pytorch = init_dist_pytorch


def _atomic_checkpoint_save():
    # mmengine writes iter_N.pth in place; a kill mid-write would leave a corrupt file. Write to a
    # temporary file in the same folder and rename, so a checkpoint either exists whole or not at all.
    from mmengine.runner import checkpoint as ckpt_module
    from mmengine.runner import runner as runner_module
    original = ckpt_module.save_checkpoint
    if getattr(original, '_vlmtune_patched', False):
        return

    def save_checkpoint(checkpoint, filename, file_client_args=None, backend_args=None):
        if '://' in str(filename):
            return original(checkpoint, filename, file_client_args, backend_args)
        folder = os.path.dirname(os.path.abspath(filename))
        os.makedirs(folder, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix='.tmp-', suffix='.pth')
        os.close(fd)
        try:
            torch.save(checkpoint, tmp)
            os.replace(tmp, filename)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)

    save_checkpoint._vlmtune_patched = True
    ckpt_module.save_checkpoint = save_checkpoint
    runner_module.save_checkpoint = save_checkpoint


def _installed_path_by_import():
    # mmengine finds the files of `from pkg.x import *` in a config through pkg's distribution metadata:
    # location + name, else the first line of top_level.txt. For an editable install (location is
    # site-packages, the code is elsewhere) of a project with two top-level packages that names the
    # wrong folder. Ask the import system first, which knows where the package really is.
    import importlib.util
    from mmengine.config import config as config_module
    original = config_module.get_installed_path
    if getattr(original, '_vlmtune_patched', False):
        return

    def get_installed_path(package: str) -> str:
        spec = importlib.util.find_spec(package)
        if spec is not None and spec.origin:
            return os.path.dirname(spec.origin)
        return original(package)

    get_installed_path._vlmtune_patched = True
    config_module.get_installed_path = get_installed_path


def apply():
    global _APPLIED
    if _APPLIED:
        return
    _cpu_bf16_probe()
    _init_dist_without_cuda()
    _atomic_checkpoint_save()
    _installed_path_by_import()
    _APPLIED = True
