"""Sinch connectStream to RTP stream gateway."""
