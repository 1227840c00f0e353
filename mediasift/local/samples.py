"""Sample media with known ground truth, for the demo and the tests.

Everything is generated here except the speech, a 13-second clip made once with espeak-ng and shipped
(35 KB) so no text-to-speech engine is needed. `TRUTH` says what each file holds and where: which
phrase is spoken when, which word is on screen in which shot, which phrase is on which PDF page.
"""

from __future__ import annotations

import shutil
from fractions import Fraction
from importlib.resources import files
from pathlib import Path

import av
import numpy as np
from fpdf import FPDF
from PIL import Image, ImageDraw, ImageFilter, ImageFont

SPEECH = files("mediasift") / "sample_media" / "speech.ogg"
VIDEO_SECONDS = 20
VIDEO_FPS = 10
SHOT_CHANGE_AT = 10.0
PHOTO_SHOT_SECONDS = 6.0

TRUTH = {
    "speech.ogg": {
        "phrases": [
            {"text": "good morning everyone welcome to the weekly update", "t_start": 0.5},
            {"text": "the harbour in Lisbon reopened on Tuesday", "t_start": 4.5},
            {"text": "Maria Santos will lead the new solar project", "t_start": 9.0},
        ],
        "entities": [{"text": "Lisbon", "label": "GPE", "t_start": 5.3}],
    },
    "harbour_report.mp4": {
        "shots": [
            {"t_start": 0.0, "t_end": SHOT_CHANGE_AT, "on_screen": "HARBOUR REPORT"},
            {"t_start": SHOT_CHANGE_AT, "t_end": float(VIDEO_SECONDS), "on_screen": "PELICAN BAY"},
        ],
        "phrases": [{"text": "the harbour in Lisbon reopened on Tuesday", "t_start": 4.5}],
    },
    "board_minutes.pdf": {
        "pages": {
            1: "Quarterly board minutes. Revenue grew in every region this quarter.",
            2: "The board met in Osaka with Kenji Watanabe to approve the wind turbine budget.",
        },
        "entities": [{"text": "Osaka", "label": "GPE", "page": 2}],
    },
    "scanned_invoice.pdf": {
        "pages": {1: "SCANNED RECORD", 2: "INVOICE 4471 TURBINE MAINTENANCE"},
    },
    "cat.png": {"photo": "chelsea", "tags_any": ["tiger cat", "Egyptian cat", "tabby"], "query": "cat"},
    "photo_shots.mp4": {
        "shots": [
            {"t_start": 0.0, "t_end": PHOTO_SHOT_SECONDS, "photo": "chelsea", "query": "tabby cat"},
            {"t_start": PHOTO_SHOT_SECONDS, "t_end": 2 * PHOTO_SHOT_SECONDS, "photo": "coffee", "query": "espresso"},
        ],
    },
    "photo_page.pdf": {
        "pages": {1: "Quarterly facilities report. A photograph follows on the next page."},
        "photo_page": 2, "photo": "rocket", "query": "missile",
    },
    "sunset.png": {"near_duplicate_of": None},
    "sunset_copy.jpg": {"near_duplicate_of": "sunset.png"},
    "forest.png": {"near_duplicate_of": None},
}


def font(size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.load_default(size=size)


def write_samples(folder: Path) -> dict:
    """Write every sample into `folder`; returns TRUTH."""
    folder.mkdir(parents=True, exist_ok=True)
    with SPEECH.open("rb") as source, open(folder / "speech.ogg", "wb") as target:
        shutil.copyfileobj(source, target)
    write_video(folder / "harbour_report.mp4")
    write_text_pdf(folder / "board_minutes.pdf", TRUTH["board_minutes.pdf"]["pages"])
    write_scanned_pdf(folder / "scanned_invoice.pdf", TRUTH["scanned_invoice.pdf"]["pages"])
    sunset = scene_image((255, 140, 60), (60, 20, 90), sun=True)
    sunset.save(folder / "sunset.png")
    near = sunset.resize((600, 400)).filter(ImageFilter.GaussianBlur(0.6))
    near.save(folder / "sunset_copy.jpg", quality=80)
    scene_image((20, 90, 40), (150, 210, 120), sun=False).save(folder / "forest.png")
    photo("chelsea").save(folder / "cat.png")
    write_photo_video(folder / "photo_shots.mp4", [s["photo"] for s in TRUTH["photo_shots.mp4"]["shots"]])
    write_photo_pdf(folder / "photo_page.pdf", TRUTH["photo_page.pdf"]["pages"][1], photo("rocket"))
    return TRUTH


def photo(name: str) -> Image.Image:
    """A real photograph that ships inside scikit-image's wheel (no download): chelsea (a tabby cat),
    coffee (an espresso), rocket, astronaut, motorcycle_left, camera (a man at a tripod camera)…"""
    import skimage

    (found,) = (Path(skimage.__file__).parent / "data").glob(f"{name}.*")
    with Image.open(found) as image:
        return image.convert("RGB")


def photo_variants(image: Image.Image) -> list[Image.Image]:
    """The photo and five mild variants (crops, a slight rotation, a resize, brighter): what a bucket of
    real shots of one subject looks like to the analyses, near duplicates each of the first."""
    w, h = image.size
    return [image, image.crop((w // 20, h // 20, w, h)), image.crop((0, 0, w * 9 // 10, h * 9 // 10)),
            image.rotate(3), image.resize((w * 4 // 5, h * 4 // 5)), image.point(lambda v: min(255, int(v * 1.1)))]


def write_photo_video(path: Path, photos: list[str]) -> None:
    """One shot per photo, PHOTO_SHOT_SECONDS each, hard cuts, no sound."""
    frames = [photo(name).resize((640, 420)) for name in photos]
    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=VIDEO_FPS)
        video.width, video.height, video.pix_fmt = 640, 420, "yuv420p"
        per_shot = int(PHOTO_SHOT_SECONDS * VIDEO_FPS)
        for i in range(per_shot * len(frames)):
            frame = av.VideoFrame.from_image(frames[i // per_shot])
            frame.pts, frame.time_base = i, Fraction(1, VIDEO_FPS)
            container.mux(video.encode(frame))
        container.mux(video.encode(None))


def write_photo_pdf(path: Path, first_page: str, picture: Image.Image) -> None:
    """A text page, then a page that is one photograph."""
    pdf = FPDF()
    pdf.set_font("helvetica", size=14)
    pdf.add_page()
    pdf.multi_cell(0, 10, first_page)
    pdf.add_page()
    pdf.image(picture, x=10, y=20, w=190)
    pdf.output(str(path))


def scene_image(top: tuple[int, int, int], bottom: tuple[int, int, int], sun: bool) -> Image.Image:
    width, height = 640, 427
    ramp = np.linspace(0, 1, height)[:, None, None]
    pixels = (np.array(top) * (1 - ramp) + np.array(bottom) * ramp).repeat(width, axis=1)
    image = Image.fromarray(pixels.astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(image)
    if sun:
        draw.ellipse((250, 180, 390, 320), fill=(255, 230, 120))
    else:
        for x in range(30, width, 70):
            draw.polygon([(x, 380), (x + 30, 200), (x + 60, 380)], fill=(10, 60, 20))
    return image


def title_card(text: str, background: tuple[int, int, int], size: tuple[int, int] = (640, 360)) -> Image.Image:
    image = Image.new("RGB", size, background)
    draw = ImageDraw.Draw(image)
    draw.text((size[0] // 2, size[1] // 2), text, fill=(255, 255, 255), font=font(56), anchor="mm")
    return image


def write_video(path: Path) -> None:
    """Two shots (a hard cut at SHOT_CHANGE_AT) with on-screen titles, and the speech as soundtrack."""
    shots = TRUTH["harbour_report.mp4"]["shots"]
    cards = [title_card(shots[0]["on_screen"], (20, 50, 120)), title_card(shots[1]["on_screen"], (150, 80, 20))]
    audio = _decode_speech()
    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=VIDEO_FPS)
        video.width, video.height, video.pix_fmt = 640, 360, "yuv420p"
        sound = container.add_stream("aac", rate=48000, layout="mono")
        for i in range(VIDEO_SECONDS * VIDEO_FPS):
            card = cards[0] if i / VIDEO_FPS < SHOT_CHANGE_AT else cards[1]
            frame = av.VideoFrame.from_image(_jitter(card, i))
            frame.pts, frame.time_base = i, Fraction(1, VIDEO_FPS)
            container.mux(video.encode(frame))
        _encode_audio(container, sound, audio)
        container.mux(video.encode(None))


def _jitter(card: Image.Image, i: int) -> Image.Image:
    """A slowly moving bar, so frames within a shot differ a little (as real footage does)."""
    frame = card.copy()
    x = (i * 7) % 600
    ImageDraw.Draw(frame).rectangle((x, 330, x + 40, 340), fill=(200, 200, 200))
    return frame


def _decode_speech() -> np.ndarray:
    resampler = av.AudioResampler(format="s16", layout="mono", rate=48000)
    chunks = []
    with SPEECH.open("rb") as handle, av.open(handle) as container:
        for frame in container.decode(audio=0):
            chunks.extend(f.to_ndarray().reshape(-1) for f in resampler.resample(frame))
    samples = np.concatenate(chunks)
    return np.pad(samples, (0, max(0, VIDEO_SECONDS * 48000 - samples.size)))[: VIDEO_SECONDS * 48000]


def _encode_audio(container, stream, samples: np.ndarray) -> None:
    frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1).astype(np.int16), format="s16", layout="mono")
    frame.sample_rate = 48000
    resampler = av.AudioResampler(format="fltp", layout="mono", rate=48000, frame_size=1024)
    for chunk in [*resampler.resample(frame), *resampler.resample(None)]:
        container.mux(stream.encode(chunk))
    container.mux(stream.encode(None))


def write_text_pdf(path: Path, pages: dict[int, str]) -> None:
    pdf = FPDF()
    pdf.set_font("helvetica", size=14)
    for number in sorted(pages):
        pdf.add_page()
        pdf.multi_cell(0, 10, pages[number])
    pdf.output(str(path))


def write_scanned_pdf(path: Path, pages: dict[int, str]) -> None:
    """Pages that are only pixels: text drawn into a slightly noisy, slightly rotated scan."""
    rng = np.random.default_rng(7)
    images = []
    for number in sorted(pages):
        page = Image.new("L", (1240, 1754), 250)
        draw = ImageDraw.Draw(page)
        draw.text((120, 300), pages[number], fill=20, font=font(52))
        draw.text((120, 420), f"page {number}", fill=60, font=font(36))
        noise = rng.normal(0, 6, (1754, 1240))
        noisy = np.clip(np.asarray(page, dtype=np.float32) + noise, 0, 255).astype(np.uint8)
        images.append(Image.fromarray(noisy, "L").rotate(0.4, fillcolor=250).convert("RGB"))
    images[0].save(path, save_all=True, append_images=images[1:], resolution=150)
