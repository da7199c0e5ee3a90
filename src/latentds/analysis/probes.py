"""The analysis, by name: ``run`` and the registered probes (kept importable from here for callers and tests).

Where each part lives (one idea per file):

- registry.py: ``@probe(name, order=..., needs=..., explain=...)``, ``PROBES`` (a latentds.registry.Registry, in
  the probes' declared order), ``NEEDS``, ``Skip``; ``PROBE_MODULES``: the modules that register the built-in
  probes (every probe_*.py, found by latentds.discovery);
- options.py: ``AnalysisOptions``, every option of an analysis as one frozen object, read strictly by
  ``from_dict`` (from the CLI's flags, a study's ``analyze`` table, ``run``'s keywords);
- runner.py: ``run()``, the latents cache and the atomic outputs;
- device.py: ``ready(model)``, eval mode and the model's device, for every model a probe runs;
- context.py: ``Context``, what every probe receives: the model (eval mode, its device), the options
  (``ctx.options``), and the shared inputs prepared once (latents, one image batch and its reconstructions, the sequence groups at the
  model's size, their interpolation paths);
- probe_space.py (pca, interpolation, umap), probe_images.py (metrics, fid, walks), probe_factors.py (scores,
  factors, factorvae), probe_arithmetic.py (arithmetic), probe_partition.py (partition): the adapters between the
  Context and the mathematics of each probe (pca.py, interpolation.py, embedding.py, image_metrics.py, disentanglement.py,
  factor_probes.py, factorvae_cuboids.py, arithmetic.py, partition.py);
- labels.py: factor values by name (from the encoded data's factor table), the varying factors, the class label;
  select.py: the ``--groups`` selection language;
- report.py and templates/report.html.j2: report.html.

A probe is a function ``probe(context) -> (metrics dict, [(figure file, one-line explanation)])``. A probe whose
declared needs (encoder, decoder, partition, factors, sequences) the model or data lacks is skipped before it runs,
with the need's reason in the report; one that finds it cannot apply for a reason of its own raises ``Skip`` (a
skipped probe may still leave figures: ``Skip(reason, figures)``).

The probes follow the capabilities the model declares (its ``Capabilities``: encoder, decoder, posterior,
partitioned; read through ``latentds.zoo.capabilities.capabilities_of``). A model without an encoder (e.g. DCGAN)
is studied through codes from its prior: ``walks`` (linear and spherical walks between random codes, as for every
model) and ``arithmetic`` on groups of generated samples chosen by id from ``generated.png``; the probes that need
latents of the data are skipped, saying so.
"""

from __future__ import annotations

from latentds.analysis.context import Context
from latentds.analysis.labels import values_of
from latentds.analysis.options import AnalysisOptions
from latentds.analysis.probe_arithmetic import GENERATED
from latentds.analysis.probe_factors import SCORE_SAMPLES
from latentds.analysis.registry import NEEDS, PROBES, Skip, probe, registered
from latentds.analysis.runner import check_output_directory, run
from latentds.analysis.select import select

registered()  # every built-in probe, in order

__all__ = ["GENERATED", "NEEDS", "PROBES", "SCORE_SAMPLES", "AnalysisOptions", "Context", "Skip",
           "check_output_directory", "probe",
           "run", "select", "values_of"]
