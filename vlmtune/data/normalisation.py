"""The one home of the pixel normalisation constants (mean, std per RGB channel after /255)."""
IMAGENET_MEAN = (0.485, 0.456, 0.406)             # InternViT (InternVL's build_transform)
IMAGENET_STD = (0.229, 0.224, 0.225)
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)   # OpenAI CLIP, BLIP-2 (transformers' OPENAI_CLIP_MEAN)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
SIGLIP_MEAN = (0.5, 0.5, 0.5)                     # SigLIP (transformers' IMAGENET_STANDARD_MEAN)
SIGLIP_STD = (0.5, 0.5, 0.5)
