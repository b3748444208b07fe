"""emoji_bow: the first emote classifier (hashed character n-grams, sqrt-length pooled, linear head
whose bias starts at the log class prior).

`tokenize.py` (preprocessing), `model.py` (the module), `train.py` (the loop); import those directly.
"""
