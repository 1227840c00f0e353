"""Extraction throughput per layer on this machine's CPU, and peak memory of a full `extract()` on a long video.

    python bench/extract.py [--video-minutes 10] [--json]

Why: indexing cost is dominated by the models, so this says how much media one worker gets through per
second, layer by layer, and whether memory stays bounded as media gets longer (the decoders stream, so
it should: a 10-minute video should peak about where a 20-second one does).

1. transcript: faster-whisper (tiny.en by default) real-time factor on ~2 minutes of speech (the shipped
   13 s clip looped, written as Ogg/Opus), via `transcript.transcribe`. Target: >= 10x real time on 2 cores.
2. pages: scanned-PDF pages per second, page render + OCR, via `iter_pages` + `pages.page_row`.
3. visual: EfficientNet-Lite0 (the visual layer's trained model) images per second at batch 32, via
   `ImageNetModel.see`, beside open_clip ViT-B-32 (random weights: the speed of trained ones) in the same
   run; and the visual layer's share of `extract()` for a photo, a 20 s two-shot video and a 10-page PDF.
4. text: MiniLM sentences per second, via `TextEncoder.embed`.
5. memory: peak RSS of a child process that loads every model and runs the full `extract()` on a
   generated 640x360 video (title cards changing every 30 s, a moving bar, the speech clip looped as
   the soundtrack) of 20 s and of N minutes. The videos are encoded at a low frame rate (5 fps) so
   generating them stays quick; extraction samples frames at 4 fps, so it decodes nearly every frame.

Each throughput is measured after a warm-up call, so model loading (reported in its own table) and
first-call costs are excluded. The memory children run first, before this process loads any model,
because Linux counts the parent's RSS at spawn time in a child's ru_maxrss. Tables go to stdout, or to
stderr with --json (stdout is then the JSON).
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing
import os
import resource
import shutil
import tempfile
import time
from collections.abc import Callable
from contextlib import closing
from fractions import Fraction
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import av
import numpy as np
from PIL import Image, ImageDraw
from rich.console import Console
from rich.table import Table

from mediasift.config import Settings
from mediasift.extraction.extract import extract
from mediasift.extraction.layers import pages, transcript
from mediasift.extraction.layers.rows import LAYERS
from mediasift.extraction.media.audio import SAMPLE_RATE, iter_audio_chunks
from mediasift.extraction.media.pdf import iter_pages
from mediasift.extraction.models import Models, models_for
from mediasift.extraction.models.text import NAME as TEXT_MODEL
from mediasift.identity import ObjectVersion
from mediasift.local.samples import (
    SPEECH,
    TRUTH,
    photo,
    scene_image,
    title_card,
    write_photo_video,
    write_scanned_pdf,
)
from mediasift.store.s3 import Fetched, sniff_content_type

MODEL_NAMES = ("whisper", "text", "imagenet", "ocr", "faces", "ner")
"""The models a pipeline worker loads (CLIP, measured beside the visual model, loads in its own step)."""
AUDIO_SECONDS = 120
RTF_TARGET = 10.0
OCR_PAGES = 10
CLIP_IMAGES, CLIP_BATCH = 128, 32
SENTENCES = 2_000
VIDEO_FPS = 5
VIDEO_SIZE = (640, 360)
SHOT_SECONDS = 30
SHORT_VIDEO_SECONDS = 20
AUDIO_RATE = 48_000
FRAME_SIZES = {"aac": 1024, "libopus": 960}
CARDS = (("HARBOUR REPORT", (20, 50, 120)), ("PELICAN BAY", (150, 80, 20)), ("WIND FARM", (30, 110, 60)),
         ("CITY COUNCIL", (90, 30, 90)))


# --- media generation ---------------------------------------------------------------------------------

def speech_samples(rate: int = AUDIO_RATE) -> np.ndarray:
    """The shipped speech clip as mono int16 samples at `rate`."""
    resampler = av.AudioResampler(format="s16", layout="mono", rate=rate)
    chunks = []
    with SPEECH.open("rb") as handle, av.open(handle) as container:
        for frame in container.decode(audio=0):
            chunks.extend(f.to_ndarray().reshape(-1) for f in resampler.resample(frame))
    chunks.extend(f.to_ndarray().reshape(-1) for f in resampler.resample(None))
    return np.concatenate(chunks)


def looped(samples: np.ndarray, start: int, stop: int) -> np.ndarray:
    """Samples [start, stop) of `samples` repeated end to end."""
    return samples[np.arange(start, stop) % samples.size]


class AudioSink:
    """Encodes mono int16 chunks of any length into one audio stream, with continuous timestamps."""

    def __init__(self, container: av.container.OutputContainer, codec: str):
        self.container = container
        self.stream = container.add_stream(codec, rate=AUDIO_RATE, layout="mono")
        self.resampler = av.AudioResampler(format=self.stream.codec_context.format.name, layout="mono",
                                           rate=AUDIO_RATE, frame_size=FRAME_SIZES[codec])
        self.pts = 0

    def write(self, samples: np.ndarray) -> None:
        frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1).astype(np.int16), format="s16", layout="mono")
        frame.sample_rate = AUDIO_RATE
        self._encode(self.resampler.resample(frame))

    def close(self) -> None:
        self._encode(self.resampler.resample(None))
        self.container.mux(self.stream.encode(None))

    def _encode(self, frames: list[av.AudioFrame]) -> None:
        for frame in frames:
            frame.pts, frame.time_base = self.pts, Fraction(1, AUDIO_RATE)
            self.pts += frame.samples
            self.container.mux(self.stream.encode(frame))


def write_speech_audio(path: Path, seconds: int) -> None:
    """`seconds` of the speech clip looped, as Ogg/Opus."""
    speech = speech_samples()
    with av.open(str(path), "w") as container:
        sink = AudioSink(container, "libopus")
        sink.write(looped(speech, 0, seconds * AUDIO_RATE))
        sink.close()


def _video_frame(card: Image.Image, i: int) -> av.VideoFrame:
    """The title card with a slowly moving bar, so frames within a shot differ a little."""
    image = card.copy()
    x = (i * 7) % (VIDEO_SIZE[0] - 40)
    ImageDraw.Draw(image).rectangle((x, VIDEO_SIZE[1] - 30, x + 40, VIDEO_SIZE[1] - 20), fill=(200, 200, 200))
    frame = av.VideoFrame.from_image(image)
    frame.pts, frame.time_base = i, Fraction(1, VIDEO_FPS)
    return frame


def write_long_video(path: Path, seconds: int) -> None:
    """H.264 + AAC mp4: a new title card every SHOT_SECONDS, speech looped, audio and video interleaved."""
    cards = [title_card(text, colour, VIDEO_SIZE) for text, colour in CARDS]
    speech = speech_samples()
    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=VIDEO_FPS)
        video.width, video.height, video.pix_fmt = *VIDEO_SIZE, "yuv420p"
        sound = AudioSink(container, "aac")
        for second in range(seconds):
            card = cards[(second // SHOT_SECONDS) % len(cards)]
            for i in range(second * VIDEO_FPS, (second + 1) * VIDEO_FPS):
                container.mux(video.encode(_video_frame(card, i)))
            sound.write(looped(speech, second * AUDIO_RATE, (second + 1) * AUDIO_RATE))
        container.mux(video.encode(None))
        sound.close()


def clip_images(n: int) -> list[Image.Image]:
    """`n` different 640x427 landscape images."""
    rng = np.random.default_rng(0)
    return [scene_image(tuple(rng.integers(0, 256, 3)), tuple(rng.integers(0, 256, 3)), sun=bool(i % 2))
            for i in range(n)]


def sentences(n: int) -> list[str]:
    """`n` short, distinct sentences."""
    subjects = ("The harbour", "Maria Santos", "The board", "A new turbine", "The council", "Our team", "The ferry")
    verbs = ("reopened", "approved the budget", "met in Lisbon", "was delayed", "reported growth", "moved north")
    times = ("on Tuesday", "last week", "this quarter", "in the morning", "after the storm")
    return [f"{subjects[i % 7]} {verbs[(i // 7) % 6]} {times[(i // 42) % 5]} (item {i})." for i in range(n)]


# --- measurements ---------------------------------------------------------------------------------------

def timed(call: Callable[[], Any]) -> tuple[Any, float]:
    started = time.perf_counter()
    result = call()
    return result, time.perf_counter() - started


def quiet_model_logs() -> None:
    """Keep the tables readable: RapidOCR logs each model file at INFO (and resets its level to INFO on every
    engine it builds, hence a filter), transformers draws a loading bar."""
    from huggingface_hub.utils import disable_progress_bars

    logging.getLogger("RapidOCR").addFilter(lambda record: record.levelno >= logging.WARNING)
    disable_progress_bars()


def load_models(models: Models) -> dict[str, float]:
    """Seconds to load each model on first use (the first to need torch also pays for importing it)."""
    return {name: timed(lambda name=name: getattr(models, name))[1] for name in MODEL_NAMES}


def times_spoken(entity: str, audio_s: float) -> int:
    """How often `entity` is fully spoken in `audio_s` seconds of the looped speech clip."""
    clip_s = speech_samples().size / AUDIO_RATE
    t = next(e["t_start"] for e in TRUTH["speech.ogg"]["entities"] if e["text"] == entity) + 1.0
    return sum(1 for k in range(int(audio_s // clip_s) + 1) if k * clip_s + t <= audio_s)


def bench_transcript(models: Models, folder: Path) -> dict:
    path = folder / "speech_2min.ogg"
    write_speech_audio(path, AUDIO_SECONDS)
    audio_s = sum(samples.size for _, samples in iter_audio_chunks(path)) / SAMPLE_RATE
    warm_up = folder / "speech.ogg"
    with SPEECH.open("rb") as source, open(warm_up, "wb") as target:
        shutil.copyfileobj(source, target)
    transcript.transcribe(warm_up, models.whisper, "audio")
    rows, wall = timed(lambda: transcript.transcribe(path, models.whisper, "audio"))
    segments = [r for r in rows if r.kind == "sentence"]
    rtf = audio_s / wall
    return {"model": Settings().whisper_model or "tiny.en", "audio_s": round(audio_s, 1), "wall_s": round(wall, 2),
            "real_time_factor": round(rtf, 1), "sentences": len(segments),
            "words": sum(r.kind == "word" for r in rows),
            "lisbon_heard": sum("lisbon" in r.text.lower() for r in segments),
            "lisbon_spoken": times_spoken("Lisbon", audio_s),
            "target_rtf": RTF_TARGET, "target_met": rtf >= RTF_TARGET}


def bench_ocr(models: Models, folder: Path) -> dict:
    path = folder / "scanned.pdf"
    expected = {n: f"INVOICE {4400 + n} TURBINE MAINTENANCE" for n in range(1, OCR_PAGES + 1)}
    write_scanned_pdf(path, expected)
    with closing(iter_pages(path)) as stream:
        pages.page_row(next(stream), models.ocr)
    _, render_s = timed(lambda: [page.number for page in iter_pages(path)])
    rows, wall = timed(lambda: [pages.page_row(page, models.ocr) for page in iter_pages(path)])
    return {"pages": len(rows), "wall_s": round(wall, 2), "pages_per_s": round(len(rows) / wall, 2),
            "render_only_s": round(render_s, 2), "ocr_s_per_page": round((wall - render_s) / len(rows), 2),
            "pages_read_correctly": sum(str(4400 + row.page) in row.text for row in rows)}


def bench_clip(models: Models, batch: int = CLIP_BATCH, count: int = CLIP_IMAGES) -> dict:
    clip = models.clip
    images = clip_images(count)
    clip.embed_images(images[:batch], batch_size=batch)
    vectors, wall = timed(lambda: clip.embed_images(images, batch_size=batch))
    return {"model": clip.name, "untrained": clip.untrained, "images": len(vectors), "batch": batch,
            "size": "640x427", "wall_s": round(wall, 2), "images_per_s": round(len(vectors) / wall, 1)}


def bench_imagenet(models: Models, batch: int = CLIP_BATCH, count: int = CLIP_IMAGES) -> dict:
    model = models.imagenet
    images = clip_images(count)
    model.see(images[:batch], batch_size=batch)
    seen, wall = timed(lambda: model.see(images, batch_size=batch))
    return {"model": model.name, "images": len(seen), "batch": batch, "size": "640x427", "wall_s": round(wall, 2),
            "images_per_s": round(len(seen) / wall, 1)}


def bench_visual_share(models: Models, folder: Path) -> dict:
    """Seconds the visual layer adds to one object's extract(), for each kind of object it sees."""
    photo("coffee").save(folder / "photo.png")
    write_photo_video(folder / "two_shots.mp4", ["chelsea", "coffee"])
    write_scanned_pdf(folder / "ten_pages.pdf", {n: f"INVOICE {4400 + n}" for n in range(1, OCR_PAGES + 1)})
    share = {}
    for name in ("photo.png", "two_shots.mp4", "ten_pages.pdf"):
        path = folder / name
        fetched = Fetched(path.stat().st_size, "", sniff_content_type(path.read_bytes()[:8192]))
        extraction, wall = timed(lambda path=path, fetched=fetched: extract(
            path, ObjectVersion("bench", path.name, "bench"), fetched, models))
        share[name] = {"visual_s": round(extraction.seconds.get("visual", 0.0), 2), "extract_s": round(wall, 2),
                       "pictures": len(extraction.rows["visual"])}
    return share


def bench_text(models: Models) -> dict:
    texts = sentences(SENTENCES)
    models.text.embed(texts[:64])
    vectors, wall = timed(lambda: models.text.embed(texts))
    return {"model": TEXT_MODEL, "sentences": len(vectors), "wall_s": round(wall, 2),
            "sentences_per_s": round(len(vectors) / wall, 1)}


def rss_mb(field: str = "VmRSS") -> int | None:
    """This process's current (VmRSS) or peak (VmHWM) resident memory, from /proc."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) // 1024
    return None


def reset_peak_rss() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0), so the next peak is extraction's alone."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def _extract_in_child(path: str, sender: Connection) -> None:
    """Child process: load every model, then the full extract(); sends back times, rows and RSS."""
    quiet_model_logs()
    models = Models(Settings())
    load_s = sum(load_models(models).values())
    loaded = {"rss_after_load_mb": rss_mb(), "peak_during_load_mb": rss_mb("VmHWM")}
    reset = reset_peak_rss()
    with open(path, "rb") as handle:
        content_type = sniff_content_type(handle.read(8192))
    version = ObjectVersion("bench", Path(path).name, etag="bench")
    fetched = Fetched(Path(path).stat().st_size, "", content_type)
    extraction, wall = timed(lambda: extract(Path(path), version, fetched, models))
    sender.send({"content_type": content_type, "load_s": round(load_s, 1), "extract_s": round(wall, 1),
                 "layer_s": {k: round(v, 1) for k, v in extraction.seconds.items()},
                 "rows": {layer: len(extraction.rows[layer]) for layer in LAYERS}, **loaded,
                 "peak_during_extract_mb": rss_mb("VmHWM") if reset else None,
                 "peak_self_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)})
    sender.close()


def run_child(path: Path) -> dict:
    """extract() on `path` in a fresh spawned process; its peak RSS as the parent sees it (RUSAGE_CHILDREN).

    Linux carries the parent's peak RSS into a fork+exec'd child's ru_maxrss, so this runs while the
    parent is still small (before it loads any model); `parent_peak_mb` says how small.
    """
    context = multiprocessing.get_context("spawn")
    receiver, sender = context.Pipe(duplex=False)
    child = context.Process(target=_extract_in_child, args=(str(path), sender))
    parent_peak_mb = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    child.start()
    sender.close()
    try:
        result = receiver.recv()
    except EOFError as error:
        raise RuntimeError(f"extract child died on {path.name} (exit code {child.exitcode})") from error
    finally:
        child.join()
    # RUSAGE_CHILDREN is the largest peak of all children waited for so far, so children run shortest first.
    result["peak_rusage_children_mb"] = round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)
    result["parent_peak_mb"] = parent_peak_mb
    return result


def video_seconds(path: Path) -> float:
    with av.open(str(path)) as container:
        return (container.duration or 0) / av.time_base


def bench_memory(folder: Path, minutes: float, console: Console) -> dict:
    runs = {}
    for label, seconds in (("short", SHORT_VIDEO_SECONDS), ("long", round(minutes * 60))):
        path = folder / f"video_{seconds}s.mp4"
        _, generate_s = timed(lambda path=path, seconds=seconds: write_long_video(path, seconds))
        console.log(f"wrote {path.name} in {generate_s:.0f} s; extracting in a child process")
        runs[label] = {"duration_s": round(video_seconds(path), 1), "fps": VIDEO_FPS,
                       "size": f"{VIDEO_SIZE[0]}x{VIDEO_SIZE[1]}", "file_mb": round(path.stat().st_size / 2**20, 2),
                       "generate_s": round(generate_s, 1), **run_child(path)}
        path.unlink()
    short, long = runs["short"], runs["long"]
    runs["peak_ratio_long_over_short"] = round(long["peak_rusage_children_mb"] / short["peak_rusage_children_mb"], 2)
    if short["peak_during_extract_mb"] and long["peak_during_extract_mb"]:
        growth = [run["peak_during_extract_mb"] - run["rss_after_load_mb"] for run in (short, long)]
        runs["extract_growth_mb"] = {"short": growth[0], "long": growth[1]}
    return runs


def measure(minutes: float, console: Console) -> dict:
    """Memory first, while this process is small (see run_child); then models load here for throughput."""
    quiet_model_logs()
    load_average = round(os.getloadavg()[0], 2)
    with tempfile.TemporaryDirectory(prefix="mediasift-bench-") as name:
        folder = Path(name)
        results: dict[str, Any] = {"memory": bench_memory(folder, minutes, console)}
        console.log("loading models")
        models = models_for(Settings())
        results["model_load_s"] = {k: round(v, 2) for k, v in load_models(models).items()}
        import torch

        results["threads"] = {"torch": torch.get_num_threads(), "cpus": multiprocessing.cpu_count(),
                              "load_average_1min_at_start": load_average}
        for key, run in (("transcript", lambda: bench_transcript(models, folder)),
                         ("pages", lambda: bench_ocr(models, folder)),
                         ("visual", lambda: bench_imagenet(models)),
                         ("clip", lambda: bench_clip(models)),
                         ("visual_share", lambda: bench_visual_share(models, folder)),
                         ("text", lambda: bench_text(models))):
            console.log(f"measuring {key}")
            results[key] = run()
    results["threads"]["load_average_1min_at_end"] = round(os.getloadavg()[0], 2)
    return results


# --- report -----------------------------------------------------------------------------------------------

def throughput_table(results: dict) -> Table:
    t, p, v, s, c = results["transcript"], results["pages"], results["visual"], results["text"], results["clip"]
    table = Table("layer", "model", "work", "wall s", "throughput",
                  title=f"extraction throughput, {results['threads']['cpus']} CPU cores, after a warm-up "
                        "(model loading excluded)")
    table.add_row("transcript", f"faster-whisper {t['model']}", f"{t['audio_s']:.0f} s of speech", str(t["wall_s"]),
                  f"{t['real_time_factor']}x real time")
    table.add_row("pages", "pypdfium2 + RapidOCR", f"{p['pages']} scanned pages", str(p["wall_s"]),
                  f"{p['pages_per_s']} pages/s")
    table.add_row("visual", v["model"], f"{v['images']} images {v['size']}", str(v["wall_s"]),
                  f"{v['images_per_s']} images/s")
    table.add_row("(baseline)", f"open_clip {c['model']}", f"{c['images']} images {c['size']}", str(c["wall_s"]),
                  f"{c['images_per_s']} images/s ({v['images_per_s'] / c['images_per_s']:.1f}x)")
    table.add_row("text", s["model"], f"{s['sentences']} sentences", str(s["wall_s"]),
                  f"{s['sentences_per_s']} sentences/s")
    return table


def throughput_notes(results: dict) -> list[str]:
    t, p, v, threads = results["transcript"], results["pages"], results["visual"], results["threads"]
    return [
        f"target: ≥ {t['target_rtf']:.0f}× real time for tiny.en on 2 cores: "
        f"{'met' if t['target_met'] else 'NOT MET'} ({t['real_time_factor']}×)",
        f"transcript: {t['sentences']} sentences, {t['words']} words; 'Lisbon' heard {t['lisbon_heard']} of "
        f"{t['lisbon_spoken']} times spoken",
        f"pages: rendering alone {p['render_only_s']} s for all pages, OCR {p['ocr_s_per_page']} s/page; "
        f"{p['pages_read_correctly']}/{p['pages']} invoice numbers read back",
        f"visual: batch {v['batch']}; the visual layer's share of extract(): " + ", ".join(
            f"{name} {s['visual_s']} of {s['extract_s']} s ({s['pictures']} pictures)"
            for name, s in results["visual_share"].items()),
        f"threads: torch {threads['torch']}; 1-minute load average {threads['load_average_1min_at_start']} "
        f"before, {threads['load_average_1min_at_end']} after (other work on these cores slows every number)",
    ]


def load_table(results: dict) -> Table:
    table = Table("model", "load s", title="model load, first use in this process (includes library imports)")
    for name, seconds in results["model_load_s"].items():
        table.add_row(name, f"{seconds:.2f}")
    table.add_row("total", f"{sum(results['model_load_s'].values()):.2f}")
    return table


MEMORY_ROWS = (
    ("duration s", "duration_s"),
    ("file MB", "file_mb"),
    ("generate s", "generate_s"),
    ("model load s", "load_s"),
    ("extract() wall s", "extract_s"),
    ("peak RSS during model load MB", "peak_during_load_mb"),
    ("RSS after model load MB", "rss_after_load_mb"),
    ("peak RSS during extract() MB", "peak_during_extract_mb"),
    ("peak RSS, child's own MB", "peak_self_mb"),
    ("peak RSS, RUSAGE_CHILDREN MB", "peak_rusage_children_mb"),
    ("parent's peak RSS at spawn MB", "parent_peak_mb"),
)


def memory_table(memory: dict) -> Table:
    short, long = memory["short"], memory["long"]
    table = Table("spawned child: load models, extract()", "short video", "long video",
                  title=f"full extract() of a {short['size']} video at {short['fps']} fps (H.264 + AAC)")
    for label, key in MEMORY_ROWS:
        table.add_row(label, str(short[key]), str(long[key]))
    for layer in LAYERS:
        table.add_row(f"rows: {layer}", str(short["rows"][layer]), str(long["rows"][layer]))
    for layer in sorted(set(short["layer_s"]) | set(long["layer_s"])):
        table.add_row(f"seconds: {layer}", str(short["layer_s"].get(layer, "-")), str(long["layer_s"].get(layer, "-")))
    return table


def memory_notes(memory: dict) -> list[str]:
    notes = [f"peak RSS long / short = {memory['peak_ratio_long_over_short']} (RUSAGE_CHILDREN; ~1 means memory does "
             "not grow with duration)"]
    if growth := memory.get("extract_growth_mb"):
        notes.append(f"extract() above the loaded models: short +{growth['short']} MB, long +{growth['long']} MB "
                     f"({growth['long'] / growth['short']:.2f}×)")
    notes.append(f"videos are generated at {VIDEO_FPS} fps to keep generation quick; extract() samples frames at 4 fps")
    notes.append("'seconds: scenes' includes 'seconds: visual' (keyframe batches are embedded inside the frame loop)")
    return notes


def report(results: dict, console: Console) -> None:
    console.print(throughput_table(results))
    for note in throughput_notes(results):
        console.print(f"  {note}", highlight=False)
    console.print(load_table(results))
    console.print(memory_table(results["memory"]))
    for note in memory_notes(results["memory"]):
        console.print(f"  {note}", highlight=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--video-minutes", type=float, default=10.0, help="duration of the long video (default 10)")
    parser.add_argument("--json", action="store_true", help="JSON on stdout; the tables go to stderr")
    args = parser.parse_args()
    console = Console(stderr=args.json)
    results = measure(args.video_minutes, Console(stderr=True))
    report(results, console)
    if args.json:
        print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
