"""Pose pictures: skeletons with left / right limbs apart, keypoints coloured by confidence, person boxes."""
from typing import Dict, Sequence, Tuple

import cv2
import numpy as np

from ..codecs.coco_keypoints import COCO_FLIP_INDICES, COCO_SKELETON
from .palette import confidence_colour

LEFT, RIGHT, CENTRE = (0, 140, 255), (255, 120, 0), (60, 200, 60)  # BGR limb colours


def _side(joint: int, flip_indices: Sequence[int]) -> str:
    """'C' for unpaired joints, else 'L' / 'R' (COCO order: left joints have odd indices)."""
    if flip_indices[joint] == joint:
        return 'C'
    return 'L' if joint % 2 == 1 else 'R'


def draw_pose(image: np.ndarray, persons: Sequence[Dict], score_thr: float = 0.3,
              skeleton: Sequence[Tuple[int, int]] = COCO_SKELETON, flip_indices: Sequence[int] = COCO_FLIP_INDICES,
              show_scores: bool = True) -> np.ndarray:
    """Skeletons on a copy of a BGR image: limbs (left orange, right blue) between keypoints scoring >= score_thr,
    keypoints coloured by confidence (red 0 -> green 1) with the value written next to them, boxes with the
    person score.

    Args:
        image: BGR uint8 [H, W, 3].
        persons: dicts with keypoints [K, 2], keypoint_scores [K] and optionally bbox [4] (x1, y1, x2, y2), score.
        score_thr: keypoints scoring below it are not drawn.
        skeleton: pairs of keypoint indices joined by a limb.
        flip_indices: left/right partner of each keypoint (itself when unpaired).
        show_scores: write each keypoint's score beside it.
    """
    canvas = image.copy()
    side = max(image.shape[:2])
    thickness = max(1, side // 250)
    radius = max(2, side // 150)
    font = max(0.3, side / 1600)
    for person in persons:
        keypoints, scores = person['keypoints'], person['keypoint_scores']
        if 'bbox' in person:
            x1, y1, x2, y2 = (int(round(v)) for v in person['bbox'])
            cv2.rectangle(canvas, (x1, y1), (x2, y2), (200, 200, 200), 1)
            cv2.putText(canvas, f"{person.get('score', 0):.2f}", (x1 + 2, y1 + int(14 * font / 0.4)),
                        cv2.FONT_HERSHEY_SIMPLEX, font, (255, 255, 255), 1, cv2.LINE_AA)
        for a, b in skeleton:
            if scores[a] < score_thr or scores[b] < score_thr:
                continue
            sides = {_side(a, flip_indices), _side(b, flip_indices)}
            colour = LEFT if sides == {'L'} else RIGHT if sides == {'R'} else CENTRE
            cv2.line(canvas, tuple(int(round(v)) for v in keypoints[a]), tuple(int(round(v)) for v in keypoints[b]),
                     colour, thickness, cv2.LINE_AA)
        for (x, y), score in zip(keypoints, scores):
            if score < score_thr:
                continue
            centre = (int(round(x)), int(round(y)))
            cv2.circle(canvas, centre, radius, confidence_colour(score), -1, cv2.LINE_AA)
            if show_scores:
                cv2.putText(canvas, f'{score:.2f}', (centre[0] + radius + 1, centre[1]), cv2.FONT_HERSHEY_SIMPLEX,
                            font * 0.8, confidence_colour(score), 1, cv2.LINE_AA)
    return canvas


__all__ = ['draw_pose']
