"""Preprocessing shared by every dataset: RGB always, centre crop, resize, optional flip, value range.

Defaults (``ImageTransform()``): no crop, no resize, no flip, values in [-1, 1] (for tanh decoders).
``crop="center"`` takes the largest centred square; ``size`` resizes (antialiased bilinear) to size x size.
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

    def pil(self, image: Image.Image) -> Image.Image:
        """The geometric part: RGB, crop, resize (what ``latentds pack`` stores)."""
        image = to_rgb(image)
        if self.crop == "center":
            image = center_square(image)
        if self.size is not None and image.size != (self.size, self.size):
            image = image.resize((self.size, self.size), Image.Resampling.BILINEAR, reducing_gap=None)
        return image

    def __call__(self, image: Image.Image):
        import torch  # noqa: PLC0415
        from torchvision.transforms.v2 import functional as F  # noqa: PLC0415

        tensor = F.to_dtype(F.pil_to_tensor(self.pil(image)), torch.float32, scale=True)
        if self.flip and torch.rand(()) < 0.5:
            tensor = tensor.flip(-1)
        return tensor * 2 - 1 if self.value_range == "-1,1" else tensor
