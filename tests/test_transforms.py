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
