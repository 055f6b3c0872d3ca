"""Measuring what a style does to a video: structure kept, style applied, temporal consistency."""
