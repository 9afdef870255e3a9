"""Run in a subprocess (vlmtune hidden; a side environment first on PYTHONPATH where the pinned transformers builds
the LLM wrong): what llava-hf publishes, built by that transformers. FOLDER holds the config.json; the model is
made from it (seed 0; every all-zero bias drawn from N(0, 0.5), so one dropped anywhere shows in the logits)
and saved there.

    python llava_hub_probe.py FOLDER"""
import sys

import hide_vlmtune  # noqa: F401  (first: vlmtune cannot be imported from here on)

import torch  # noqa: E402
import transformers  # noqa: E402


def main(folder):
    config = transformers.AutoConfig.from_pretrained(folder)
    torch.manual_seed(0)
    model = transformers.LlavaForConditionalGeneration(config).eval()
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if name.endswith('bias') and not parameter.any():
                parameter.normal_(0, 0.5)
    model.save_pretrained(folder)
    print(transformers.__version__)


if __name__ == '__main__':
    main(sys.argv[1])
