"""Single-run training, checkpoints, evaluation and prediction (each name imported on first use)."""
from fer_search.lazy import lazy_exports

_EXPORTS = {"TrainConfig": "config", "parse_set_options": "config", "Predictor": "predictor",
            "combine_probs": "predictor", "load_predictor": "predictor", "EpochState": "trainer",
            "TrainingDiverged": "trainer", "TrainResult": "trainer", "train": "trainer"}
__all__ = list(_EXPORTS)
__getattr__ = lazy_exports(__name__, _EXPORTS)
