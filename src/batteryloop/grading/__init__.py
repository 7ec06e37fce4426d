"""grading stage."""
