"""satlake catalog."""
