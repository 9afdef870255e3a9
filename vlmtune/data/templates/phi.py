"""TinyLLaVA Factory's `phi` template (Phi-2, and StableLM-2 by its scripts): the Vicuna form ending each answer
with `<|endoftext|>`; the tokenizer adds no BOS."""
from . import register
from .tinyllava import tinyllava_template

register(tinyllava_template('phi', '<|endoftext|>'))
