"""Importing the training stack prints bitsandbytes' no-GPU notice and torch's TorchScript deprecation (torch
forces that one to show, whatever the warning filters): harmless on a CPU and not the user's to act on. The
commands that import the stack do so inside `quiet_imports()`, which keeps what goes to stderr meanwhile and
hands it back only when the import fails; the training process itself still says them, into its log
(engine/console.py)."""
import contextlib
import io
import sys


@contextlib.contextmanager
def quiet_imports():
    kept = io.StringIO()
    try:
        with contextlib.redirect_stderr(kept):
            yield
    except BaseException:
        sys.stderr.write(kept.getvalue())
        raise
