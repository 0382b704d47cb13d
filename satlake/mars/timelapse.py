"""A timelapse of rover photos: an animated GIF, one frame per photo in (sol, photo id) order.

The Mars source lands the raw images it fetched; this turns a camera's photos over a span of sols into something a
person can look at in the UI or a browser. Pillow writes the GIF, so there is no ffmpeg to install. Each photo is
letterboxed onto a fixed-size black canvas (the cameras' images differ in size and aspect), keeps its greyscale or
colour, and gets a small caption "Sol N · CAMERA" in PIL's default font. A file that cannot be read as an image
is skipped and reported, so one bad download does not cost the whole timelapse.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont, ImageOps, UnidentifiedImageError, features

MEDIA_TYPE_GIF = "image/gif"
_GREY_MODES = frozenset({"1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"})
_CAPTION_MARGIN = 4


@dataclass(frozen=True, slots=True)
class Frame:
    """One photo to show: its sol and id (the frame order), the image file, and the caption's label (camera)."""

    sol: int
    photo_id: int
    path: Path
    label: str


@dataclass(frozen=True, slots=True)
class TimelapseInfo:
    """What was written: the GIF's path, frame count, the sols shown (ascending, distinct), size and digest, and
    the frames that were skipped with the reason."""

    path: Path
    frame_count: int
    sols: list[int]
    size_bytes: int
    sha256: str
    skipped: list[tuple[Frame, str]] = field(default_factory=list)
    media_type: str = MEDIA_TYPE_GIF


def caption(frame: Frame) -> str:
    return f"Sol {frame.sol} · {frame.label}" if frame.label else f"Sol {frame.sol}"


def _load(frame: Frame) -> Image.Image:
    """The frame's image, EXIF orientation applied, as "L" (greyscale sources) or "RGB" (everything else)."""
    with Image.open(frame.path) as opened:
        opened.load()
        image = ImageOps.exif_transpose(opened)
    if image.mode in _GREY_MODES:
        if image.mode.startswith("I") or image.mode == "F":
            # 16-bit / float greyscale: stretch the value range onto 0..255 rather than clipping it.
            image = image.convert("F")
            low, high = image.getextrema()
            scale = 255.0 / (high - low) if high > low else 0.0
            return image.point(lambda value: value * scale - low * scale).convert("L")
        return image.convert("L")
    if image.mode in ("RGBA", "PA", "P"):
        return image.convert("RGBA").convert("RGB")
    return image.convert("RGB")


@lru_cache(maxsize=8)
def _font(height: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """PIL's default font, scaled to the canvas when Pillow has FreeType (else its fixed-size bitmap font)."""
    if features.check("freetype2"):
        return ImageFont.load_default(size=max(10, height // 32))
    return ImageFont.load_default()


def _render(image: Image.Image, text: str, size: tuple[int, int], mode: str) -> Image.Image:
    canvas = Image.new(mode, size, 0)
    fitted = ImageOps.contain(image.convert(mode), size, method=Image.Resampling.LANCZOS)
    canvas.paste(fitted, ((size[0] - fitted.width) // 2, (size[1] - fitted.height) // 2))
    draw = ImageDraw.Draw(canvas)
    font = _font(min(size))
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
    x, y = _CAPTION_MARGIN, size[1] - (bottom - top) - 3 * _CAPTION_MARGIN
    draw.rectangle(
        (x - 2, y - 2, x + right - left + 2 * _CAPTION_MARGIN, y + bottom - top + 2 * _CAPTION_MARGIN), fill=0
    )
    white = 255 if mode == "L" else (255, 255, 255)
    draw.text((x + _CAPTION_MARGIN - left, y + _CAPTION_MARGIN - top), text, fill=white, font=font)
    return canvas


def build_timelapse(
    frames: Sequence[Frame], out: Path, *, size: tuple[int, int] = (512, 512), frame_ms: int = 400
) -> TimelapseInfo:
    """Write an animated GIF of ``frames`` (sorted by sol, then photo id) to ``out`` and describe it.

    Frames whose file cannot be read as an image are skipped (``TimelapseInfo.skipped``); with nothing left to
    show, ValueError. The GIF is written to a temporary file beside ``out`` and moved into place, so a reader never
    sees half a GIF.
    """
    width, height = size
    if width < 16 or height < 16:
        raise ValueError(f"timelapse size {size} is too small; pass at least (16, 16) pixels")
    if frame_ms <= 0:
        raise ValueError(f"frame_ms must be a positive number of milliseconds, got {frame_ms}")
    loaded: list[tuple[Frame, Image.Image]] = []
    skipped: list[tuple[Frame, str]] = []
    for frame in sorted(frames, key=lambda frame: (frame.sol, frame.photo_id)):
        try:
            loaded.append((frame, _load(frame)))
        except FileNotFoundError:
            skipped.append((frame, f"{frame.path} does not exist"))
        except UnidentifiedImageError:
            skipped.append((frame, f"{frame.path} is not an image Pillow can read"))
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
            skipped.append((frame, f"{frame.path} could not be decoded: {type(exc).__name__}: {exc}"))
    if not loaded:
        detail = "; ".join(reason for _frame, reason in skipped[:3]) + (" ..." if len(skipped) > 3 else "")
        raise ValueError(
            f"no frames to put in the timelapse: {len(frames)} given, {len(skipped)} unreadable"
            + (f" ({detail})" if detail else "")
            + "; fetch the photos' images first or choose sols that have photos"
        )
    mode = "L" if all(image.mode == "L" for _frame, image in loaded) else "RGB"
    rendered = [_render(image, caption(frame), (width, height), mode) for frame, image in loaded]
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")
    os.close(handle)
    try:
        rendered[0].save(
            temporary,
            format="GIF",
            save_all=True,
            append_images=rendered[1:],
            duration=frame_ms,
            loop=0,
            disposal=1,
        )
        os.replace(temporary, out)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    data = out.read_bytes()
    with Image.open(out) as written:
        # Pillow merges consecutive identical frames, so count what the file holds, not what was rendered.
        frame_count = getattr(written, "n_frames", 1)
    return TimelapseInfo(
        path=out,
        frame_count=frame_count,
        sols=sorted({frame.sol for frame, _image in loaded}),
        size_bytes=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        skipped=skipped,
    )
