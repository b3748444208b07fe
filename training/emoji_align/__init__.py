"""emoji_align: the emoji seed's method done right. Comment text and emote images in one space; an
emote's prototype is the mean of its images' embeddings; emotes ranked by similarity / tau.

`model.py` (the modules), `losses.py` (cross-entropy over prototypes, hardest-negative triplet),
`train.py` (the loop, evaluation, checkpoints); import those directly.
"""
