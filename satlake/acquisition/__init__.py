"""Acquisition: areas of interest, the STAC APIs they are searched in, and landing what they find."""
