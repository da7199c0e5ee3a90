"""How a shard set is cut into shards, computed on demand: planning a billion samples costs no memory."""

from __future__ import annotations

from collections.abc import Sequence

from latentds.errors import InvalidParameterError

MAX_SHARDS = 1_000_000  # the manifest lists every shard; beyond this it is no longer a file one can read


class ShardRanges(Sequence):
    """The global sample indices of each shard (``range`` objects), made on demand: ``n`` samples in shards of
    ``size``. Costs nothing to hold whatever ``n`` is; ``total`` is ``n``."""

    def __init__(self, n: int, size: int):
        self.total, self.size = n, size

    def __len__(self) -> int:
        return -(-self.total // self.size)

    def __getitem__(self, index: int) -> range:
        if not isinstance(index, int):
            raise TypeError("ShardRanges takes an integer index")
        count = len(self)
        if index < 0:
            index += count
        if not 0 <= index < count:
            raise IndexError(f"shard {index} of {count}")
        start = index * self.size
        return range(start, min(start + self.size, self.total))

    def __eq__(self, other) -> bool:
        return list(self) == list(other) if not isinstance(other, ShardRanges) else (
            (self.total, self.size) == (other.total, other.size))

    def __repr__(self) -> str:
        return f"ShardRanges(n={self.total}, size={self.size})"


def check_shard_count(n: int, shard_size: int) -> None:
    """InvalidParameterError if ``n`` samples in shards of ``shard_size`` make more than MAX_SHARDS shards."""
    shards = -(-n // shard_size)
    if shards > MAX_SHARDS:
        least = -(-n // MAX_SHARDS)
        raise InvalidParameterError(f"--n {n:,} in shards of --shard-size {shard_size:,} makes {shards:,} shards; "
                                    f"at most {MAX_SHARDS:,} make a set (its manifest lists every shard): use "
                                    f"--shard-size {least:,} or more")
