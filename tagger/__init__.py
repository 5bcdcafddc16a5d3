"""moodtag: tag music calm or exciting with a small CNN on mid-song clips."""

__version__ = "0.3.0"
