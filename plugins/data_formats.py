"""Built-in plugins of the Keras guide (data_formats); being filled in."""
