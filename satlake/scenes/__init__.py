"""satlake scenes."""
