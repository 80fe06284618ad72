"""The encoder: backbone + projection head, the one pixel preprocessing, model card, weights."""
