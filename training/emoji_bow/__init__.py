"""emoji_bow: the first emote classifier (hashed character n-grams, mean-pooled, linear head).

`tokenize.py` (preprocessing), `model.py` (the module), `train.py` (the loop); import those directly.
"""
