"""Video and image-folder I/O for `mae-transfer infer`: round trips through OpenCV's own codecs, and the broken files
users bring (cut recordings, foreign codecs, text named .mp4), all made here with cv2 and byte surgery."""
import json

import numpy as np
import pytest

from mae_transfer.apis.media import (IMAGE_SUFFIXES, JsonLinesWriter, MediaError, VideoInfo, VideoReader, VideoWriter,
                                     is_video, list_images, progress)

SIZE = (64, 48)  # (width, height)


def colour(index: int) -> np.ndarray:
    """A distinct flat BGR colour per frame: flat areas survive lossy codecs, so mean colours compare."""
    return np.array([(index * 20) % 256, (255 - index * 20) % 256, (index * 53) % 256], dtype=np.float64)


def write_video(path, frames: int, fps: float = 7.0):
    with VideoWriter(path, fps, SIZE) as writer:
        for index in range(frames):
            writer.write(np.broadcast_to(colour(index), (SIZE[1], SIZE[0], 3)).astype(np.uint8))
    assert writer.frames_written == frames
    return path


@pytest.mark.parametrize('name, codec', [('clip.mp4', 'mp4v'), ('clip.avi', 'MJPG')])
def test_round_trip(tmp_path, name, codec):
    path = write_video(tmp_path / 'out' / name, 12)  # the parent folder is created
    with VideoReader(path) as video:
        assert video.info == VideoInfo(fps=7.0, width=64, height=48, frame_count=12, codec=codec)
        frames = list(video)
    assert len(frames) == 12
    for index, frame in enumerate(frames):
        assert frame.shape == (48, 64, 3) and frame.dtype == np.uint8
        assert np.abs(frame.reshape(-1, 3).mean(0) - colour(index)).max() < 12  # lossy codec


def test_truncated_video_yields_what_it_decodes_then_says_so(tmp_path):
    path = write_video(tmp_path / 'full.avi', 20)
    data = path.read_bytes()
    cut = tmp_path / 'cut.avi'
    cut.write_bytes(data[:int(len(data) * 0.6)])  # the header is whole, the 'movi' chunk is cut
    frames = []
    with VideoReader(cut) as video:
        assert video.info.frame_count == 20  # what the AVI header declares
        with pytest.raises(MediaError) as error:
            for frame in video:
                frames.append(frame)
    assert 0 < len(frames) < 20
    assert 'truncated' in str(error.value) and f'after {len(frames)} of 20 frames' in str(error.value)
    assert np.abs(frames[0].reshape(-1, 3).mean(0) - colour(0)).max() < 12


def test_avi_cut_inside_its_header(tmp_path):
    data = write_video(tmp_path / 'full.avi', 20).read_bytes()
    cut = tmp_path / 'cut.avi'
    cut.write_bytes(data[:data.find(b'movi') // 2])  # OpenCV does not open this one
    with pytest.raises(MediaError, match=f'cannot open .*truncated \\({data.find(b"movi") // 2} of the {len(data)} '):
        VideoReader(cut)


@pytest.mark.parametrize('where', ['before', 'inside'])
def test_mp4_without_its_moov_index(tmp_path, where):
    data = write_video(tmp_path / 'full.mp4', 12).read_bytes()
    moov = data.find(b'moov') - 4  # OpenCV's mp4v writer puts the index last, after the frames
    assert moov > data.find(b'mdat') > 0
    cut = tmp_path / 'cut.mp4'
    cut.write_bytes(data[:moov] if where == 'before' else data[:moov + 40])
    with pytest.raises(MediaError, match="'moov'.*truncated") as error:
        VideoReader(cut)
    assert str(cut) in str(error.value)


def test_unsupported_codec_is_named(tmp_path):
    data = bytearray(write_video(tmp_path / 'full.avi', 6).read_bytes())
    strh = data.find(b'strh')  # 'strh', size, fccType 'vids', fccHandler
    assert data[strh + 8:strh + 16] == b'vidsMJPG'
    data[strh + 12:strh + 16] = b'ZZZZ'
    strf = data.find(b'strf')  # 'strf', size, BITMAPINFOHEADER: size, width, height, planes, bit count, compression
    assert data[strf + 24:strf + 28] == b'MJPG'
    data[strf + 24:strf + 28] = b'ZZZZ'
    path = tmp_path / 'zzzz.avi'
    path.write_bytes(bytes(data))
    with pytest.raises(MediaError, match="codec 'ZZZZ' is not supported"):
        VideoReader(path)


def test_codec_that_opens_but_does_not_decode(tmp_path):
    """An AVI that says VP9 but holds JPEG frames: OpenCV opens it, then decodes no frame."""
    data = bytearray(write_video(tmp_path / 'full.avi', 6).read_bytes())
    for start in (data.find(b'strh') + 12, data.find(b'strf') + 24):
        data[start:start + 4] = b'VP90'
    path = tmp_path / 'vp90.avi'
    path.write_bytes(bytes(data))
    with pytest.raises(MediaError, match="cannot decode video .*codec 'VP90' is not supported"):
        VideoReader(path)


def test_not_a_video_and_missing_file(tmp_path):
    text = tmp_path / 'notes.mp4'
    text.write_text('not a video\n')
    with pytest.raises(MediaError, match='not a video'):
        VideoReader(text)
    empty = tmp_path / 'empty.mp4'
    empty.write_bytes(b'')
    with pytest.raises(MediaError, match='empty'):
        VideoReader(empty)
    with pytest.raises(FileNotFoundError, match='missing.mp4'):
        VideoReader(tmp_path / 'missing.mp4')


def test_is_video_and_list_images(tmp_path):
    assert is_video('a/B.MP4') and is_video('x.webm') and not is_video('x.jpg') and not is_video('folder')
    for name in ('b.PNG', 'a.jpg', 'c.Jpeg', 'notes.txt', '.hidden.jpg'):
        (tmp_path / name).write_bytes(b'')
    (tmp_path / 'sub').mkdir()
    (tmp_path / 'sub' / 'd.png').write_bytes(b'')
    assert [p.name for p in list_images(tmp_path)] == ['a.jpg', 'b.PNG', 'c.Jpeg']
    (tmp_path / 'sub' / 'notes.txt').write_bytes(b'')
    (tmp_path / 'sub' / 'd.png').unlink()
    with pytest.raises(MediaError, match=f'holds no image.*{IMAGE_SUFFIXES[0]}'):
        list_images(tmp_path / 'sub')
    with pytest.raises(FileNotFoundError):
        list_images(tmp_path / 'nowhere')


def test_writer_checks_frames_and_finishes_on_error(tmp_path):
    path = tmp_path / 'partial.mp4'
    with pytest.raises(ValueError, match=r'uint8 \[40, 30, 3\].*\[48, 64, 3\]'):
        with VideoWriter(path, 7.0, SIZE) as writer:
            for index in range(5):
                writer.write(np.full((48, 64, 3), index * 40, np.uint8))
            writer.write(np.zeros((40, 30, 3), np.uint8))
    with VideoReader(path) as video:  # released on the exception: playable as far as it was written
        assert video.info.frame_count == 5 and len(list(video)) == 5
    (tmp_path / 'folder.mp4').mkdir()
    with pytest.raises(MediaError, match='folder.mp4'):
        VideoWriter(tmp_path / 'folder.mp4', 7.0, SIZE)


def test_json_lines(tmp_path):
    path = tmp_path / 'out' / 'records.jsonl'
    with JsonLinesWriter(path) as records:
        records.write({'frame': np.int64(0), 'score': np.float32(0.123456), 'boxes': np.arange(4).reshape(2, 2),
                       'flag': np.bool_(True), 'bad': float('nan')})
        records.write({'frame': 1, 'labels': ('cat', 'dog')})
        assert len(path.read_text().splitlines()) == 2  # flushed line by line
    lines = path.read_text().splitlines()
    assert [json.loads(line) for line in lines] == [
        {'frame': 0, 'score': 0.1235, 'boxes': [[0, 1], [2, 3]], 'flag': True, 'bad': None},
        {'frame': 1, 'labels': ['cat', 'dog']}]
    assert ' ' not in lines[0]


def test_progress_can_be_turned_off(monkeypatch, capsys):
    monkeypatch.setenv('MAE_TRANSFER_NO_PROGRESS', '1')
    assert list(progress(iter(range(5)), 5, 'frames')) == [0, 1, 2, 3, 4]
    assert capsys.readouterr().err == ''
    monkeypatch.setenv('MAE_TRANSFER_NO_PROGRESS', '0')
    assert list(progress(range(3), None, 'frames')) == [0, 1, 2]
    assert 'frame' in capsys.readouterr().err
