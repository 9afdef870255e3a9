"""Shipped recipes by name (XTuner's list-cfg / copy-cfg conventions).

Shipped recipes import their base relatively (`from .._base_.x import *`): mmengine resolves that
beside the file, so they parse in any install, with `xtuner train` too. A copy made with
`copy_recipe` gets the absolute form (`from vlmtune.recipes._base_.x import *`) so it parses
anywhere (vlmtune.engine.compat makes mmengine find the package for that form in editable
installs as well).
"""
import ast
import difflib
import fnmatch
import os
import re
import tempfile
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parents[1]
RECIPES_DIR = PACKAGE_DIR / 'recipes'
BASE = '_base_'


class RecipeError(ValueError):
    """A recipe input is wrong; the message names it and the fix."""


def shipped() -> dict:
    """name (file stem) -> path of every shipped recipe; `_base_` files are not recipes."""
    found = {}
    for path in sorted(RECIPES_DIR.rglob('*.py')):
        rel = path.relative_to(RECIPES_DIR)
        if BASE in rel.parts or path.name.startswith('_'):
            continue
        if path.stem in found:  # names must stay unique for lookup by name
            raise RecipeError(f'{path}: recipe name {path.stem!r} is also {found[path.stem]}; rename one')
        found[path.stem] = path
    return found


def describe(path: Path) -> str:
    """The recipe's opening comment up to its first line that ends a sentence (prose only: an indented
    example or a blank comment line ends it); text that leads into an example (`...:`) stops at the
    sentence before it."""
    lines = []
    for line in path.read_text(encoding='utf-8').splitlines():
        body = line[1:] if line.startswith('#') else None
        if body is None or body.startswith('  ') or not body.strip():
            if lines or body is None and line.strip():
                break
            continue
        lines.append(body.strip())
        if lines[-1].endswith('.'):
            break
    text = ' '.join(lines)
    if text.endswith(':'):
        head, sentence_end, _ = text.rpartition('. ')
        text = head + '.' if sentence_end else text[:-1] + '.'
    return text


def group_of(path: Path) -> str:
    return path.parent.relative_to(RECIPES_DIR).as_posix()


def list_recipes(pattern: str = None) -> list:
    """[(group, name, description)] sorted by group then name, filtered by a case-insensitive
    substring or glob (`*`, `?`, `[`) matched against the name or `group/name`."""
    rows = []
    for name, path in shipped().items():
        keys = (name.lower(), f'{group_of(path)}/{name}'.lower())
        if pattern:
            pat = pattern.lower()
            if any(c in pat for c in '*?['):
                if not any(fnmatch.fnmatchcase(k, pat) for k in keys):
                    continue
            elif not any(pat in k for k in keys):
                continue
        rows.append((group_of(path), name, describe(path)))
    return sorted(rows)


def format_listing(rows: list) -> str:
    if not rows:
        return ''
    width = max(len(name) for _, name, _ in rows)
    lines, group = [], None
    for row_group, name, description in rows:
        if row_group != group:
            lines.append(f'{row_group}/')
            group = row_group
        lines.append(f'  {name:<{width}}  {description}'.rstrip())
    return '\n'.join(lines)


def _unknown(name: str, what: str) -> RecipeError:
    names = list(shipped())
    close = difflib.get_close_matches(name, names, n=5, cutoff=0.5)
    hint = f'close matches: {", ".join(close)}' if close else 'no close match'
    return RecipeError(f'{what}; {hint} (vlmtune list-cfg lists them all)')


def lookup(name: str) -> Path:
    """A shipped recipe by name (a trailing .py is accepted)."""
    stem = name[:-3] if name.endswith('.py') else name
    found = shipped()
    if stem in found:
        return found[stem]
    raise _unknown(stem, f'{name!r} is not a shipped recipe')


def resolve(recipe) -> Path:
    """An existing file is used as is; anything else is looked up by name among the shipped recipes."""
    path = Path(recipe)
    if path.is_file():
        return path
    stem = path.name[:-3] if path.name.endswith('.py') else path.name
    found = shipped()
    if stem in found and len(path.parts) == 1:  # a path with folders is never a name
        return found[stem]
    raise _unknown(stem, f'{recipe}: no such recipe file and no shipped recipe named {stem!r}')


def absolute_imports(text: str, source: Path) -> str:
    """Rewrite the relative imports of a recipe at `source` (inside the package) to absolute ones,
    so that the text parses from anywhere."""
    package = ['vlmtune', *source.resolve().parent.relative_to(PACKAGE_DIR).parts]
    rows = {node.lineno for node in ast.walk(ast.parse(text)) if isinstance(node, ast.ImportFrom) and node.level}
    lines = text.splitlines(keepends=True)

    def absolute(match):
        level, module = len(match.group(2)), match.group(3)
        parts = package[:len(package) - (level - 1)] + ([module] if module else [])
        return match.group(1) + '.'.join(parts) + match.group(4)

    for row in rows:
        lines[row - 1] = re.sub(r'^(\s*from\s+)(\.+)([\w.]*)(\s+import\b)', absolute, lines[row - 1], count=1)
    return ''.join(lines)


def copy_recipe(name: str, dest) -> Path:
    """Copy a shipped recipe to DEST (a folder, or a .py path); never overwrites; atomic."""
    source = lookup(name)
    dest = Path(dest)
    target = dest if dest.suffix == '.py' else dest / source.name
    if target.exists():
        raise RecipeError(f'{target} already exists; delete it or choose another destination')
    target.parent.mkdir(parents=True, exist_ok=True)
    text = absolute_imports(source.read_text(encoding='utf-8'), source)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f'.{target.name}.', suffix='.tmp')
    try:
        with os.fdopen(fd, 'w', encoding='utf-8') as f:
            f.write(text)
        os.chmod(tmp, 0o644)
        try:  # link() fails if the target appeared meanwhile: no overwrite even in a race
            os.link(tmp, target)
        except FileExistsError:
            raise RecipeError(f'{target} already exists; delete it or choose another destination') from None
        except OSError:  # file systems without hard links
            os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target
