"""Rollout routes, under an online endpoint."""

from django.urls import path

from controlplane.core.urls import EP
from controlplane.rollout import views

RO = f"{EP}/rollouts/<str:rolloutName>"

urlpatterns = [
    path(f"{EP}/rollouts", views.RolloutListView.as_view()),
    path(RO, views.RolloutView.as_view()),
    path(f"{RO}/pause", views.PauseView.as_view()),
    path(f"{RO}/resume", views.ResumeView.as_view()),
    path(f"{RO}/abort", views.AbortView.as_view()),
]
