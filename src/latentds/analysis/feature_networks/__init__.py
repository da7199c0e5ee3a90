"""Packaged FID feature networks, one directory each (config.json, model.safetensors, validation.json); loaded by
name through latentds.analysis.feature_network, which pins each name to its directory."""
