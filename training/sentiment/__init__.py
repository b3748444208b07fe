"""sentiment: text + image pairs read positive, neutral or negative (the multimodal seed's method)."""
