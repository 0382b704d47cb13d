"""The ground segment: CCSDS space packets from ground stations, decoded with XTCE mission databases."""
