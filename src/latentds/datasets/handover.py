"""How a batch crosses from a DataLoader worker to the main process: every tensor by value, through the worker's
pipe with the rest of the pickled batch, the labels as one JSON document, parsed where they are first used.

torch hands a tensor over in shared memory: a fresh segment per tensor per batch, written, passed as a file
descriptor and faulted in again by the receiver. Measured per 64x64 image with one worker (a batch of 64 images,
labels and a 33-entry factor vector, 2 shared cores): the worker spent ~52 µs handing a batch over that way and the
main process ~53 receiving it (float conversion included); by value, ~20 and ~38 (~23 for a uint8 batch).

``handed_over(batch, value_range)`` wraps each of a collated batch's tensors in a ``TensorOnArrival`` for the
journey: the images arrive as ``to_float(images, value_range)`` (float32, contiguous) or, for uint8 output, as
uint8 (N, 3, H, W), contiguous, made so in the worker; every other tensor as it is. A custom ``collate_fn`` of the
DataLoader (run in the worker) sees these objects, not tensors (``.tensor`` holds each).
"""

from __future__ import annotations

import numpy as np
import orjson
import torch

from latentds.datasets.transforms import to_float


def _dense(tensor: torch.Tensor) -> tuple[np.ndarray, tuple[int, ...] | None]:
    """The tensor's memory as a contiguous array and the permutation that gives the tensor back: a collated image
    batch, (N, 3, H, W) over (N, H, W, 3) memory, travels as that memory (no reordering copy)."""
    if tensor.dim() == 4 and not tensor.is_contiguous() and tensor.is_contiguous(memory_format=torch.channels_last):
        return tensor.permute(0, 2, 3, 1).numpy(), (0, 3, 1, 2)
    return tensor.contiguous().numpy(), None


def contiguous(tensor: torch.Tensor) -> torch.Tensor:
    """A CPU tensor made contiguous by numpy: reordering a uint8 (N, 3, H, W) view of (N, H, W, 3) memory takes
    numpy ~4 µs an 64x64 image, torch ~8 (one thread)."""
    return tensor if tensor.is_contiguous() else torch.from_numpy(np.ascontiguousarray(tensor.numpy()))


def _arrive(array: np.ndarray, order: tuple[int, ...] | None, value_range: str | None) -> torch.Tensor:
    tensor = torch.from_numpy(array)
    if order is not None:
        tensor = tensor.permute(*order)
    return tensor if value_range is None else to_float(tensor, value_range)


class TensorOnArrival:
    """A CPU tensor that is pickled by value (its bytes in the pickle), not through torch's shared memory. With a
    ``value_range``, a uint8 image batch (N, 3, H, W), any layout, that unpickles as ``to_float(images,
    value_range)``: float32, contiguous; the conversion is the receiver's (~8 µs an image) and the journey carries
    a quarter of the bytes."""

    __slots__ = ("tensor", "value_range")

    def __init__(self, tensor: torch.Tensor, value_range: str | None = None):
        self.tensor, self.value_range = tensor, value_range

    def __reduce__(self):
        return _arrive, (*_dense(self.tensor), self.value_range)


def handed_over(batch: dict, value_range: str | None) -> dict:
    """The batch with its tensors wrapped for the journey: images as float32 in ``value_range`` on arrival, or with
    ``value_range`` None as contiguous uint8 (N, 3, H, W) (reordered here, in the worker)."""
    out = dict(batch)
    for key, value in batch.items():
        if not isinstance(value, torch.Tensor):
            continue
        if key == "image":
            out[key] = TensorOnArrival(value, value_range) if value_range else TensorOnArrival(contiguous(value))
        else:
            out[key] = TensorOnArrival(value)
    return out


class LabelBatch:
    """The label dicts of a batch: indexable, iterable and sized like a list.

    Deliberately not a ``Sequence``: DataLoader's ``default_convert`` walks every element of lists and dicts it
    is handed (thousands of floats per batch of cuboid labels), which cost more than decoding the images. Between
    processes it travels as one JSON document, parsed only when the labels are first used. ``of_documents`` makes
    one from the samples' own JSON (already parsed once to be checked): nothing is serialised again, and the
    stream's shuffle buffer holds bytes, not thousands of small objects for the garbage collector to walk.
    """

    __slots__ = ("_items", "_json")

    def __init__(self, items: list[dict]):
        self._items, self._json = items, None

    @classmethod
    def of_documents(cls, documents: list[bytes]) -> LabelBatch:
        """The batch of these JSON objects (each already parsed by orjson once, so their array parses too)."""
        batch = cls.__new__(cls)
        batch._items, batch._json = None, b"[" + b",".join(documents) + b"]"
        return batch

    @property
    def items(self) -> list[dict]:
        if self._items is None:
            self._items = orjson.loads(self._json)
        return self._items

    def __getstate__(self):
        return orjson.dumps(self._items) if self._items is not None else self._json

    def __setstate__(self, state: bytes):
        self._items, self._json = None, state

    def __getitem__(self, index):
        return self.items[index]

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self):
        return iter(self.items)

    def __eq__(self, other) -> bool:
        return list(self) == list(other)

    def __repr__(self) -> str:
        return f"LabelBatch({self.items!r})"
