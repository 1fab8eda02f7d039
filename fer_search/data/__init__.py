"""FER2013 in every form -> FERData (uint8 48x48 arrays): loading, cache, splits, synthetic data, audit
(the loaders are imported on first use)."""
# Eager: the function `audit` shares its module's name, which importing the module would bind here instead.
from fer_search.data.audit import audit, format_audit
from fer_search.data.types import CLASS_NAMES, IMAGE_SIZE, NUM_CLASSES, UNLABELED, FERData, LoadReport, Split
from fer_search.lazy import lazy_exports

_LAZY = {"describe_load": "loader", "load_data": "loader", "make_synthetic": "synthetic"}
__all__ = ["load_data", "describe_load", "make_synthetic", "audit", "format_audit", "FERData", "Split", "LoadReport",
           "CLASS_NAMES", "NUM_CLASSES", "IMAGE_SIZE", "UNLABELED"]
__getattr__ = lazy_exports(__name__, _LAZY)
