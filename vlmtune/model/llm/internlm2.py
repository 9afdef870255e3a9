"""InternLM2: not in transformers 4.48; the project's own module with the official layout
(see remote/modeling_internlm2.py for why it is not mapped onto Llama)."""
from ...formats.internvl_remote.modeling_internlm2 import InternLM2ForCausalLM
from . import register


class InternLM2LM:
    architecture = 'InternLM2ForCausalLM'
    lora_targets = ['attention.wqkv', 'attention.wo', 'feed_forward.w1', 'feed_forward.w2', 'feed_forward.w3']

    def build(self, config):
        return InternLM2ForCausalLM(config)


register(InternLM2LM.architecture)(InternLM2LM())
