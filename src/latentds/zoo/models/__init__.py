"""One module per model family; each module here is imported by ``latentds.zoo.families()`` and registers itself."""
