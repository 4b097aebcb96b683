"""The one Django app that holds Weir's resources (app label ``weir``)."""
