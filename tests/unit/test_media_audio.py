"""Audio clips: real files written with soundfile (libsndfile), read back through app.core.media.audio."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from app.core import paths
from app.core.media import audio
from app.core.media.audio import (
    NO_SOUND_MESSAGE,
    TARGET_RATE,
    clip_from_recording,
    load_audio,
    meter_level,
    pcm_to_float,
    peak_dbfs,
    rms_dbfs,
)
from app.core.media.errors import MediaError, SilenceError
from app.core.media.resample import resample


def _tone(freq: float, seconds: float, rate: int, amplitude: float = 0.5) -> np.ndarray:
    t = np.arange(int(round(seconds * rate))) / rate
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def _dominant_hz(samples: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    return float(np.fft.rfftfreq(len(samples), 1 / rate)[int(np.argmax(spectrum))])


def test_stereo_44k_becomes_16k_mono_with_the_same_duration(tmp_path: Path) -> None:
    left = _tone(440, 3.0, 44100)
    right = _tone(440, 3.0, 44100, amplitude=0.3)
    source = tmp_path / "stereo.wav"
    sf.write(source, np.stack([left, right], axis=1), 44100, subtype="PCM_16")
    clip = load_audio(source)
    assert clip.sample_rate == TARGET_RATE
    assert clip.samples.dtype == np.float32 and clip.samples.ndim == 1
    assert abs(clip.duration_s - 3.0) < 1 / TARGET_RATE + 1e-9
    assert abs(_dominant_hz(clip.samples, TARGET_RATE) - 440) < 2
    middle = clip.samples[4000:-4000]
    assert abs(np.abs(middle).max() - 0.4) < 0.01  # the average of the two channels
    assert clip.source_name == "stereo.wav"


@pytest.mark.parametrize(("fmt", "subtype", "suffix"), [
    ("FLAC", "PCM_16", ".flac"),
    ("OGG", "VORBIS", ".ogg"),
    ("MP3", "MPEG_LAYER_III", ".mp3"),
])
def test_compressed_formats_are_read(tmp_path: Path, fmt: str, subtype: str, suffix: str) -> None:
    source = tmp_path / f"tone{suffix}"
    sf.write(source, _tone(1000, 2.0, 48000), 48000, format=fmt, subtype=subtype)
    clip = load_audio(source)
    assert abs(clip.duration_s - 2.0) < 0.1  # MP3 adds encoder padding
    assert abs(_dominant_hz(clip.samples, TARGET_RATE) - 1000) < 5


def test_zero_length_wav_is_refused(tmp_path: Path) -> None:
    source = tmp_path / "nothing.wav"
    sf.write(source, np.zeros(0, dtype=np.float32), 16000, subtype="PCM_16")
    assert source.stat().st_size > 0  # a real WAV header, just no frames
    with pytest.raises(MediaError) as caught:
        load_audio(source)
    assert "nothing.wav" in caught.value.user_message
    assert "no audio" in caught.value.user_message


def test_two_minute_wav_is_refused_without_decoding_it(tmp_path: Path) -> None:
    source = tmp_path / "lecture.wav"
    sf.write(source, _tone(300, 120.0, 16000), 16000, subtype="PCM_16")
    started = time.monotonic()
    with pytest.raises(MediaError) as caught:
        load_audio(source)
    assert time.monotonic() - started < 2.0
    message = caught.value.user_message
    assert "lecture.wav" in message and "is 2 min long" in message and "30 seconds" in message


def test_exactly_thirty_seconds_is_accepted(tmp_path: Path) -> None:
    source = tmp_path / "thirty.wav"
    sf.write(source, _tone(300, 30.0, 22050), 22050, subtype="PCM_16")
    assert abs(load_audio(source).duration_s - 30.0) < 1e-3


def test_silent_and_near_silent_files_are_refused(tmp_path: Path) -> None:
    silent = tmp_path / "silent.wav"
    sf.write(silent, np.zeros(16000, dtype=np.float32), 16000, subtype="PCM_16")
    with pytest.raises(SilenceError, match="silent.wav"):
        load_audio(silent)
    hiss = tmp_path / "hiss.wav"
    noise = np.random.default_rng(0).normal(0, 10 ** (-70 / 20), 32000).astype(np.float32)
    sf.write(hiss, noise, 16000, subtype="FLOAT")
    with pytest.raises(SilenceError):
        load_audio(hiss)


def test_short_word_in_long_quiet_clip_is_not_silence() -> None:
    samples = np.zeros(16000 * 20, dtype=np.float32)
    samples[80000:83200] = _tone(500, 0.2, 16000, amplitude=0.05)  # 0.2 s at about -29 dBFS
    assert rms_dbfs(samples) < -45  # the average alone would call this silence
    assert not audio.is_silent(samples)


def test_not_audio_and_missing_files(tmp_path: Path) -> None:
    fake = tmp_path / "song.wav"
    fake.write_text("not audio at all\n" * 10)
    with pytest.raises(MediaError, match="song.wav.*not an audio file"):
        load_audio(fake)
    with pytest.raises(MediaError, match="could not be found"):
        load_audio(tmp_path / "gone.wav")
    empty = tmp_path / "empty.ogg"
    empty.write_bytes(b"")
    with pytest.raises(MediaError, match="empty"):
        load_audio(empty)


def test_recording_is_resampled_trimmed_and_checked_for_silence() -> None:
    stereo = np.stack([_tone(700, 31.0, 48000)] * 2, axis=1)
    clip = clip_from_recording(stereo, 48000)
    assert clip.sample_rate == TARGET_RATE
    assert len(clip.samples) == 30 * TARGET_RATE  # trimmed to the cap, not refused
    with pytest.raises(SilenceError) as caught:
        clip_from_recording(np.zeros(48000, dtype=np.float32), 48000)
    assert caught.value.user_message == NO_SOUND_MESSAGE
    with pytest.raises(SilenceError, match="check the microphone"):
        clip_from_recording(np.zeros(0, dtype=np.float32), 16000)


def test_stored_clip_is_16k_mono_pcm_named_by_hash() -> None:
    clip = clip_from_recording(_tone(440, 1.5, 16000), 16000)
    path = clip.store()
    assert path.parent == paths.attachments_dir()
    assert path.name == f"{clip.sha256}.wav"
    info = sf.info(path)
    assert (info.samplerate, info.channels, info.subtype, info.frames) == (16000, 1, "PCM_16", 24000)
    back, _ = sf.read(path, dtype="float32")
    assert np.max(np.abs(back - clip.samples)) < 1e-4


def test_pcm_conversion_of_qt_sample_formats() -> None:
    s16 = np.array([0, 16384, -32768, 32767], dtype="<i2").tobytes()
    assert np.allclose(pcm_to_float(s16, "s16", 1)[:, 0], [0, 0.5, -1, 32767 / 32768])
    stereo = np.array([[0.25, -0.25], [0.5, -0.5]], dtype="<f4")
    assert np.array_equal(pcm_to_float(stereo.tobytes(), "f32", 2), stereo)
    s32 = np.array([1 << 30], dtype="<i4").tobytes()
    assert np.allclose(pcm_to_float(s32, "s32", 1), 0.5)
    assert np.allclose(pcm_to_float(bytes([128, 255, 0]), "u8", 1)[:, 0], [0, 127 / 128, -1])
    assert pcm_to_float(s16[:3], "s16", 1).shape == (1, 1)  # a half sample is dropped
    with pytest.raises(ValueError):
        pcm_to_float(s16, "s24", 1)


def test_levels_for_the_meter() -> None:
    full = _tone(1000, 1.0, 16000, amplitude=1.0)
    assert abs(rms_dbfs(full) + 3.01) < 0.05
    assert abs(peak_dbfs(full)) < 0.01
    assert meter_level(np.zeros(100, dtype=np.float32)) == 0.0
    assert meter_level(full) > 0.9
    quiet = _tone(1000, 1.0, 16000, amplitude=10 ** (-30 / 20) * np.sqrt(2))
    assert abs(meter_level(quiet) - 0.5) < 0.01  # -30 dBFS RMS is half way up a 60 dB meter


@pytest.mark.parametrize(("src", "dst"), [(44100, 16000), (48000, 16000), (8000, 16000), (22050, 16000)])
def test_resampler_keeps_a_tone_and_removes_what_cannot_be_represented(src: int, dst: int) -> None:
    out = resample(_tone(1000, 1.0, src), src, dst)
    assert len(out) == dst
    expected = _tone(1000, 1.0, dst)
    assert np.max(np.abs(out[200:-200] - expected[200:-200])) < 2e-3
    if src > dst:
        above_nyquist = resample(_tone(dst * 0.6, 1.0, src), src, dst)
        assert rms_dbfs(above_nyquist[200:-200]) < -45  # aliasing suppressed
