"""Colours, fonts and legends shared by the drawing functions of every task."""
from typing import List, Optional, Sequence, Tuple

import numpy as np
from PIL import Image, ImageDraw, ImageFont

Colour = Tuple[int, int, int]


def font(size: int) -> ImageFont.ImageFont:
    """Pillow's default font at `size` pixels (the fixed bitmap font where Pillow has no FreeType)."""
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError):  # Pillow without FreeType: the fixed bitmap font
        return ImageFont.load_default()


def random_palette(num_colours: int, seed: int = 42) -> List[List[int]]:
    """`num_colours` RGB colours, the same for the same seed (classes that ship no palette)."""
    rng = np.random.default_rng(seed)
    return [list(map(int, colour)) for colour in rng.integers(0, 256, size=(num_colours, 3))]


def confidence_colour(score: float) -> Colour:
    """Red (0) -> yellow -> green (1), in BGR (OpenCV's order)."""
    s = float(np.clip(score, 0, 1))
    return (0, int(255 * min(1, 2 * s)), int(255 * min(1, 2 * (1 - s))))


def legend(entries: Sequence[Tuple[Optional[Colour], str]], font_size: int, min_height: int = 0) -> Image.Image:
    """A white RGB panel listing `entries`, one row each: a colour swatch (none for `None`) and the text.

    Args:
        entries: (RGB colour or None, text) per row, top to bottom.
        font_size: text height in pixels; rows are 8 pixels taller, swatches as large as the text.
        min_height: the panel is at least this high (to sit beside a picture).
    """
    text_font, row, swatch, margin = font(font_size), font_size + 8, font_size, 8
    measure = ImageDraw.Draw(Image.new('RGB', (1, 1)))
    text_width = max([int(measure.textlength(text, font=text_font)) for _, text in entries] or [0])
    panel = Image.new('RGB', (swatch + text_width + 3 * margin, max(min_height, row * len(entries) + margin)),
                      (255, 255, 255))
    draw = ImageDraw.Draw(panel)
    for position, (colour, text) in enumerate(entries):
        top = margin + position * row
        if colour is not None:
            draw.rectangle([margin, top, margin + swatch, top + swatch], fill=tuple(int(c) for c in colour),
                           outline=(0, 0, 0))
        draw.text((2 * margin + swatch, top), text, fill=(0, 0, 0), font=text_font)
    return panel


__all__ = ['Colour', 'confidence_colour', 'font', 'legend', 'random_palette']
