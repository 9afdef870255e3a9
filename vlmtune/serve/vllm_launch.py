"""Run by vLLM's own python (it imports nothing of vlmtune): vLLM's OpenAI server with the model's EXIF
orientation rule. vLLM turns every image upright by its EXIF tag (multimodal/image.py normalize_image);
a model trained with the official rule ('ignore', the pixels as stored) would get another tile grid for
a rotated phone photo. VLMTUNE_EXIF_RULE=ignore makes that step keep the pixels as stored."""
import importlib
import os
import runpy
import sys

if os.environ.get('VLMTUNE_EXIF_RULE', 'ignore') == 'ignore':
    def keep_as_stored(image):
        return image
    for name in ('vllm.multimodal.image', 'vllm.multimodal.parse', 'vllm.multimodal.media.image'):
        module = importlib.import_module(name)
        if not hasattr(module, 'normalize_image'):
            raise SystemExit(f'{name} has no normalize_image: this vLLM applies EXIF elsewhere; '
                             f'update vlmtune/serve/vllm_launch.py')
        module.normalize_image = keep_as_stored

sys.argv[0] = 'vllm.entrypoints.openai.api_server'
runpy.run_module('vllm.entrypoints.openai.api_server', run_name='__main__', alter_sys=True)
