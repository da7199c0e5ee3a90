"""Shared preprocessing: RGB always, centre crop, resize, flip, value range."""

import numpy as np
import pytest
import torch
from PIL import Image

from latentds.datasets.transforms import ImageTransform, to_rgb


@pytest.mark.parametrize("mode, value, rgb", [
    ("L", 100, (100, 100, 100)),
    ("CMYK", (0, 255, 0, 0), (255, 0, 255)),
    ("RGBA", (10, 20, 30, 255), (10, 20, 30)),
    ("RGBA", (10, 20, 30, 0), (0, 0, 0)),  # transparent onto black
    ("I;16", 256 * 200, (200, 200, 200)),
])
def test_to_rgb_converts_every_mode(mode, value, rgb):
    out = to_rgb(Image.new(mode, (4, 3), value))
    assert out.mode == "RGB" and out.size == (4, 3) and out.getpixel((1, 1)) == rgb


def test_palette_images_become_rgb():
    image = Image.new("P", (2, 2))
    image.putpalette([0, 0, 0, 255, 128, 0] + [0] * 762)
    image.putpixel((0, 0), 1)
    assert to_rgb(image).getpixel((0, 0)) == (255, 128, 0)


def test_centre_crop_resize_and_ranges():
    array = np.zeros((20, 40, 3), dtype=np.uint8)
    array[:, 10:30] = 255  # a white centre square between black side bands
    image = Image.fromarray(array)
    x = ImageTransform(size=8, crop="center")(image)
    assert x.shape == (3, 8, 8) and torch.allclose(x, torch.ones_like(x))  # the bands are cropped away, [-1, 1]
    y = ImageTransform(value_range="0,1")(image)
    assert y.shape == (3, 20, 40) and y.min() == 0 and y.max() == 1
    assert ImageTransform()(image).min() == -1


def test_flip_mirrors_about_half_the_time():
    array = np.zeros((4, 4, 3), dtype=np.uint8)
    array[:, 0] = 255
    image = Image.fromarray(array)
    torch.manual_seed(0)
    outs = [ImageTransform(flip=True)(image) for _ in range(200)]
    flipped = sum(bool(o[0, 0, -1] > 0) for o in outs)
    assert 60 < flipped < 140
    assert all(torch.equal(o, outs[0]) or torch.equal(o, outs[0].flip(-1)) for o in outs)


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="value_range"):
        ImageTransform(value_range="0,255")
    with pytest.raises(ValueError, match="crop"):
        ImageTransform(crop="random")


def _old_pil(image, size, crop):
    """The hand-written geometry before torchvision.transforms.v2 (the pixels packs have always stored)."""
    if crop:
        w, h = image.size
        side = min(w, h)
        left, top = (w - side) // 2, (h - side) // 2
        image = image.crop((left, top, left + side, top + side))
    if image.size != (size, size):
        image = image.resize((size, size), Image.Resampling.BILINEAR, reducing_gap=None)
    return image


@pytest.mark.parametrize("h, w", [(37, 53), (53, 37), (20, 40), (20, 41), (20, 43), (43, 20), (16, 16), (64, 23)])
@pytest.mark.parametrize("crop", [None, "center"])
def test_crop_and_resize_give_the_pixels_they_always_did(h, w, crop):
    image = Image.fromarray(np.random.default_rng(h * w).integers(0, 256, (h, w, 3), dtype=np.uint8))
    for size in (12, 16, 30):
        new = ImageTransform(size=size, crop=crop)
        assert np.array_equal(np.array(new.pil(image)), np.array(_old_pil(image, size, crop)))
        old = torch.from_numpy(np.array(_old_pil(image, size, crop))).permute(2, 0, 1).float().mul_(2 / 255).sub_(1)
        assert torch.equal(new(image), old)


def test_torchvisions_centre_crop_would_move_some_images_by_a_pixel():
    """Why center_square stays ours: torchvision rounds a half-pixel offset to even, we round down."""
    from torchvision.transforms.v2.functional import center_crop

    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (20, 43, 3), dtype=np.uint8))
    ours = ImageTransform(crop="center").pil(image)
    assert np.array_equal(np.array(ours), np.array(image)[:, 11:31])
    assert not np.array_equal(np.array(center_crop(image, [20, 20])), np.array(ours))


def test_flips_are_the_ones_they_always_were():
    from latentds.datasets.shards import decode_sample
    from latentds.shardsets.encoders import encode_png

    pixels = np.random.default_rng(1).integers(0, 256, (8, 10, 3), dtype=np.uint8)
    image, png = Image.fromarray(pixels), encode_png(pixels)
    tensor = torch.from_numpy(pixels).permute(2, 0, 1)
    for transform in (ImageTransform(flip=True), ImageTransform(flip=True, size=8)):
        torch.manual_seed(4)
        new = [transform.uint8(image) for _ in range(20)] + [decode_sample({"__key__": "k", "png": png}, transform)
                                                             ["image"] for _ in range(20)]
        torch.manual_seed(4)
        start = torch.from_numpy(np.array(transform.pil(image))).permute(2, 0, 1) if transform.size else tensor
        old = [start.flip(-1) if torch.rand(()) < 0.5 else start for _ in range(40)]
        assert all(torch.equal(a, b) for a, b in zip(new, old)) and 5 < sum(torch.equal(a, start) for a in new) < 35
