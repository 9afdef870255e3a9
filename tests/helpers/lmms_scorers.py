"""lmms-eval's scoring files (0.7.3, in a cached side environment), loaded one by one under stub parent packages:
its task package imports the whole framework, so nothing else of lmms-eval runs."""
import importlib.util
import sys
import types

from vlmtune.side_envs import side_env


def scorers():
    """Yields load('mme/utils') -> module; restores sys.modules after."""
    root = side_env('lmms-eval-0.7.3') / 'lmms_eval'
    saved = {k: v for k, v in sys.modules.items() if k == 'lmms_eval' or k.startswith('lmms_eval.')}
    for name, folder in [('lmms_eval', root), ('lmms_eval.tasks', root / 'tasks'),
                         ('lmms_eval.tasks._task_utils', root / 'tasks' / '_task_utils')]:
        package = types.ModuleType(name)
        package.__path__ = [str(folder)]
        sys.modules[name] = package

    def load(relative):
        name = 'lmms_eval.tasks.' + relative.replace('/', '.')
        spec = importlib.util.spec_from_file_location(name, root / 'tasks' / f'{relative}.py')
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
        return module
    yield load
    for key in [k for k in sys.modules if k == 'lmms_eval' or k.startswith('lmms_eval.')]:
        del sys.modules[key]
    sys.modules.update(saved)
