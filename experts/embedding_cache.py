"""The per-image embedding cache of the promptable segmenters (SAM/MedSAM, LiteMedSAM): the image encoder runs
once per image, further prompts on the same pixels reuse its output.  Least recently used entries go first."""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from typing import Any, Callable

import numpy as np

__all__ = ["pixels_key", "EmbeddingCache", "Embedding"]

# (features (1, C, h, w), original (H, W), resized input (h, w))
Embedding = tuple[Any, tuple[int, int], tuple[int, int]]


def pixels_key(pixels: np.ndarray) -> str:
    """Cache key of an image: blake2b of its shape, dtype and bytes."""
    h = hashlib.blake2b(digest_size=16)
    h.update(str((pixels.shape, pixels.dtype.str)).encode())
    h.update(np.ascontiguousarray(pixels).data)
    return h.hexdigest()


class EmbeddingCache:
    """At most ``size`` embeddings keyed by :func:`pixels_key`; ``computed`` counts encoder runs."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.computed = 0
        self._entries: OrderedDict[str, Embedding] = OrderedDict()

    def get(self, rgb: np.ndarray, encode: Callable[[np.ndarray], tuple[Any, tuple[int, int]]]) -> Embedding:
        """The cached embedding of ``rgb``, or ``encode(rgb) -> (features, resized input (h, w))`` run now."""
        key = pixels_key(rgb)
        if key in self._entries:
            self._entries.move_to_end(key)
            return self._entries[key]
        feats, input_size = encode(rgb)
        self.computed += 1
        entry = (feats, (int(rgb.shape[0]), int(rgb.shape[1])), input_size)
        self._entries[key] = entry
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)
        return entry
