"""fer_search: hyperparameter search, ensembling and export for FER2013 expression recognition."""

__version__ = "0.1.0"
