"""Settings for the Weir control plane, read from the environment only."""

import os
from pathlib import Path

import environ
from cryptography.fernet import Fernet
from django.core.exceptions import ImproperlyConfigured

from contracts.redis_urls import with_password
from controlplane.server_secrets import optional_secret, random_token, server_secret

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()

#
# Paths
#
DATA_DIR = Path(env("WEIR_DATA_DIR", default=str(BASE_DIR / "data"))).resolve()

#
# Core
#
SECRET_KEY = server_secret("DJANGO_SECRET_KEY", DATA_DIR, "django-secret-key", random_token)
DEBUG = env.bool("DJANGO_DEBUG", default=False)
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["*"])

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "django_htmx",
    "controlplane.core",
    "controlplane.access",
    "controlplane.audit",
    "controlplane.blobstore",
    "controlplane.batch",
    "controlplane.v1",
    "controlplane.metrics",
    "controlplane.rollout",
    "controlplane.portal",
]

MIDDLEWARE = [
    "controlplane.arm.middleware.ArmRequestMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # The portal's static files (controlplane/portal/static), found where the apps keep them.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    # After the request id and the canonical path are set: records every write (audit/).
    "controlplane.audit.middleware.AuditMiddleware",
]

# The blob server (``manage.py serve --blob``) runs the same project with its own URLs.
ROOT_URLCONF = env("WEIR_URLCONF", default="controlplane.urls")
WSGI_APPLICATION = "controlplane.wsgi.application"
APPEND_SLASH = False

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

#
# Database
#
DATABASES = {"default": env.db("DATABASE_URL", default="postgres://localhost/weir")}
DATABASES["default"].setdefault("CONN_MAX_AGE", 60)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

USE_TZ = True
TIME_ZONE = "UTC"
STATIC_URL = "static/"
# Served by whitenoise from the apps' static folders, as they are: no collectstatic step.
WHITENOISE_USE_FINDERS = True

#
# Logging: request ids and operation ids, never a secret.
#
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env("WEIR_LOG_LEVEL", default="INFO")},
    # Authlib logs the PKCE verifier of each sign-in at DEBUG.
    "loggers": {"authlib": {"level": "INFO"}},
}

# ARM's limit on a request's content (RequestContentTooLarge, 413, past it); blob uploads
# stream through the blob server and are not held to it.
DATA_UPLOAD_MAX_MEMORY_SIZE = 4 * 1024 * 1024

#
# REST framework / OpenAPI
#
REST_FRAMEWORK = {
    # A bearer API token, or the session of a person who signed in (CSRF-checked on writes).
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "controlplane.arm.authentication.ApiTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["controlplane.arm.permissions.ArmScopePermission"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["controlplane.arm.parsers.ArmJSONParser"],
    "EXCEPTION_HANDLER": "controlplane.arm.errors.arm_exception_handler",
    "DEFAULT_SCHEMA_CLASS": "controlplane.arm.schema.ArmAutoSchema",
    "UNAUTHENTICATED_USER": None,
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Weir",
    "DESCRIPTION": (
        "Self-hosted Azure Machine Learning endpoints: the ARM resource API for workspaces, "
        "online endpoints, deployments and assets."
    ),
    "VERSION": "2024-04-01",
    "SERVE_INCLUDE_SCHEMA": False,
    # Docstrings describe the code to its maintainers; API descriptions are written for users.
    "DISABLE_DOCSTRING_DESCRIPTIONS": True,
    "COMPONENT_SPLIT_REQUEST": True,
    # As in Azure's swagger: read-only properties (id, systemData, identity's principalId...)
    # are not listed as required, since a response may leave some out.
    "COMPONENT_NO_READ_ONLY_REQUIRED": True,
    # Operations are tagged by the path segment after the subscription.
    "SCHEMA_PATH_PREFIX": r"/subscriptions/\{subscriptionId\}/",
    "ENUM_NAME_OVERRIDES": {
        "ProvisioningStateEnum": "controlplane.core.choices.ProvisioningState",
        "DeploymentProvisioningStateEnum": "controlplane.core.choices.DeploymentProvisioningState",
        "AuthModeEnum": "controlplane.core.choices.AuthMode",
        "EndpointComputeTypeEnum": "controlplane.core.choices.EndpointComputeType",
        "OperationStatusEnum": "controlplane.core.choices.OperationStatus",
        "KeyTypeEnum": "controlplane.core.choices.KeyType",
        "ContainerTypeEnum": "controlplane.core.choices.ContainerType",
        "PublicNetworkAccessEnum": "controlplane.core.choices.PublicNetworkAccess",
        "ListViewTypeEnum": "controlplane.core.choices.ListViewType",
    },
}

#
# Sign-in for people: sessions, local passwords and the organisation's OpenID Connect provider
#
AUTHENTICATION_BACKENDS = [
    "controlplane.access.backends.PasswordBackend",
    "controlplane.access.backends.OpenIdConnectBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {
        "NAME": "django.contrib.auth.password_validation.MinimumLengthValidator",
        "OPTIONS": {"min_length": 12},
    },
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "/auth/login"
# People who sign in with no page to go back to land on the portal.
LOGIN_REDIRECT_URL = "/portal/"
SESSION_COOKIE_AGE = env.int("WEIR_SESSION_SECONDS", default=8 * 3600)
# Weir serves HTTPS (bin/start, nginx): its cookies are never sent over plain HTTP.
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = env.bool("WEIR_SECURE_COOKIES", default=True)
# The provider's redirect back is a top-level GET from another site: Lax still sends the
# session cookie with it, and with nothing else from another site.
SESSION_COOKIE_SAMESITE = CSRF_COOKIE_SAMESITE = "Lax"
# Off when empty; discovery at {issuer}/.well-known/openid-configuration.
WEIR_OIDC_ISSUER = env("WEIR_OIDC_ISSUER", default="")
WEIR_OIDC_CLIENT_ID = env("WEIR_OIDC_CLIENT_ID", default="")
WEIR_OIDC_CLIENT_SECRET = optional_secret("WEIR_OIDC_CLIENT_SECRET")
WEIR_OIDC_SCOPES = env("WEIR_OIDC_SCOPES", default="openid profile email")
# The ID token claim listing the person's groups; its values are matched to Weir groups'
# externalId.
WEIR_OIDC_GROUPS_CLAIM = env("WEIR_OIDC_GROUPS_CLAIM", default="groups")

#
# Celery
#
# Redis URLs get WEIR_REDIS_PASSWORD when they carry no password of their own.
CELERY_BROKER_URL = with_password(env("CELERY_BROKER_URL", default="redis://localhost:6379/0"))
CELERY_TASK_DEFAULT_QUEUE = env("WEIR_QUEUE", default="provision")
# Environment and image builds run on a queue of their own (a worker with its own
# concurrency), so a long build never delays a scale, a delete or an autoscale decision.
WEIR_BUILD_QUEUE = env("WEIR_BUILD_QUEUE", default="builds")
# Batch jobs run for minutes or hours: their own worker, so no job holds up a build or a scale.
WEIR_BATCH_QUEUE = env("WEIR_BATCH_QUEUE", default="batch")
CELERY_TASK_ROUTES = {
    "weir.apply_deployment": {"queue": WEIR_BUILD_QUEUE},
    "weir.run_batch_job": {"queue": WEIR_BATCH_QUEUE},
}
# Only the tasks the control plane waits on (getLogs) keep a result, for a minute.
CELERY_RESULT_BACKEND = with_password(env("CELERY_RESULT_BACKEND", default=CELERY_BROKER_URL))
CELERY_RESULT_EXPIRES = 60
# How long getLogs waits for a worker to read the replicas' output.
WEIR_LOGS_TIMEOUT = env.float("WEIR_LOGS_TIMEOUT", default=15.0)
CELERY_TASK_TIME_LIMIT = env.int("CELERY_TASK_TIME_LIMIT", default=3600)
CELERY_TASK_SOFT_TIME_LIMIT = int(CELERY_TASK_TIME_LIMIT * 0.9)
# With acks_late on Redis an unacked task is re-delivered after the visibility timeout:
# it must outlast the longest task or a slow task would run twice.
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": int(CELERY_TASK_TIME_LIMIT * 1.1)}
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_TASK_IGNORE_RESULT = True
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BEAT_SCHEDULE = {
    "reconcile-operations": {
        "task": "weir.reconcile_operations",
        "schedule": env.float("WEIR_RECONCILE_INTERVAL", default=30.0),
    },
    "publish-routes": {
        "task": "weir.publish_routes",
        "schedule": env.float("WEIR_RECONCILE_INTERVAL", default=30.0),
    },
    "reconcile-batch-jobs": {
        "task": "weir.reconcile_batch_jobs",
        "schedule": env.float("WEIR_RECONCILE_INTERVAL", default=30.0),
    },
    # Rollouts whose controller stopped pushing its lease forward (its worker died).
    "reconcile-rollouts": {
        "task": "weir.reconcile_rollouts",
        "schedule": env.float("WEIR_RECONCILE_INTERVAL", default=30.0),
    },
    "reconcile-service-operations": {
        "task": "weir.reconcile_service_operations",
        "schedule": env.float("WEIR_RECONCILE_INTERVAL", default=30.0),
    },
    # Finished minutes of scoring metrics, from the routers' reports in Redis to Postgres.
    "collect-metrics": {
        "task": "weir.collect_metrics",
        "schedule": env.float("WEIR_METRICS_COLLECT_INTERVAL", default=15.0),
    },
}

#
# Weir
#
# Fernet key(s) that encrypt endpoint keys and signing keys at rest. Several keys, comma
# separated, allow rotation: the first encrypts, all decrypt.
WEIR_ENCRYPTION_KEYS = server_secret(
    "WEIR_ENCRYPTION_KEY", DATA_DIR, "encryption-key", lambda: Fernet.generate_key().decode()
).split(",")
WEIR_TLS_CERT = env("WEIR_TLS_CERT", default=str(DATA_DIR / "tls" / "server.crt"))
WEIR_TLS_KEY = env("WEIR_TLS_KEY", default=str(DATA_DIR / "tls" / "server.key"))
# The API's public URL, for the URLs answers carry when no request names the host.
WEIR_API_URL = env("WEIR_API_URL", default="https://localhost:8443")
WEIR_LOCATION = env("WEIR_LOCATION", default="local")
WEIR_TENANT_ID = env("WEIR_TENANT_ID", default="00000000-0000-0000-0000-000000000000")
# Seconds a client should wait between polls of a Location URL (ARM allows 10..600).
WEIR_RETRY_AFTER = env.int("WEIR_RETRY_AFTER", default=10)
WEIR_ASYNC_OPERATION_TIMEOUT = env("WEIR_ASYNC_OPERATION_TIMEOUT", default="PT1H")
# An operation whose worker has not reported for this long is re-driven by the reconciler.
WEIR_OPERATION_LEASE_SECONDS = env.int("WEIR_OPERATION_LEASE_SECONDS", default=300)
# A rollout's controller ticks this often (seconds); its lease lasts WEIR_ROLLOUT_LEASE_SECONDS
# from its last tick, after which the reconciler gives the rollout to a new run.
WEIR_ROLLOUT_TICK_SECONDS = env.float("WEIR_ROLLOUT_TICK_SECONDS", default=1.0)
WEIR_ROLLOUT_LEASE_SECONDS = env.int("WEIR_ROLLOUT_LEASE_SECONDS", default=10)
WEIR_AML_TOKEN_LIFETIME = env.int("WEIR_AML_TOKEN_LIFETIME", default=24 * 3600)
WEIR_API_TOKEN_DAYS = env.int("WEIR_API_TOKEN_DAYS", default=365)
WEIR_PAGE_SIZE = env.int("WEIR_PAGE_SIZE", default=100)
WEIR_MAX_DEPLOYMENTS_PER_ENDPOINT = env.int("WEIR_MAX_DEPLOYMENTS_PER_ENDPOINT", default=20)
WEIR_MAX_INSTANCES_PER_DEPLOYMENT = env.int("WEIR_MAX_INSTANCES_PER_DEPLOYMENT", default=50)
WEIR_SCORING_DOMAIN = env("WEIR_SCORING_DOMAIN", default="localhost")
WEIR_SCORING_PORT = env.int("WEIR_SCORING_PORT", default=8080)
# Which scoring URIs endpoints report (the router serves both): "host" gives
# http://{endpoint}.{workspace}.{domain}:{port}/score (needs wildcard DNS beyond localhost),
# "path" gives http://{domain}:{port}/endpoints/{workspace}/{endpoint}/score.
WEIR_SCORING_URI_STYLE = env("WEIR_SCORING_URI_STYLE", default="host")
if WEIR_SCORING_URI_STYLE not in ("host", "path"):
    raise ImproperlyConfigured("WEIR_SCORING_URI_STYLE must be 'host' or 'path'")
WEIR_LOG_DIR = Path(env("WEIR_LOG_DIR", default=str(DATA_DIR / "logs")))

#
# Blob store
#
WEIR_BLOB_BACKEND = env(
    "WEIR_BLOB_BACKEND", default="controlplane.blobstore.backends.DiskBlobBackend"
)
WEIR_BLOB_ROOT = Path(env("WEIR_BLOB_ROOT", default=str(DATA_DIR / "blobs")))
# The blob server's public base URL, used in the SAS URLs Weir hands out.
WEIR_BLOB_URL = env("WEIR_BLOB_URL", default="https://localhost:8444")
WEIR_BLOB_MAX_UPLOAD = env.int("WEIR_BLOB_MAX_UPLOAD", default=256 * 1024 * 1024)
WEIR_BLOB_MAX_SIZE = env.int("WEIR_BLOB_MAX_SIZE", default=10 * 1024 * 1024 * 1024)
WEIR_SAS_LIFETIME = env.int("WEIR_SAS_LIFETIME", default=3600)
# Directories on this machine that assets may reference by path (copied in at registration).
WEIR_LOCAL_ASSET_ROOTS = env.list("WEIR_LOCAL_ASSET_ROOTS", default=[])

#
# Backends
#
WEIR_BACKEND = env("WEIR_BACKEND", default="workers.backends.local.LocalBackend")
# Built Python environments, one directory per content hash.
WEIR_ENVIRONMENT_DIR = Path(env("WEIR_ENVIRONMENT_DIR", default=str(DATA_DIR / "envs")))
# What makes them: "uv" (uv venv + uv pip install, pip's index settings carried over) or
# "pip" (python -m venv + pip install, as before uv).
WEIR_ENVIRONMENT_INSTALLER = env("WEIR_ENVIRONMENT_INSTALLER", default="uv")
if WEIR_ENVIRONMENT_INSTALLER not in ("uv", "pip"):
    raise ImproperlyConfigured("WEIR_ENVIRONMENT_INSTALLER must be 'uv' or 'pip'")
# uv's download and unpack cache. Environments are hard links into it, so it belongs on the
# filesystem of WEIR_ENVIRONMENT_DIR (on another one uv copies, with a warning).
WEIR_UV_CACHE_DIR = Path(env("WEIR_UV_CACHE_DIR", default=str(DATA_DIR / "uv-cache")))
# The image pipeline (Kubernetes compute): images are pushed to WEIR_REGISTRY and looked up
# there, then in WEIR_SHARED_REGISTRY (host:port each; http for the ones listed in
# WEIR_INSECURE_REGISTRIES). WEIR_IMAGE_BASE, when set, replaces every environment's own
# image as the base (for machines that cannot pull from public registries).
WEIR_REGISTRY = env("WEIR_REGISTRY", default="localhost:5000")
WEIR_SHARED_REGISTRY = env("WEIR_SHARED_REGISTRY", default="")
WEIR_INSECURE_REGISTRIES = env.list("WEIR_INSECURE_REGISTRIES", default=["localhost:5000"])
WEIR_IMAGE_REPOSITORY = env("WEIR_IMAGE_REPOSITORY", default="weir/environments")
WEIR_IMAGE_BASE = env("WEIR_IMAGE_BASE", default="")
# Kubernetes compute: the kubeconfig file whose contexts computes name (in a pod: empty, and
# a compute without resourceId uses the pod's service account); and how long the SAS URLs
# that pods fetch model and code with stay valid (pods restarted later fetch again).
WEIR_KUBECONFIG = env("WEIR_KUBECONFIG", default="")
# The namespace Weir's routers run in (deploy/kubernetes/weir.yaml): replica pods on a
# Kubernetes compute take connections from there only (a NetworkPolicy).
WEIR_ROUTER_NAMESPACE = env("WEIR_ROUTER_NAMESPACE", default="weir")
WEIR_POD_SAS_LIFETIME = env.int("WEIR_POD_SAS_LIFETIME", default=30 * 24 * 3600)
# Seconds the write SAS of a deployment's data collector is valid (a year; a new one with
# every rollout of the deployment).
WEIR_DATA_COLLECTOR_SAS_LIFETIME = env.int(
    "WEIR_DATA_COLLECTOR_SAS_LIFETIME", default=365 * 24 * 3600
)
# CA certificates pip trusts inside image builds (a TLS-inspecting proxy's); mounted for
# the build only, never part of the image. Default: the bundle pip uses here (PIP_CERT).
WEIR_BUILD_CA_BUNDLE = env("WEIR_BUILD_CA_BUNDLE", default=os.environ.get("PIP_CERT", ""))
WEIR_BUILDAH = env.list("WEIR_BUILDAH", default=["buildah", "--storage-driver", "vfs"])
# The agent's state directory (desired specs, status, replica logs).
WEIR_AGENT_DIR = Path(env("WEIR_AGENT_DIR", default=str(DATA_DIR / "agent")))
# Where deployments' model and code files are placed for their replicas.
WEIR_DEPLOYMENT_DIR = Path(env("WEIR_DEPLOYMENT_DIR", default=str(DATA_DIR / "deployments")))
# How long a provisioning step waits for replicas to become ready.
# Where batch jobs keep their inputs, mini-batch parts and outputs while they run.
WEIR_BATCH_DIR = Path(env("WEIR_BATCH_DIR", default=str(DATA_DIR / "batch")))
# Seconds a batch scoring process's init() may take before its job fails.
WEIR_BATCH_INIT_TIMEOUT = env.float("WEIR_BATCH_INIT_TIMEOUT", default=600.0)
WEIR_READY_TIMEOUT = env.int("WEIR_READY_TIMEOUT", default=900)

#
# Scoring router
#
# The Redis that carries the routing table to the router (default: the broker's).
WEIR_ROUTING_REDIS_URL = with_password(env("WEIR_ROUTING_REDIS_URL", default=CELERY_BROKER_URL))
# Days of per-minute scoring metrics kept (older minutes are deleted as new ones come in).
WEIR_METRICS_RETENTION_DAYS = env.int("WEIR_METRICS_RETENTION_DAYS", default=14)
