"""Encoders shared by every model: text (a transformers model, or hashed character n-grams) and
images, each with its preprocessing beside it. Import the modules directly (they import torch)."""
