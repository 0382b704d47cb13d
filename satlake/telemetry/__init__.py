"""satlake telemetry."""
