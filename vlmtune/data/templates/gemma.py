"""TinyLLaVA Factory's `gemma` template: the Vicuna form ending each answer with Gemma's `<eos>`, its BOS masked."""
from . import register
from .tinyllava import tinyllava_template

register(tinyllava_template('gemma', '<eos>'))
