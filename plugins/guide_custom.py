"""Built-in plugins of the Keras guide (guide_custom); being filled in."""
