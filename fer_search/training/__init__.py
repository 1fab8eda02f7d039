"""Single-run training and its files (each name imported on first use); inference is fer_search.inference."""
from fer_search.lazy import lazy_exports

_EXPORTS = {"TrainConfig": "config", "parse_set_options": "config", "EpochState": "trainer",
            "TrainingDiverged": "trainer", "TrainResult": "trainer", "train": "trainer"}
__all__ = list(_EXPORTS)
__getattr__ = lazy_exports(__name__, _EXPORTS)
