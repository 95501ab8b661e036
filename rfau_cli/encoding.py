"""Rows of a table -> model inputs, with the checkpoint's own processor or tokenizer.

Inputs are encoded a batch of rows per call (never the whole table at once, never row by
row). `Encoder` is the only code that knows how a row becomes tensors; input_cache.py keeps
what it returns, under `--cache-mb`, so each row is encoded once a run. Text is padded to one
fixed length for the whole run: every sample's tensors and features then have the same
shape, which is what lets inputs and teacher features be cached per sample.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

MAX_TEXT_LENGTH = 128  # tokens; classifier fine-tuning sets rarely need more


@dataclass
class Encoder:
    """Callable that turns a list of row indices of `table` into a batch dict of tensors."""

    task: str
    column: str
    processor: Any | None
    num_channels: int
    max_length: int = MAX_TEXT_LENGTH

    def __call__(self, table: Any, rows: np.ndarray, labels: np.ndarray) -> dict[str, Any]:
        import torch

        values = table[[int(i) for i in rows]][self.column] if len(rows) else []
        batch = self._encode_text(values) if self.task == "text" else self._encode_images(values)
        batch["labels"] = torch.as_tensor(labels[rows], dtype=torch.long)
        return batch

    def _encode_text(self, texts: list[str]) -> dict[str, Any]:
        return dict(
            self.processor(
                [str(t) for t in texts],
                padding="max_length",
                truncation=True,
                max_length=self.max_length,
                return_tensors="pt",
            )
        )

    def _encode_images(self, images: list[Any]) -> dict[str, Any]:
        import torch

        if self.processor is not None:
            images = [_to_pil(im, self.num_channels) for im in images]
            return {"pixel_values": self.processor(images=images, return_tensors="pt")["pixel_values"]}
        arrays = [_to_chw_unit(im, self.num_channels) for im in images]
        return {"pixel_values": torch.as_tensor(np.stack(arrays), dtype=torch.float32)}


def fit_text_length(tokenizer: Any, texts: list[str], cap: int = MAX_TEXT_LENGTH) -> int:
    """The longest tokenized text, capped, so padding wastes as little compute as possible."""
    if not texts:
        return cap
    lengths = [len(ids) for ids in tokenizer([str(t) for t in texts], truncation=True, max_length=cap)["input_ids"]]
    return int(max(lengths))


def _to_pil(image: Any, channels: int) -> Any:
    from PIL import Image

    if not isinstance(image, Image.Image):
        image = Image.fromarray(np.asarray(image).astype(np.uint8))
    return image.convert("L" if channels == 1 else "RGB")


def _to_chw_unit(image: Any, channels: int) -> np.ndarray:
    """Without a processor, images become float arrays in [0, 1], channels first."""
    array = np.asarray(image)
    if array.dtype == np.uint8 or array.max(initial=0) > 1.0:
        array = array.astype(np.float32) / 255.0
    array = array.astype(np.float32)
    if array.ndim == 2:
        array = array[None]
    elif array.ndim == 3 and array.shape[-1] in (1, 3, 4) and array.shape[0] not in (1, 3):
        array = np.transpose(array, (2, 0, 1))
    if array.shape[0] == 4:
        array = array[:3]
    if array.shape[0] == 1 and channels == 3:
        array = np.repeat(array, 3, axis=0)
    elif array.shape[0] == 3 and channels == 1:
        array = array.mean(axis=0, keepdims=True)
    return array
