"""Scene-text embeddings for training, computed once before the first step.

The CLIP text tower is frozen, so a text's embedding never changes while training.
Encoding every distinct text once, in sorted order and fixed chunks, makes the
embedding a text gets independent of the batch it arrives in (the tower's matrix
products round differently for a batch of 2 texts than for 3, by ~2e-7), which an
exact resume needs; it also takes the text tower out of the training step.
"""
import torch

CHUNK = 64


class TextTable:
    """texts -> [B, C] embeddings, looked up in a table built once."""

    def __init__(self, model, texts):
        distinct = sorted(set(texts))
        self.index = {text: i for i, text in enumerate(distinct)}
        model.text_encoder.clear_cache()  # every text encoded here, in these chunks
        with torch.no_grad():
            self.embeddings = torch.cat([model.encode_text(distinct[i:i + CHUNK]).clone()
                                         for i in range(0, len(distinct), CHUNK)])
        model.text_encoder.clear_cache()

    def __call__(self, texts) -> torch.Tensor:
        return self.embeddings[[self.index[text] for text in texts]]
