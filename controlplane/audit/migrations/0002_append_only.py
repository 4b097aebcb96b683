"""The audit log is append-only in Postgres itself: UPDATE, DELETE and TRUNCATE of its table
raise, whoever sends them.

TRUNCATE alone passes in a session that set ``weir.audit_truncate`` to ``on``: test suites do,
since Django empties every table between transactional tests with one TRUNCATE. An install never
sets it (and a session able to set it owns the table, so could drop the trigger too: README,
"Audit log", says how to keep the table from the application's user altogether)."""

from django.db import migrations

APPEND_ONLY = """
CREATE FUNCTION audit_record_is_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'TRUNCATE' AND current_setting('weir.audit_truncate', true) = 'on' THEN
        RETURN NULL;
    END IF;
    RAISE EXCEPTION 'audit records are append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;
CREATE TRIGGER audit_record_no_update_or_delete
    BEFORE UPDATE OR DELETE ON audit_auditrecord
    FOR EACH ROW EXECUTE FUNCTION audit_record_is_append_only();
CREATE TRIGGER audit_record_no_truncate
    BEFORE TRUNCATE ON audit_auditrecord
    FOR EACH STATEMENT EXECUTE FUNCTION audit_record_is_append_only();
"""

DROP = """
DROP TRIGGER audit_record_no_truncate ON audit_auditrecord;
DROP TRIGGER audit_record_no_update_or_delete ON audit_auditrecord;
DROP FUNCTION audit_record_is_append_only();
"""


class Migration(migrations.Migration):
    dependencies = [("audit", "0001_initial")]

    operations = [migrations.RunSQL(APPEND_ONLY, DROP)]
