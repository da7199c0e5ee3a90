"""Preprocessing shared by every dataset: RGB always, centre crop, resize, optional flip, value range.

Defaults (``ImageTransform()``): no crop, no resize, no flip, values in [-1, 1] (for tanh decoders).
``crop="center"`` takes the largest centred square; ``size`` resizes (antialiased bilinear) to size x size.
Resize and flip are torchvision.transforms.v2's (``resize`` of a PIL image is PIL's antialiased bilinear, the
same pixels as before); the centre crop stays our own (see ``center_square``). torch and torchvision are imported
only when an image is transformed, so importing this module stays cheap.
"""

from __future__ import annotations

from dataclasses import dataclass

from PIL import Image

RANGES = ("-1,1", "0,1")


def to_rgb(image: Image.Image) -> Image.Image:
    """An RGB copy of any PIL image: greyscale and palette replicated, CMYK converted, alpha dropped onto black."""
    if image.mode == "RGB":
        return image.copy()
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        canvas = Image.new("RGB", rgba.size, (0, 0, 0))
        canvas.paste(rgba, mask=rgba.getchannel("A"))
        return canvas
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):  # 16/32-bit greyscale: scale to 8 bits first
        image = image.point(lambda v: v / 256).convert("L")
    return image.convert("RGB")


def center_square(image: Image.Image) -> Image.Image:
    """The largest centred square, its offset rounded down. Not torchvision's ``center_crop``: that one rounds a
    half-pixel offset to even (``round(11.5) == 12``), which would move packed images by a pixel."""
    w, h = image.size
    side = min(w, h)
    left, top = (w - side) // 2, (h - side) // 2
    return image.crop((left, top, left + side, top + side))


@dataclass(frozen=True)
class ImageTransform:
    """PIL image -> float tensor (3, H, W). Build once, call per image."""

    size: int | None = None
    crop: str | None = None  # None or "center"
    flip: bool = False  # random horizontal flip (p = 0.5), from torch's global generator
    value_range: str = "-1,1"  # "-1,1" or "0,1"

    def __post_init__(self):
        if self.value_range not in RANGES:
            raise ValueError(f"value_range must be one of {RANGES}, not {self.value_range!r}")
        if self.crop not in (None, "center"):
            raise ValueError(f"crop must be None or 'center', not {self.crop!r}")

    @property
    def geometric(self) -> bool:
        """Whether it crops or resizes (else images pass through unchanged but for flip and range)."""
        return self.crop is not None or self.size is not None

    def pil(self, image: Image.Image) -> Image.Image:
        """The geometric part: RGB, crop, resize (what ``latentds pack`` stores)."""
        image = image if image.mode == "RGB" else to_rgb(image)
        if self.crop == "center":
            image = center_square(image)
        if self.size is not None and image.size != (self.size, self.size):
            from torchvision.transforms.v2 import InterpolationMode  # noqa: PLC0415
            from torchvision.transforms.v2.functional import resize  # noqa: PLC0415

            # PIL's antialiased bilinear resize (reducing_gap None), through torchvision's dispatch
            image = resize(image, [self.size, self.size], interpolation=InterpolationMode.BILINEAR, antialias=True)
        return image

    def array(self, image: Image.Image):
        """The geometric part and the flip, as a uint8 array (H, W, 3) (the flip a view); streams collate these
        and make one tensor per batch."""
        import numpy as np  # noqa: PLC0415
        import torch  # noqa: PLC0415

        pixels = np.array(self.pil(image), dtype=np.uint8)
        if self.flip and torch.rand(()) < 0.5:  # our own draw (one float of torch's generator), as always
            pixels = pixels[:, ::-1]
        return pixels

    def uint8(self, image: Image.Image):
        """The geometric part and the flip, as a uint8 tensor (3, H, W); ``to_float`` finishes the job."""
        import numpy as np  # noqa: PLC0415
        import torch  # noqa: PLC0415

        return torch.from_numpy(np.ascontiguousarray(self.array(image))).permute(2, 0, 1)

    def to_float(self, images, out=None):
        """uint8 tensor(s) (..., 3, H, W) of any memory layout -> contiguous float32 in the configured range; see
        the module's ``to_float``."""
        return to_float(images, self.value_range, out)

    def __call__(self, image: Image.Image):
        """PIL image -> float32 tensor (3, H, W)."""
        return self.to_float(self.uint8(image))


def to_float(images, value_range: str = "-1,1", out=None):
    """uint8 images (..., 3, H, W), any memory layout, on any device -> contiguous float32 in ``value_range``
    (into ``out``, contiguous, when given): ``x * (2 / 255) - 1`` for "-1,1", ``x * (1 / 255)`` for "0,1", each
    step rounded to float32 as latentds 0.1 did, so the values are the same bit for bit (tests/test_png.py
    compares all 256).

    On the CPU through numpy: one multiply that casts and also reorders a collated (N, H, W, 3) view into
    (N, 3, H, W), then the subtraction in place, both single-threaded. torch's own ops split a batch over its
    intra-op threads, and in a main process whose cores are busy (two DataLoader workers on two cores) the
    waiting threads spin: measured ~400 µs of CPU per 64x64 image there, against ~10 this way. A fused
    multiply-add would round once and change some values in the last bit; a 256-entry table gather costs ~10 µs.
    """
    import numpy as np  # noqa: PLC0415
    import torch  # noqa: PLC0415

    if value_range not in RANGES:
        raise ValueError(f"value_range must be one of {RANGES}, not {value_range!r}")
    scale = 2 / 255 if value_range == "-1,1" else 1 / 255
    if out is None:
        out = torch.empty(images.shape, dtype=torch.float32, device=images.device)
    if images.device.type != "cpu":
        out.copy_(images).mul_(scale)
        return out.sub_(1) if value_range == "-1,1" else out
    result = out.numpy()
    np.multiply(images.numpy(), np.float32(scale), out=result, dtype=np.float32)
    if value_range == "-1,1":
        np.subtract(result, np.float32(1), out=result)
    return out
