"""Single-run training, checkpoints, evaluation and prediction."""
from fer_search.training.config import TrainConfig, parse_set_options
from fer_search.training.predictor import Predictor, combine_probs, load_predictor
from fer_search.training.trainer import EpochState, TrainResult, train

__all__ = ["TrainConfig", "parse_set_options", "Predictor", "combine_probs", "load_predictor", "EpochState",
           "TrainResult", "train"]
