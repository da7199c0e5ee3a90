"""The health gates' thresholds (analysis/health.py measures them): a plain table, importable without torch (a
study file's findings name the gates they need and are checked against it)."""

# gate -> (comparison, threshold, what failing it means)
GATES = {
    "sample_diversity": ("between", (0.1, 2.0), "prior samples are near-identical (mode collapse), or differ far "
                                                "more than data images do (noise)"),
    "sample_colour": (">=", 0.25, "prior samples' colours barely differ from one sample to the next (colour "
                                  "collapse), though the data's do"),
    "reconstruction": ("<=", 0.8, "reconstructions are no better than a trivial image (background or mean)"),
    "colour": ("<=", 0.8, "reconstructions lose the data's colours (grey shapes): their foreground chroma is no closer "
                          "to the data's than a grey image's or the mean image's"),
    "decoder_sensitivity": (">=", 0.25, "the decoder's output barely depends on its input"),
    "swap_grid": (">=", 0.05, "the decoder ignores one part (s or z) of its input"),
    "active_units": (">=", 1, "no latent dimension varies with the input (posterior collapse)"),
    "discriminator": ("<", 0.99, "the discriminator wins every batch: the adversarial term gives no signal"),
}
