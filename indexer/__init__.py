"""Whole-survey encoding, index building, scores, versioned artifacts, and the read side."""
