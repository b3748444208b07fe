"""emoji_align: the emoji seed's method done right. Comment text and emote images in one space; an
emote's prototype is the mean of its images' embeddings; emotes ranked by similarity / tau.

`model.py` (the modules), `losses.py` (cross-entropy over prototypes, hardest-negative triplet),
`train.py` (config, data, folds over whole videos, the fit through the shared loop in
`training/loop.py`, evaluation beside the baselines, the all-data retrain); import those directly.
"""
