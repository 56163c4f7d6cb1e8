"""Drawing apart from inference: the shared legend and colours, and the classification panel."""
import numpy as np
from PIL import Image

from mae_transfer.visualization import confidence_colour, draw_classification, legend, random_palette


def test_legend_rows_swatches_and_minimum_height():
    panel = legend([((255, 0, 0), 'red thing'), (None, 'no colour')], font_size=12, min_height=100)
    pixels = np.asarray(panel)
    assert panel.height == 100 and panel.width > 12 + 3 * 8
    assert ((pixels == (255, 0, 0)).all(-1)).sum() > 50  # the first row's swatch
    assert legend([], font_size=12).height == 8  # nothing to list: a margin only


def test_colours_are_shared_and_deterministic():
    assert random_palette(5) == random_palette(5) and len(random_palette(5)) == 5
    assert confidence_colour(0.0) == (0, 0, 255) and confidence_colour(1.0) == (0, 255, 0)  # BGR red -> green


def test_classification_panel_lists_each_class_with_a_bar():
    picture = draw_classification(Image.new('RGB', (40, 30), (0, 0, 0)), [('cat', 0.9), ('dog', 0.1)])
    assert picture.size == (260, 192 + 2 * 18 + 8)  # longer side enlarged to 256, then one 18-pixel row per class
    pixels = np.asarray(picture)
    assert ((pixels == (220, 80, 40)).all(-1)).any() and ((pixels == (70, 130, 180)).all(-1)).any()
