"""Writing outputs without ever leaving a half-written file where a finished one was."""
import os
import tempfile
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Iterator, TextIO


@contextmanager
def atomic_writer(target: Path) -> Iterator[TextIO]:
    """Write to a temp file beside `target`, then rename it over `target` on success."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
            yield f
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; outputs are ordinary data files
        os.replace(tmp, target)
    except BaseException:
        with suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_text(target: Path, text: str) -> Path:
    with atomic_writer(target) as handle:
        handle.write(text)
    return Path(target)
