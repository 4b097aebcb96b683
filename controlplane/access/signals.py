"""What the access app announces, for the audit log to record (Django signals, so neither side
imports the other). Every signal is sent with ``request`` (or None) and ``principal`` (the
user who acted); sign-ins use Django's own ``user_logged_in`` / ``user_login_failed``."""

from django.dispatch import Signal

# token: the ApiToken row (never its secret); owner: the user it acts as.
token_created = Signal()
token_revoked = Signal()
# assignment: the RoleAssignment row; sent after it is created, before it is deleted.
role_assignment_created = Signal()
role_assignment_deleted = Signal()
# definition: the RoleDefinition row (custom roles).
role_definition_changed = Signal()
role_definition_deleted = Signal()
