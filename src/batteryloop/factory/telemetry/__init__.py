"""Plant telemetry: the MQTT scheme, historian CSV import, screening, quarantine, Parquet store."""
