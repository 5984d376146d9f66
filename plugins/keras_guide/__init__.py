"""Keras-dependent implementations of the guide plugins, imported only when a run uses them."""
