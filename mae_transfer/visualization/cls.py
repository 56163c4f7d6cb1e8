"""Classification pictures: the image above its top classes with score bars."""
from typing import Sequence, Tuple

from PIL import Image, ImageDraw

TOP_BAR, OTHER_BARS = (220, 80, 40), (70, 130, 180)  # RGB


def draw_classification(image: Image.Image, prediction: Sequence[Tuple[str, float]],
                        max_side: int = 384) -> Image.Image:
    """The image (longer side at most `max_side`) above a panel listing the classes with score bars.

    Args:
        image: RGB picture.
        prediction: (class name, probability) pairs, best first.
        max_side: longest side of the drawn image (small images are enlarged to 256).
    """
    scale = min(max_side / max(image.size), max(1.0, 256 / max(image.size)))  # small images enlarged to 256
    image = image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))), Image.BICUBIC)
    width = max(image.width, 260)
    line = 18
    canvas = Image.new('RGB', (width, image.height + line * len(prediction) + 8), 'white')
    canvas.paste(image, ((width - image.width) // 2, 0))
    draw = ImageDraw.Draw(canvas)
    bar_left, bar_width = width // 2, width // 2 - 8
    for rank, (name, score) in enumerate(prediction):
        top = image.height + 4 + rank * line
        draw.rectangle([bar_left, top + 3, bar_left + max(1, round(bar_width * score)), top + line - 3],
                       fill=OTHER_BARS if rank else TOP_BAR)
        draw.text((4, top + 2), f'{rank + 1}. {name[:28]}  {100 * score:.1f}%', fill='black')
    return canvas


__all__ = ['draw_classification']
