"""Errors raised while reading images and audio, with a message a person can act on."""

from __future__ import annotations


class MediaError(ValueError):
    """A file or recording the app cannot use; `user_message` is shown as is."""

    def __init__(self, user_message: str) -> None:
        super().__init__(user_message)
        self.user_message = user_message


class SilenceError(MediaError):
    """The clip holds nothing above the noise floor."""


# Here rather than in audio.py so that the recorder can use them without importing numpy.
MAX_CLIP_SECONDS = 30.0
NO_SOUND_MESSAGE = "No sound was recorded \u2014 check the microphone"
