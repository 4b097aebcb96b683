"""Builders of what deployments run: images for Kubernetes compute."""
