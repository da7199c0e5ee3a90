"""The shard-set contract every part speaks (see DESIGN.md): a directory of ``NAME-000000.tar`` shards,
``manifest.json`` and a ``README.md`` card; reading, verifying and (resumably, atomically) producing them.

Producers (``latentds render``, ``latentds pack``) describe *what* to write with a spec object; ``producer.py``
does the rest: output-directory checks, resume, worker processes or Ray, progress, manifest.
"""
