"""How images appear to the LLM. The model spec fills `per_tile` from its vision tower and connector
(patches per tile -> tokens out); every place that needs an image-token count (sample encoding, the
length cache, `data show`, `inspect`, the model's chat) asks this object."""
from dataclasses import dataclass


@dataclass(frozen=True)
class ImageTokens:
    per_tile: int
    start: str = '<img>'
    context: str = '<IMG_CONTEXT>'
    end: str = '</img>'

    def count(self, tiles: int) -> int:
        """Context tokens for an image of `tiles` tiles."""
        return self.per_tile * tiles

    def text(self, tiles: int) -> str:
        """What one `<image>` tag becomes in the prompt."""
        return self.start + self.context * self.count(tiles) + self.end

    def expand(self, prompt: str, tiles_per_image) -> str:
        """Replace the `<image>` tags in order, first occurrence first."""
        for tiles in tiles_per_image:
            prompt = prompt.replace('<image>', self.text(tiles), 1)
        return prompt
