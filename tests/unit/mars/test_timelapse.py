"""The photo timelapse: an animated GIF read back with Pillow, frames in (sol, photo id) order whatever order
they were given in, letterboxing, captions, unreadable files skipped with a reason, and no frames refused."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from PIL import Image, ImageSequence

from satlake.mars.timelapse import MEDIA_TYPE_GIF, Frame, build_timelapse, caption

SIZE = (128, 96)


def grey_image(path: Path, level: int, size: tuple[int, int] = (64, 48), mode: str = "L") -> Path:
    colour = level if mode == "L" else (level, level, level)
    Image.new(mode, size, colour).save(path)
    return path


def read_frames(path: Path) -> list[Image.Image]:
    with Image.open(path) as gif:
        assert gif.format == "GIF"
        return [frame.convert("L") for frame in ImageSequence.Iterator(gif)]


def centre_level(frame: Image.Image) -> int:
    """The grey level in the middle of a frame, well above the caption in the bottom-left corner."""
    return int(frame.getpixel((frame.width // 2, frame.height // 3)))


def five_frames(tmp_path: Path) -> tuple[list[Frame], list[int]]:
    """Five photos of distinct flat grey levels, listed out of (sol, photo id) order; and their levels in order."""
    ordered = [(1000, 7, 40), (1000, 9, 80), (1001, 2, 120), (1001, 15, 160), (1002, 1, 200)]
    frames = [
        Frame(sol, photo_id, grey_image(tmp_path / f"{sol}-{photo_id}.png", level), "FHAZ")
        for sol, photo_id, level in ordered
    ]
    shuffled = [frames[3], frames[0], frames[4], frames[2], frames[1]]
    return shuffled, [level for _sol, _photo_id, level in ordered]


def test_frames_come_in_sol_then_photo_id_order(tmp_path: Path) -> None:
    frames, levels = five_frames(tmp_path)
    out = tmp_path / "gifs" / "curiosity-fhaz.gif"
    info = build_timelapse(frames, out, size=SIZE, frame_ms=250)
    assert info.path == out and out.is_file()
    assert info.frame_count == 5
    assert info.sols == [1000, 1001, 1002]
    assert info.skipped == []
    assert info.media_type == MEDIA_TYPE_GIF == "image/gif"
    data = out.read_bytes()
    assert info.size_bytes == len(data)
    assert info.sha256 == hashlib.sha256(data).hexdigest()
    gif_frames = read_frames(out)
    assert len(gif_frames) == 5
    assert all(frame.size == SIZE for frame in gif_frames)
    assert [centre_level(frame) for frame in gif_frames] == levels
    with Image.open(out) as gif:
        assert gif.info.get("duration") == 250
        assert gif.info.get("loop") == 0
    assert not list(out.parent.glob(".*.tmp"))  # the temporary file was moved into place


def test_letterbox_and_caption(tmp_path: Path) -> None:
    # A wide image on a square canvas: black bars above and below, the image in the middle, a caption drawn.
    wide = grey_image(tmp_path / "wide.png", 128, size=(200, 50))
    out = tmp_path / "one.gif"
    info = build_timelapse([Frame(5, 1, wide, "NAVCAM")], out, size=(100, 100))
    assert info.frame_count == 1
    (frame,) = read_frames(out)
    assert frame.getpixel((50, 5)) == 0  # the bar above
    assert frame.getpixel((50, 50)) == 128  # the image, 100 x 25 in the middle
    bottom_left = frame.crop((0, 60, 100, 100))
    assert bottom_left.getextrema()[1] > 200  # white (antialiased) caption text in the bottom bar
    assert caption(Frame(5, 1, wide, "NAVCAM")) == "Sol 5 · NAVCAM"
    assert caption(Frame(5, 1, wide, "")) == "Sol 5"


def test_colour_images_are_kept_in_colour(tmp_path: Path) -> None:
    red = tmp_path / "red.png"
    Image.new("RGB", (40, 40), (200, 30, 30)).save(red)
    grey = grey_image(tmp_path / "grey.png", 90)
    out = tmp_path / "mixed.gif"
    build_timelapse([Frame(2, 1, grey, "NAVCAM"), Frame(1, 1, red, "MAST")], out, size=(64, 64))
    with Image.open(out) as gif:
        colours = [frame.convert("RGB").getpixel((32, 20)) for frame in ImageSequence.Iterator(gif)]
    r, g, b = colours[0]
    assert r > 150 and g < 80 and b < 80  # sol 1, the red photo, first
    assert colours[1][0] == colours[1][1] == colours[1][2]  # then the grey one, still grey


def test_unreadable_files_are_skipped_with_a_reason(tmp_path: Path) -> None:
    frames, levels = five_frames(tmp_path)
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"<html>404 Not Found</html>")
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes((tmp_path / "1000-7.png").read_bytes()[:60])
    missing = tmp_path / "missing.jpg"
    extra = [Frame(1000, 8, broken, "FHAZ"), Frame(999, 1, missing, "FHAZ"), Frame(1002, 5, truncated, "FHAZ")]
    info = build_timelapse(frames + extra, tmp_path / "t.gif", size=SIZE)
    assert info.frame_count == 5
    assert [centre_level(frame) for frame in read_frames(info.path)] == levels
    reasons = {frame.photo_id: reason for frame, reason in info.skipped}
    assert [frame.photo_id for frame, _reason in info.skipped] == [1, 8, 5]  # in frame order
    assert reasons[8] == f"{broken} is not an image Pillow can read"
    assert reasons[1] == f"{missing} does not exist"
    assert reasons[5].startswith(f"{truncated} ")


def test_no_frames_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no frames to put in the timelapse: 0 given, 0 unreadable; fetch the"):
        build_timelapse([], tmp_path / "empty.gif")
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not an image")
    with pytest.raises(ValueError, match=r"1 given, 1 unreadable \(.*broken.jpg is not an image Pillow can read\)"):
        build_timelapse([Frame(1, 1, broken, "FHAZ")], tmp_path / "none.gif")
    assert not (tmp_path / "none.gif").exists()


@pytest.mark.parametrize(
    ("size", "frame_ms", "message"),
    [((8, 8), 400, "too small"), ((64, 64), 0, "frame_ms must be a positive number")],
)
def test_bad_arguments(tmp_path: Path, size: tuple[int, int], frame_ms: int, message: str) -> None:
    frames, _levels = five_frames(tmp_path)
    with pytest.raises(ValueError, match=message):
        build_timelapse(frames, tmp_path / "x.gif", size=size, frame_ms=frame_ms)
