"""satlake: a lakehouse for satellite telemetry and imagery."""
