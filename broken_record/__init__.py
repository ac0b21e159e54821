"""Broken Record Parrot: make two local LLMs talk, find where the conversation loops or breaks."""

__version__ = "0.1.0"
