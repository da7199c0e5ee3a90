"""What a family's batches need from the data, checked on the first sample before training starts, with the
command that makes suitable data; and the one line that says when images will be resized to the model's size."""

from __future__ import annotations

from latentds.errors import InvalidParameterError

PAIRS_COMMAND = "latentds render --varied --identities 40 --n 4000 --out data/ids"
GROUPS_COMMAND = "latentds render --varied --n 2400 --sequence phi_0,theta_0,light_azimuth --steps 8 --out data/sweeps"


def check_batches(family: str, batches: str, pair_label: str, labels: dict, shards: str) -> None:
    """InvalidParameterError, naming the command that makes suitable data, when the first sample's ``labels``
    cannot make the batches the family trains on: pairs need ``labels[pair_label]``, groups a --sequence render."""
    if batches == "pairs" and pair_label not in labels:
        fix = (f"render data with identities, e.g. `{PAIRS_COMMAND}`, or pack 2D Sprites (`latentds pack sprites`)"
               if pair_label == "identity" else f"give data whose labels carry {pair_label!r}")
        raise InvalidParameterError(
            f"{family} trains on pairs of images sharing the label {pair_label!r} (data.pair_label), but --data "
            f"{shards} has no {pair_label!r} label (its labels: {', '.join(sorted(labels)[:8]) or 'none'}): {fix}")
    if batches == "groups" and not isinstance(labels.get("sequence"), dict):
        raise InvalidParameterError(
            f"{family} trains on groups in which one factor moves, but --data {shards} is not a --sequence render: "
            f"render one, e.g. `{GROUPS_COMMAND}`")


class ResizeNote(UserWarning):
    """The data's images are resized to the model's size for training (the CLI prints it as one "note:" line)."""


def resize_note(shards: str, data_size: int | None, model_size: int, family: str) -> str | None:
    """One line when the data's images (``data_size`` px, from its manifest) are resized to the model's
    ``model_size`` px for training; None when they match or the size is unknown. Resizing is allowed (any size
    trains), but never silent: upsampling adds no detail and downsampling discards it."""
    if data_size is None or data_size == model_size:
        return None
    how = "upsampled" if data_size < model_size else "downsampled"
    return (f"--data {shards} holds {data_size} px images; the {family} model takes {model_size} px, so every "
            f"image is {how} to {model_size} px (to train at {data_size} px: --set model.image_size={data_size}; "
            f"or render with --size {model_size})")
