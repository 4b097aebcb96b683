"""``weir``: the command-line client of Weir's REST API, shaped like ``az ml``."""
