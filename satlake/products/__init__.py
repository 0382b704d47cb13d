"""satlake products."""
