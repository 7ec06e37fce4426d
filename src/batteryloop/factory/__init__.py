"""factory stage."""
