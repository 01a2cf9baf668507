"""One file per model family: Flax NNX modules only, no losses."""
