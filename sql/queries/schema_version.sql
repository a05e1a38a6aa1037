select coalesce(max(version), 0) as version from bgtask.schema_version
