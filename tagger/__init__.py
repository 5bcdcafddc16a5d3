"""moodtag: tag music calm or exciting from how it moves in mid-song clips."""

__version__ = "0.5.0.dev0"
