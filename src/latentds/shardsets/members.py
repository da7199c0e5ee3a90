"""Old name of latentds.shardsets.encoders, kept only until the imports listed in issue 11's report move."""
from latentds.shardsets.encoders import encode_json, encode_npy, encode_png, png_is_plain  # noqa: F401
