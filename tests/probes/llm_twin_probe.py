"""Run in a subprocess (a side environment first on PYTHONPATH, vlmtune hidden): transformers' own causal LM
class for a saved LLM folder, on given ids and input embeddings with labels.

    python llm_twin_probe.py FOLDER INPUTS.pt OUTPUT.pt

INPUTS: {'ids', 'embeds', 'labels'}; OUTPUT: {'logits' (on ids), 'loss' (on embeds, labels), 'class', 'version'}."""
import sys

import hide_vlmtune  # noqa: F401  (first: vlmtune cannot be imported from here on)

import torch  # noqa: E402
import transformers  # noqa: E402


def main(folder, inputs_path, output_path):
    inputs = torch.load(inputs_path, weights_only=False)
    model, info = transformers.AutoModelForCausalLM.from_pretrained(folder, output_loading_info=True,
                                                                    attn_implementation='eager')
    model = model.float().eval()
    with torch.no_grad():
        logits = model(input_ids=inputs['ids']).logits
        loss = model(inputs_embeds=inputs['embeds'], labels=inputs['labels']).loss
    torch.save({'logits': logits, 'loss': loss, 'class': type(model).__name__, 'version': transformers.__version__,
                'missing': info['missing_keys'], 'unexpected': info['unexpected_keys'],
                'vlmtune_imported': any(m.startswith('vlmtune') for m in sys.modules)}, output_path)


if __name__ == '__main__':
    main(*sys.argv[1:4])
