"""Gemma Desktop: chat offline with Gemma 4 on your own machine."""

APP_NAME = "Gemma Desktop"
APP_ID = "gemma-desktop"
__version__ = "0.1.0"
