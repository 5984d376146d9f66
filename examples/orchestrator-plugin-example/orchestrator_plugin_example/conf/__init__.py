"""Config-group entries of the example plugin (a package, so Hydra's ``pkg://`` source reads it)."""
