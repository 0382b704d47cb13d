"""Operations: the Prometheus metrics satlake exposes, the exporter serving them and the alert rules on them."""
