"""Audio clips for Gemma 4's audio encoder: mono, 16 kHz, float32, at most 30 seconds.

Two sources, two rules for length:
- attached files longer than 30 s are refused (silently sending the first
  30 s of a longer file would answer a question about audio the model never
  heard);
- recordings are trimmed to 30 s (the recorder stops itself at the cap; the
  last chunk may overshoot by a few milliseconds).

"Silence" means no 50 ms frame is louder than `SILENCE_FLOOR_DBFS` RMS: a
microphone that is muted or unplugged gives digital zero or a faint hiss,
while speech sits around -30..-10 dBFS.
"""

from __future__ import annotations

import io
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import soundfile as sf

from app.core.media.durations import spoken
from app.core.media.errors import MAX_CLIP_SECONDS, NO_SOUND_MESSAGE, MediaError, SilenceError
from app.core.media.resample import resample
from app.core.media.store import read_source, sha256_hex, store_attachment

TARGET_RATE = 16_000
SILENCE_FLOOR_DBFS = -50.0
METER_FLOOR_DBFS = -60.0
MAX_AUDIO_FILE_BYTES = 200 * 1024 * 1024
_FRAME_SECONDS = 0.05
_EPS = 1e-12

FloatArray = npt.NDArray[np.float32]


@dataclass(frozen=True)
class AudioClip:
    """Mono float32 samples in [-1, 1] at `sample_rate` (16 kHz once normalised)."""

    samples: FloatArray = field(repr=False)
    sample_rate: int
    source_name: str

    @property
    def duration_s(self) -> float:
        """Length in seconds."""
        return len(self.samples) / self.sample_rate

    def wav_bytes(self) -> bytes:
        """The clip as a 16-bit PCM WAV file."""
        buffer = io.BytesIO()
        sf.write(buffer, np.clip(self.samples, -1.0, 1.0), self.sample_rate, "PCM_16", format="WAV")
        return buffer.getvalue()

    def store(self) -> Path:
        """Save as `<sha256>.wav` in the attachments folder and return the path."""
        return store_attachment(self.wav_bytes(), "wav")

    @property
    def sha256(self) -> str:
        """sha256 of the WAV bytes `store()` writes."""
        return sha256_hex(self.wav_bytes())


def load_audio(
    source: str | os.PathLike[str] | bytes,
    *,
    name: str | None = None,
    max_seconds: float = MAX_CLIP_SECONDS,
) -> AudioClip:
    """Read an attached audio file (anything libsndfile reads: WAV, FLAC, OGG, MP3) as a 16 kHz mono clip.

    Raises MediaError naming the file when it is missing, empty, not audio,
    longer than `max_seconds`, or silent.
    """
    data, label = read_source(source, name, default_label="audio clip", max_bytes=MAX_AUDIO_FILE_BYTES,
                              what="audio files")
    try:
        info = sf.info(io.BytesIO(data))
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as exc:
        raise MediaError(
            f"\u201c{label}\u201d is not an audio file Gemma Desktop can read \u2014 "
            "use WAV, FLAC, OGG or MP3."
        ) from exc
    if info.frames <= 0 or info.samplerate <= 0:
        raise MediaError(f"\u201c{label}\u201d holds no audio \u2014 pick another file.")
    length = info.frames / info.samplerate
    if length > max_seconds + 0.05:
        raise MediaError(
            f"\u201c{label}\u201d is {spoken(length)} long \u2014 audio clips can be at "
            f"most {max_seconds:g} seconds; cut it shorter first."
        )
    try:
        frames, rate = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, ValueError) as exc:
        raise MediaError(
            f"\u201c{label}\u201d is damaged or incomplete and cannot be played \u2014 "
            "try exporting it again."
        ) from exc
    if len(frames) == 0:
        raise MediaError(f"\u201c{label}\u201d holds no audio \u2014 pick another file.")
    samples = resample(to_mono(frames), int(rate), TARGET_RATE)
    samples = samples[: int(round(max_seconds * TARGET_RATE))]
    if is_silent(samples):
        raise SilenceError(
            f"\u201c{label}\u201d contains only silence \u2014 pick a file with sound in it."
        )
    return AudioClip(samples=samples, sample_rate=TARGET_RATE, source_name=label)


def clip_from_recording(
    samples: npt.NDArray[Any],
    sample_rate: int,
    *,
    name: str = "recording",
    max_seconds: float = MAX_CLIP_SECONDS,
) -> AudioClip:
    """Turn raw microphone samples (mono or frames x channels) into a 16 kHz clip, trimmed to the cap.

    Raises SilenceError with NO_SOUND_MESSAGE for an empty or silent recording.
    """
    mono = to_mono(np.asarray(samples, dtype=np.float32))
    if len(mono) == 0:
        raise SilenceError(NO_SOUND_MESSAGE)
    out = resample(mono, sample_rate, TARGET_RATE)[: int(round(max_seconds * TARGET_RATE))]
    if is_silent(out):
        raise SilenceError(NO_SOUND_MESSAGE)
    return AudioClip(samples=out, sample_rate=TARGET_RATE, source_name=name)


def to_mono(frames: npt.NDArray[Any]) -> FloatArray:
    """Average the channels of a (frames, channels) array; 1-D input is returned as float32."""
    array = np.asarray(frames, dtype=np.float32)
    if array.ndim == 1:
        return array
    if array.ndim != 2:
        raise ValueError(f"expected (frames, channels) audio, got shape {array.shape}")
    if array.shape[1] == 1:
        return np.ascontiguousarray(array[:, 0])
    mono: FloatArray = array.mean(axis=1, dtype=np.float32)
    return mono


_PCM_DTYPES: dict[str, np.dtype[Any]] = {"u8": np.dtype(np.uint8), "s16": np.dtype("<i2"), "s32": np.dtype("<i4"), "f32": np.dtype("<f4")}


def pcm_to_float(data: bytes, sample_format: str, channels: int) -> FloatArray:
    """Interleaved PCM bytes to a (frames, channels) float32 array in [-1, 1].

    `sample_format` is one of "u8", "s16", "s32", "f32" (the sample formats Qt
    Multimedia delivers, native little-endian on the platforms we ship). A
    trailing partial frame is dropped; callers that stream keep it for the
    next chunk (see `frame_bytes`).
    """
    if channels < 1:
        raise ValueError("channels must be >= 1")
    dtype = _PCM_DTYPES.get(sample_format)
    if dtype is None:
        raise ValueError(f"unsupported sample format: {sample_format}")
    usable = len(data) - len(data) % (dtype.itemsize * channels)
    raw = np.frombuffer(data[:usable], dtype=dtype)
    if sample_format == "s16":
        array = raw.astype(np.float32) / 32768.0
    elif sample_format == "s32":
        array = (raw.astype(np.float64) / 2147483648.0).astype(np.float32)
    elif sample_format == "u8":
        array = (raw.astype(np.float32) - 128.0) / 128.0
    else:
        array = raw.astype(np.float32)
    return array.reshape(-1, channels)


def frame_bytes(sample_format: str, channels: int) -> int:
    """Bytes per interleaved frame for a `pcm_to_float` sample format."""
    dtype = _PCM_DTYPES.get(sample_format)
    if dtype is None:
        raise ValueError(f"unsupported sample format: {sample_format}")
    return int(dtype.itemsize) * channels


def rms_dbfs(samples: npt.NDArray[Any]) -> float:
    """RMS level in dBFS (0 dBFS = full-scale square wave); -inf-like -240 for digital silence."""
    array = np.asarray(samples, dtype=np.float64)
    if array.size == 0:
        return -240.0
    return 10.0 * math.log10(float(np.mean(array * array)) + _EPS * _EPS)


def peak_dbfs(samples: npt.NDArray[Any]) -> float:
    """Peak level in dBFS."""
    array = np.asarray(samples, dtype=np.float64)
    if array.size == 0:
        return -240.0
    return 20.0 * math.log10(float(np.max(np.abs(array))) + _EPS)


def meter_level(samples: npt.NDArray[Any], floor_dbfs: float = METER_FLOOR_DBFS) -> float:
    """0..1 for a level meter: RMS dBFS mapped linearly from `floor_dbfs` (0) to 0 dBFS (1)."""
    level = (rms_dbfs(samples) - floor_dbfs) / -floor_dbfs
    return min(1.0, max(0.0, level))


def loudest_frame_dbfs(samples: npt.NDArray[Any], sample_rate: int = TARGET_RATE) -> float:
    """RMS dBFS of the loudest 50 ms frame (a short word in a long clip still counts)."""
    array = np.asarray(samples, dtype=np.float64)
    if array.size == 0:
        return -240.0
    frame = max(1, int(sample_rate * _FRAME_SECONDS))
    usable = (len(array) // frame) * frame
    if usable == 0:
        return rms_dbfs(array)
    power = (array[:usable].reshape(-1, frame) ** 2).mean(axis=1)
    loudest = float(power.max())
    if usable < len(array):
        loudest = max(loudest, float(np.mean(array[usable:] ** 2)))
    return 10.0 * math.log10(loudest + _EPS * _EPS)


def is_silent(samples: npt.NDArray[Any], floor_dbfs: float = SILENCE_FLOOR_DBFS) -> bool:
    """True when no 50 ms frame rises above the noise floor."""
    return loudest_frame_dbfs(samples) < floor_dbfs


