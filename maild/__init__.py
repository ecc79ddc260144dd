"""maild: an email support desk that runs as a daemon."""
