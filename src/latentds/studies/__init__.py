"""Studies: the experiments of the research latentds was designed from, re-run with one command.

    latentds study                                   # the packaged studies, one line each
    latentds study disc-strategies --scale cpu --out studies/disc

    from latentds.studies import run_study
    results = run_study("beta-sweep", "studies/beta", scale="smoke")

A study is data (latentds/studies/packaged/NAME.toml, format in latentds.studies.study): the renders it needs,
its runs (recipe + overrides, a matrix of variants), the probes run on each, and the tables and findings it
writes next to the published numbers (latentds.studies.results).
"""

from latentds.studies.runner import run_study
from latentds.studies.study import SCALES, load_study, study_names

__all__ = ["SCALES", "load_study", "run_study", "study_names"]
