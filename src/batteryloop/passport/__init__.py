"""passport stage."""
