"""Video and folder inference (`apis.annotate`, `mae-transfer infer`): output frames, size and rate, JSON lines that
match the single-image API on the same frame, a truncated video, an unreadable image in a folder, pose boxes from
a detector (random weights: plumbing, not quality)."""
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from mae_transfer.apis import init_model, task_module
from mae_transfer.apis.annotate import annotate
from mae_transfer.apis.media import JsonLinesWriter, MediaError, VideoReader, VideoWriter
from mae_transfer.utils.images import UnreadableImageError
from mae_transfer.tools.infer import main as infer_main
from mae_transfer.utils.configs import CONFIG_ROOT

TINY = {
    'det': 'det/mask-rcnn_vit-tiny-p16_1xb4-lsj-600i_synthetic-128x128.py',
    'seg': 'seg/upernet_vit-tiny-p16_1xb8-200i_synthetic-128x128.py',
    'pose': 'pose/heatmap_vit-tiny-p16_1xb32-300i_synthetic-128x96.py',
    'cls': 'cls/ft_vit-tiny-p16_1xb32-600i_synthetic-64x64.py',
}
FRAMES, FPS, SIZE = 4, 6.0, (96, 80)  # (width, height)


def _frames(count: int = FRAMES):
    for index in range(count):  # a square moving right over a gradient
        frame = np.tile(np.linspace(30, 200, SIZE[0], dtype=np.uint8)[None, :, None], (SIZE[1], 1, 3))
        cv2.rectangle(frame, (8 + 8 * index, 16), (40 + 8 * index, 64), (0, 180, 255), -1)
        yield frame


@pytest.fixture(scope='module')
def clip(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp('video') / 'clip.mp4'
    with VideoWriter(path, FPS, SIZE) as writer:
        for frame in _frames():
            writer.write(frame)
    return path


def _model(task: str):
    torch.manual_seed(0)
    return init_model(CONFIG_ROOT / TINY[task])


def _single_image_record(task: str, model, frame: np.ndarray) -> dict:
    """What the single-image API says about a frame, through the same JSON writer."""
    module = task_module(model.cfg)
    result = module.estimate(model, frame) if task == 'pose' else module.inference(model, [frame])[0]
    return module.to_json(model, result)


def _assert_same_record(expected, actual, path='') -> None:
    if isinstance(expected, dict):
        assert set(expected) == set(actual), path
        for key in expected:
            _assert_same_record(expected[key], actual[key], f'{path}.{key}')
    elif isinstance(expected, (list, tuple)):
        assert len(expected) == len(actual), path
        for index, (a, b) in enumerate(zip(expected, actual)):
            _assert_same_record(a, b, f'{path}[{index}]')
    elif isinstance(expected, float):
        assert abs(expected - actual) <= 1e-3 * max(1.0, abs(expected)), (path, expected, actual)
    else:
        assert expected == actual, path


def _round_trip(record: dict, tmp_path: Path) -> dict:
    with JsonLinesWriter(tmp_path / 'one.jsonl') as writer:
        writer.write(record)
    return json.loads((tmp_path / 'one.jsonl').read_text())


@pytest.mark.parametrize('task', ['det', 'seg', 'pose'])
def test_video_keeps_rate_size_and_frames_and_json_lines_match_the_image_api(task, clip, tmp_path):
    model = _model(task)
    written = annotate(model, [clip], tmp_path / 'out', json_lines=True, score_thr=0.5)  # drawing few: quicker
    assert written == [tmp_path / 'out' / 'clip.mp4']
    with VideoReader(written[0]) as video:
        assert (video.info.width, video.info.height, video.info.fps) == (*SIZE, FPS)
        assert sum(1 for _ in video) == FRAMES
    lines = [json.loads(line) for line in (tmp_path / 'out' / 'clip.jsonl').read_text().splitlines()]
    assert [line['frame'] for line in lines] == list(range(FRAMES))
    assert lines[3]['time_s'] == pytest.approx(3 / FPS, abs=1e-4)
    with VideoReader(clip) as video:
        frame = [frame for frame in video][3]  # the decoded frame the model saw
    expected = _round_trip(dict(frame=3, time_s=round(3 / FPS, 4), **_single_image_record(task, model, frame)),
                           tmp_path)
    _assert_same_record(expected, lines[3])


def test_truncated_video_keeps_the_frames_decoded_and_says_how_many(tmp_path):
    source = tmp_path / 'long.avi'
    with VideoWriter(source, FPS, SIZE) as writer:
        for _ in range(3):
            for frame in _frames():
                writer.write(frame)
    data = source.read_bytes()
    source.write_bytes(data[:int(len(data) * 0.6)])  # cut inside the frames
    with pytest.raises(MediaError, match=r'ended after \d+ of 12 frames.*truncated.*annotated frames written'):
        annotate(_model('pose'), [source], tmp_path / 'out')
    with VideoReader(tmp_path / 'out' / 'long.mp4') as video:
        assert 0 < sum(1 for _ in video) < 12  # what was decoded is annotated and kept


def test_folder_skips_an_unreadable_image_and_a_named_one_stops(tmp_path, log_records):
    folder = tmp_path / 'frames'
    folder.mkdir()
    for index, frame in enumerate(_frames()):
        if index < 3:
            cv2.imwrite(str(folder / f'frame_{index:03d}.png'), frame)
    (folder / 'frame_001b.jpg').write_bytes(b'')  # empty file, sorted between good ones
    model = _model('seg')
    written = annotate(model, [folder], tmp_path / 'out', json_lines=True)
    assert [p.name for p in written] == ['frame_000.png', 'frame_001.png', 'frame_002.png']
    lines = (tmp_path / 'out' / 'frames.jsonl').read_text().splitlines()
    assert [json.loads(line)['file'] for line in lines] == ['frame_000.png', 'frame_001.png', 'frame_002.png']
    assert f'skipped unreadable image {folder / "frame_001b.jpg"}: the file is empty (0 bytes)' in log_records
    with pytest.raises(UnreadableImageError, match='^cannot read image .*frame_001b.jpg: the file is empty'):
        annotate(model, [folder / 'frame_001b.jpg'], tmp_path / 'named')


def test_infer_command_pose_video_with_person_boxes_from_a_detector(tmp_path):
    clip = tmp_path / 'short.mp4'  # the detector is the slow part: 3 frames
    with VideoWriter(clip, FPS, SIZE) as writer:
        for frame in _frames(3):
            writer.write(frame)
    checkpoints = {}
    for task in ('det', 'pose'):
        model = _model(task)
        checkpoints[task] = tmp_path / f'{task}.pth'
        meta = dict(dataset_meta=dict(classes=['person', 'bicycle'])) if task == 'det' else {}
        torch.save(dict(state_dict=model.state_dict(), meta=meta), checkpoints[task])
    pose_config, det_config = (str(CONFIG_ROOT / TINY[task]) for task in ('pose', 'det'))
    infer_main([pose_config, str(checkpoints['pose']), str(clip), '--out-dir', str(tmp_path / 'out'),
                '--json-lines', '--det-config', det_config, '--det-checkpoint', str(checkpoints['det']),
                '--bbox-thr', '0.0'])
    with VideoReader(tmp_path / 'out' / 'short.mp4') as video:
        assert sum(1 for _ in video) == 3
    lines = [json.loads(line) for line in (tmp_path / 'out' / 'short.jsonl').read_text().splitlines()]
    assert len(lines) == 3 and any(line['persons'] for line in lines)
    # every person comes from a detector box, not from the whole frame
    assert all(person['bbox'] != [0, 0, SIZE[0], SIZE[1]] for line in lines for person in line['persons'])
    with pytest.raises(SystemExit, match="has no class 'rider'; its classes: person, bicycle"):
        infer_main([pose_config, str(checkpoints['pose']), str(clip), '--out-dir', str(tmp_path / 'x'),
                    '--det-config', det_config, '--det-checkpoint', str(checkpoints['det']), '--det-class', 'rider'])


def test_video_is_refused_for_classification_with_the_tasks_that_take_it(clip, tmp_path):
    with pytest.raises(ValueError, match='video inference covers det, seg, pose'):
        annotate(_model('cls'), [clip], tmp_path)
