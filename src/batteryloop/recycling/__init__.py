"""recycling stage."""
