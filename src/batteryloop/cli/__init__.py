"""Face: the `batteryloop` command line (Typer + rich)."""
