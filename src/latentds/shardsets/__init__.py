"""The shard-set contract every part speaks (see ARCHITECTURE.md): a directory of ``NAME-000000.tar`` shards,
``manifest.json`` and a ``README.md`` card; reading, verifying and (resumably, atomically) producing them.

Producers (``latentds render``, ``latentds pack``) describe *what* to write with a spec object (``spec.py``: the
contract, and the ``ShardSetSpec`` base that render and pack build on); ``producer.py`` does the rest: the output
directory's claim, resume of finished shards (``set_state.py``), worker processes or Ray (``engines.py``),
progress, manifest (``manifest.py``, the one reader and writer). Members are encoded by ``encoders.py``; files
appear atomically through ``atomic.py``. Every command that writes a directory (render, pack, train, analyze,
study) claims it through ``claim.py``: its lock (``lock.py``) and marker (``marker.py``).
"""
