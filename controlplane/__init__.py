"""Weir's control plane: the Django project that owns every ARM resource and its state."""
