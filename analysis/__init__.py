"""Analysis of finished searches: leaderboard, ensemble of the best trials, report, export.

Reads the trial files through `fer_search.search.layout`; never imports Ray.
"""


class AnalysisWarning(UserWarning):
    """A trial skipped or a request scaled down: the analysis goes on, and the user is told."""
