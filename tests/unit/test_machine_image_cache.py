"""The machine image cache: a new recipe's image replaces the older ones no machine uses."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from moorage.machine import image, lifecycle


def _build(work: str, _progress: object) -> None:
    """What the real build leaves (it takes a minute and the Debian mirror)."""
    os.makedirs(os.path.join(work, "out"))
    for name in ("disk.qcow2", "vmlinuz", "initrd.img"):
        Path(work, "out", name).write_bytes(b"")


@pytest.fixture
def storage(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("MOOR_MACHINE_STORAGE_PATH", str(tmp_path))
    monkeypatch.setenv("MOOR_MACHINE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(image, "_build", _build)
    return tmp_path


def _machine(storage: Path, name: str, config: str) -> None:
    (storage / "machines" / name).mkdir(parents=True)
    (storage / "machines" / name / "config.json").write_text(config)


def test_a_new_image_replaces_the_unused_older_ones(storage: Path) -> None:
    images = storage / "cache" / "images"
    for name in ("old-unused", "old-backing-a-machine", ".build-of-another-create"):
        (images / name).mkdir(parents=True)
    _machine(storage, "m1", json.dumps({"Driver": {
        "ImagePath": str(images / "old-backing-a-machine" / "disk.qcow2")}}))

    made = image.ensure(in_use=lifecycle._images_in_use())
    assert made.exists()
    assert sorted(os.listdir(images)) == sorted(
        [".build-of-another-create", "old-backing-a-machine", os.path.basename(made.path)])


def test_an_unreadable_machine_keeps_every_image(storage: Path) -> None:
    (storage / "cache" / "images" / "old").mkdir(parents=True)
    _machine(storage, "m1", "{not json")
    assert lifecycle._images_in_use() is None
    image.ensure(in_use=None)
    assert (storage / "cache" / "images" / "old").is_dir()
