"""beets' `moodtag` plugin (`plugins: moodtag`). The wheel installs this file as beetsplug/moodtag.py;
from a checkout, point beets' `pluginpath` at this folder. The code is in tagger.beets_plugin."""
from tagger.beets_plugin import MoodtagPlugin as _MoodtagPlugin


class MoodtagPlugin(_MoodtagPlugin):
    """Defined here because beets loads the plugin class defined in the `beetsplug.moodtag` module."""
