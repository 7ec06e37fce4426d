"""carbon stage."""
