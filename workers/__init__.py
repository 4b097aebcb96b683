"""Weir's Celery workers: ``celery -A workers worker`` starts one."""

from workers.celery_app import app

__all__ = ["app"]
