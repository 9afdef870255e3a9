"""Imported first by the probe scripts that run in a subprocess: makes `vlmtune` unimportable there
(and drops the working folder from sys.path), so a folder must load with its owner's code alone."""
import importlib.abc
import sys


class BlockVlmtune(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == 'vlmtune' or name.startswith('vlmtune.'):
            raise ImportError('vlmtune is hidden in this probe')
        return None


sys.meta_path.insert(0, BlockVlmtune())
sys.path = [p for p in sys.path if p not in ('', '.')]
