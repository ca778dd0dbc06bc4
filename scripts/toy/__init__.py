"""The toy model family: procedural clips (data.py) that the demonstration checkpoints in `toy_models/` are
trained on by `scripts/train_toy.py`, and the measurements the quality tests make on decoded videos."""
