"""FER2013 in every form -> FERData (uint8 48x48 arrays): loading, cache, splits, synthetic data, audit."""
from fer_search.data.audit import audit, format_audit
from fer_search.data.loader import describe_load, load_data
from fer_search.data.synthetic import make_synthetic
from fer_search.data.types import CLASS_NAMES, IMAGE_SIZE, NUM_CLASSES, UNLABELED, FERData, LoadReport, Split

__all__ = ["load_data", "describe_load", "make_synthetic", "audit", "format_audit", "FERData", "Split", "LoadReport",
           "CLASS_NAMES", "NUM_CLASSES", "IMAGE_SIZE", "UNLABELED"]
