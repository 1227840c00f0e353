"""Pictures for the notebooks: what a visual row saw, fetched back from the store.

The feature tables keep no pixels, only where a picture sits (an image; a shot from `t_start` to `t_end`,
its keyframe at the scene row's `keyframe_t`; a PDF page). So a thumbnail is made the way the row was: the
exact version its lineage names is read from the bucket (pinned to its ETag or VersionId, so a key
overwritten since shows what was indexed, or fails saying so), then the frame or page is decoded again.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path

import av
import pypdfium2 as pdfium
from matplotlib.figure import Figure
from PIL import Image

from mediasift.extraction.media.image import load_image
from mediasift.identity import ObjectVersion
from mediasift.inbox import Inbox
from mediasift.store.s3 import ObjectStore

THUMBNAIL = (256, 256)


class Pictures:
    """Thumbnails of object versions, each version read from the store once per notebook."""

    def __init__(self, storage: ObjectStore, inbox: Inbox, folder: Path | None = None):
        self.storage = storage
        self.inbox = inbox
        self.folder = folder or Path(tempfile.mkdtemp(prefix="mediasift-pictures-"))
        self._read: dict[str, Path] = {}

    def version(self, bucket: str, key: str, etag: str) -> ObjectVersion:
        """The version the inbox knows by this lineage (its VersionId too, where the bucket has one)."""
        for record in self.inbox.versions_of(bucket, key):
            if record.etag == etag:
                return record.object_version()
        raise LookupError(f"s3://{bucket}/{key} etag {etag} is not in the inbox (MEDIASIFT_DATABASE_URL, "
                          "or MEDIASIFT_HOME's inbox.db)")

    def local(self, version: ObjectVersion) -> Path:
        if version.version_hash not in self._read:
            path = self.folder / version.version_hash
            self.storage.read(version, path)
            self._read[version.version_hash] = path
        return self._read[version.version_hash]

    def of(self, bucket: str, key: str, etag: str, modality: str, t: float | None = None,
           page: int | None = None) -> Image.Image:
        """The picture at `t` seconds of a video, on `page` of a PDF, or the image itself; thumbnail-sized."""
        path = self.local(self.version(bucket, key, etag))
        if modality == "video":
            picture = frame_at(path, t or 0.0)
        elif modality == "pdf":
            picture = page_image(path, page or 1)
        else:
            picture = load_image(path, max_side=max(THUMBNAIL))
        picture.thumbnail(THUMBNAIL)
        return picture


def frame_at(path: Path, t: float) -> Image.Image:
    """The first frame at or after `t` seconds (a seek to the keyframe before it, then decoding on)."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        container.seek(int(t / stream.time_base), stream=stream)
        last = None
        for frame in container.decode(stream):
            last = frame
            if frame.pts is not None and frame.pts * stream.time_base >= t - 1e-3:
                break
        if last is None:
            raise ValueError(f"{path} has no frame at {t:.2f} s")
        return last.to_image()


def page_image(path: Path, page: int) -> Image.Image:
    document = pdfium.PdfDocument(str(path))
    try:
        return document[page - 1].render(scale=1.0).to_pil().convert("RGB")
    finally:
        document.close()


def grid(pictures: Sequence[Image.Image], captions: Sequence[str], columns: int = 6,
         title: str | None = None) -> Figure:
    """Thumbnails side by side with a caption under each; a Figure, which Jupyter shows as the cell's output."""
    columns = max(1, min(columns, len(pictures)))
    rows = max(1, -(-len(pictures) // columns))
    figure = Figure(figsize=(2.2 * columns, 2.5 * rows), layout="constrained")
    axes = figure.subplots(rows, columns, squeeze=False)
    for ax in axes.flat:
        ax.set_axis_off()
    for ax, picture, caption in zip(axes.flat, pictures, captions, strict=False):
        ax.imshow(picture)
        ax.set_title(caption, fontsize=7, wrap=True)
    if title:
        figure.suptitle(title, fontsize=10)
    return figure
