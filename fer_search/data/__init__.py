"""FER2013 in every form -> FERData (uint8 48x48 arrays): loading, cache, splits, synthetic data, audit
(each name imported on first use)."""
from fer_search.lazy import lazy_exports

_EXPORTS = {"audit": "audit", "format_audit": "audit", "describe_load": "loader", "load_data": "loader",
            "make_synthetic": "synthetic", **{name: "types" for name in (
                "CLASS_NAMES", "IMAGE_SIZE", "NUM_CLASSES", "UNLABELED", "FERData", "LoadReport", "Split")}}
__all__ = list(_EXPORTS)
__getattr__ = lazy_exports(__name__, _EXPORTS)
