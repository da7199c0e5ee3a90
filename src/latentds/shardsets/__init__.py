"""The shard-set contract every part speaks (see ARCHITECTURE.md): a directory of ``NAME-000000.tar`` shards,
``manifest.json`` and a ``README.md`` card; reading, verifying and (resumably, atomically) producing them.

Producers (``latentds render``, ``latentds pack``) describe *what* to write with a spec object (``spec.py``: the
contract, and the ``ShardSetSpec`` base that render and pack build on); ``producer.py`` does the rest: output
directory checks, resume, worker processes or Ray, progress, manifest (``manifest.py``, the one reader and writer).
Members are encoded by ``encoders.py``; files appear atomically through ``atomic.py``.
"""
