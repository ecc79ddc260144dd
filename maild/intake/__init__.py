"""The intake's stages, from raw bytes to a decision about a ticket and its actions."""
