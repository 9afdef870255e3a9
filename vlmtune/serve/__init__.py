"""Serving: one session API over LMDeploy (GPU) and the project's own in-process torch backend."""
from .pipeline import GenerationConfig, Response, Session, pipeline

__all__ = ['pipeline', 'GenerationConfig', 'Response', 'Session']
