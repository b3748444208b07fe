"""emotions (EQN): an energy level 0-10 for each of the 28 GoEmotions emotions (the EQN seed's method)."""
