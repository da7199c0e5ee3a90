"""The packaged studies: one TOML file each (see latentds.studies.study for the format)."""
