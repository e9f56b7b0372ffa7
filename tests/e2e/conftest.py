"""Fixtures shared by the end-to-end tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from PIL import Image


@pytest.fixture()
def media_files(tmp_path: Path) -> dict[str, Path]:
    img = tmp_path / "photo.png"
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (120, 160, 3), dtype=np.uint8)).save(img)
    wav = tmp_path / "voice.wav"
    t = np.arange(int(44100 * 1.5)) / 44100
    sf.write(wav, np.stack([0.3 * np.sin(2 * np.pi * 330 * t)] * 2, axis=1), 44100)  # stereo 44.1 kHz
    return {"image": img, "audio": wav}
