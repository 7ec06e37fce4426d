"""cycling stage."""
