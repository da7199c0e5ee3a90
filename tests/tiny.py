"""The tiny configuration of every model family (imported by the tests, like analysis_sets; conftest.py saves one
model of each as a session fixture, ``tiny_models``). Every registered family needs one here: a new family without
one fails test_zoo.py's test_every_family_has_a_tiny_configuration_and_a_recipe."""

TINY = {
    "vae": {"image_size": 16, "width": 8, "latent_dim": 4},
    "beta_vae": {"image_size": 16, "width": 8, "latent_dim": 4},
    "vae_disc": {"image_size": 16, "width": 8, "latent_dim": 4, "disc_width": 8},
    "cycle_vae": {"image_size": 16, "width": 8, "class_dim": 2, "style_dim": 3, "latent_dim": 5},
    "clamped_vae": {"image_size": 16, "width": 8, "latent_dim": 6, "factors": ["phi_0", "theta_0"],
                    "units_per_factor": 2},
    "dcgan": {"image_size": 16, "width": 8, "latent_dim": 4},
    "e2e_cnn": {"image_size": 16, "width": 8, "latent_dim": 8},
}
