"""The extraction models on a GPU: the visual layer's EfficientNet-Lite0 and CLIP images/s at batch 256,
and the Whisper real-time factor, on `--device` and on the CPU in the same run (the baseline of the ratio).

    python bench/gpu.py [--device cuda] [--images 1024] [--json]

Meant for a machine with a GPU (`MEDIASIFT_DEVICE=cuda` is what Ray actors get when the cluster has
GPUs). It uses the pipeline's own loaders and layer code (`Models`, `ImageNetModel.see`, `Clip.embed_images`,
`transcript.transcribe`) through bench/extract.py's measurements: the 640x427 images, and two minutes of
the speech clip looped. `--device cpu` measures the CPU alone.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import extract  # bench/extract.py, beside this script
from rich.console import Console
from rich.table import Table

from mediasift.config import Settings
from mediasift.extraction.models import Models

CLIP_BATCH = 256


def measure(device: str, images: int, folder: Path) -> dict:
    models = Models(Settings(device=device))
    return {"visual": extract.bench_imagenet(models, batch=CLIP_BATCH, count=images),
            "clip": extract.bench_clip(models, batch=CLIP_BATCH, count=images),
            "transcript": extract.bench_transcript(models, folder)}


def report(results: dict, console: Console) -> None:
    cpu = results["cpu"]
    table = Table("device", f"{cpu['visual']['model']} images/s (batch {CLIP_BATCH})", "× CPU",
                  f"CLIP {cpu['clip']['model']} images/s", "× CPU", "Whisper real-time factor", "× CPU",
                  title=f"visual models and {cpu['transcript']['model']}, "
                        f"{cpu['transcript']['audio_s']:.0f} s of speech")
    for device, r in results.items():
        seen, clip, rtf = (r["visual"]["images_per_s"], r["clip"]["images_per_s"],
                           r["transcript"]["real_time_factor"])
        table.add_row(device, f"{seen:.1f}", f"{seen / cpu['visual']['images_per_s']:.1f}", f"{clip:.1f}",
                      f"{clip / cpu['clip']['images_per_s']:.1f}", f"{rtf:.1f}",
                      f"{rtf / cpu['transcript']['real_time_factor']:.1f}")
    console.print(table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda", help="torch device to compare with the CPU (default cuda)")
    parser.add_argument("--images", type=int, default=4 * CLIP_BATCH, help="images to embed per device")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            parser.error("no CUDA device here (torch.cuda.is_available() is False); use --device cpu")
    extract.quiet_model_logs()
    with tempfile.TemporaryDirectory(prefix="mediasift-gpu-") as name:
        results = {device: measure(device, args.images, Path(name)) for device in dict.fromkeys([args.device, "cpu"])}
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        report(results, Console())


if __name__ == "__main__":
    main()
