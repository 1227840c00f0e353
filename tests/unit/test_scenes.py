"""Shot detection against frames whose cuts are known: the sample video (decoded as the pipeline decodes
it) and title cards built in memory."""

from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from mediasift.extraction.layers.scenes import Shot, detect_shots, scene_row
from mediasift.extraction.media.video import iter_frames
from mediasift.local.samples import SHOT_CHANGE_AT, TRUTH, VIDEO_SECONDS, _jitter, title_card, write_video

FPS = 4.0
BLUE, ORANGE = (20, 50, 120), (150, 80, 20)


def clip(cards: list[tuple[float, Image.Image]], seconds: float, moving_bar: bool = True
         ) -> Iterator[tuple[float, Image.Image]]:
    """Frames at FPS as iter_frames yields them; `cards` is [(from second, card)], in order."""
    for i in range(int(seconds * FPS)):
        t = i / FPS
        card = [c for start, c in cards if start <= t][-1]
        yield t, _jitter(card, i) if moving_bar else card


@pytest.fixture(scope="module")
def sample_shots(tmp_path_factory) -> list[Shot]:
    path: Path = tmp_path_factory.mktemp("scenes") / "harbour_report.mp4"
    write_video(path)
    return list(detect_shots(iter_frames(path, fps=FPS)))


def test_sample_video_gives_two_shots_split_at_its_hard_cut(sample_shots):
    truth = TRUTH["harbour_report.mp4"]["shots"]

    assert len(sample_shots) == len(truth) == 2
    first, second = sample_shots
    assert first.t_start == 0.0
    assert abs(second.t_start - SHOT_CHANGE_AT) <= 0.25
    assert first.t_end == second.t_start
    assert abs(second.t_end - VIDEO_SECONDS) <= 0.25


def test_sample_video_keyframes_lie_within_their_shot_and_show_its_card(sample_shots):
    for shot, background in zip(sample_shots, (BLUE, ORANGE), strict=True):
        assert shot.t_start <= shot.keyframe_t < shot.t_end
        pixel = shot.keyframe.convert("RGB").getpixel((5, 5))
        assert all(abs(p - b) <= 8 for p, b in zip(pixel, background, strict=True)), (shot.number, pixel)


def test_frames_that_differ_only_by_a_moving_bar_stay_one_shot():
    frames = clip([(0.0, title_card("HARBOUR REPORT", BLUE))], seconds=20)

    shots = list(detect_shots(frames))

    assert [(s.t_start, s.t_end) for s in shots] == [(0.0, 20.0)]


def test_cut_between_cards_starts_the_new_shot_on_its_first_frame():
    frames = clip([(0.0, title_card("HARBOUR REPORT", BLUE)), (10.0, title_card("PELICAN BAY", ORANGE))],
                  seconds=20)

    shots = list(detect_shots(frames))

    assert [(s.number, s.t_start, s.t_end) for s in shots] == [(1, 0.0, 10.0), (2, 10.0, 20.0)]


def test_cut_between_equally_bright_shots_of_different_colour_is_found():
    grey, red = (130, 130, 130), (200, 100, 100)
    frames = clip([(0.0, title_card("", grey)), (6.0, title_card("", red))], seconds=12)

    shots = list(detect_shots(frames))

    assert [s.t_start for s in shots] == [0.0, 6.0]


def test_long_static_shot_is_split_every_30_seconds_with_a_keyframe_in_each_part():
    frames = clip([(0.0, title_card("STILL", BLUE))], seconds=70, moving_bar=False)

    shots = list(detect_shots(frames, max_shot_seconds=30.0))

    assert [(s.t_start, s.t_end) for s in shots] == [(0.0, 30.0), (30.0, 60.0), (60.0, 70.0)]
    for shot in shots:
        assert shot.t_start <= shot.keyframe_t < shot.t_end
        assert abs(shot.keyframe_t - (shot.t_start + shot.t_end) / 2) <= 1.0


def test_a_shot_is_yielded_once_the_next_one_starts_not_at_the_end_of_the_video():
    pulled: list[float] = []

    def counted(frames):
        for t, image in frames:
            pulled.append(t)
            yield t, image

    frames = clip([(0.0, title_card("HARBOUR REPORT", BLUE)), (10.0, title_card("PELICAN BAY", ORANGE))],
                  seconds=20)

    first = next(detect_shots(counted(frames)))

    assert (first.t_start, first.t_end) == (0.0, 10.0)
    assert pulled[-1] == 10.0


def test_scene_row_places_the_shot_in_time_with_its_on_screen_text():
    (shot,) = detect_shots(clip([(0.0, title_card("PELICAN BAY", ORANGE))], seconds=5))

    row = scene_row(shot, ["PELICAN BAY"], faces=[])

    assert (row.layer, row.kind, row.t_start, row.t_end) == ("scenes", "shot", 0.0, 5.0)
    assert "PELICAN BAY" in row.text and row.extra["ocr_text"] == "PELICAN BAY"
    assert row.extra["shot"] == 1 and 0.0 <= row.extra["keyframe_t"] < 5.0
