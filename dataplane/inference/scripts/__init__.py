"""Scoring scripts shipped with the inference server, for deployments that bring none."""
