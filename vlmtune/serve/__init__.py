"""Serving: one session API over LMDeploy (GPU) and the project's own in-process torch backend.

The names load on first use (PEP 562), so `vlmtune chat --help` and the other commands start without torch."""
__all__ = ['pipeline', 'GenerationConfig', 'Response', 'Session']


def __getattr__(name):
    if name not in __all__:
        raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
    import importlib
    module = importlib.import_module('.pipeline', __name__)  # the submodule; its `pipeline` function is exported
    for exported in __all__:  # importing the submodule set `pipeline` to it: the function takes its place
        globals()[exported] = getattr(module, exported)
    return globals()[name]
