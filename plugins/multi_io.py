"""Built-in plugins of the Keras guide (multi_io); being filled in."""
