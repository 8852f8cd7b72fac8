"""Training the focus classifier: a config dataclass and the loop (no argparse here)."""

from focusfuse.train.loop import TrainConfig, TrainResult, evaluate_pairs, train

__all__ = ["TrainConfig", "TrainResult", "evaluate_pairs", "train"]
