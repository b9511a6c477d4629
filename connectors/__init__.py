"""Edges of the platform: the command line, agency intake, provider delivery, console."""
