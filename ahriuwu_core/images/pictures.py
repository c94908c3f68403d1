"""Pictures for the evaluation report, drawn with Pillow only: strips, GIFs, a line plot, small data URIs.

Frames come in as uint8 numpy (T, H, W, 3). Small frames are enlarged with nearest-neighbour so a 64x64
frame is still readable in the UI.
"""

from __future__ import annotations

import base64
import io
import json
import math
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ..data.files import atomic_path

BACKGROUND = (255, 255, 255)
TEXT = (20, 20, 20)
# colour per series, in legend order; unknown names cycle through the tail
SERIES_COLOURS = {
    "model_k4": (31, 119, 180),
    "model_k64": (44, 160, 44),
    "persistence": (214, 39, 40),
    "tokenizer_ceiling": (127, 127, 127),
}
EXTRA_COLOURS = [(255, 127, 14), (148, 103, 189), (140, 86, 75), (227, 119, 194), (23, 190, 207)]


def font(size: int = 12) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow without FreeType: fixed-size bitmap font
        return ImageFont.load_default()


def to_uint8(frames) -> np.ndarray:
    """float [0,1] or uint8, (..., H, W, 3) or (..., 3, H, W) -> uint8 (..., H, W, 3)."""
    arr = np.asarray(frames)
    if arr.shape[-1] != 3 and arr.shape[-3] == 3:
        arr = np.moveaxis(arr, -3, -1)
    if arr.dtype != np.uint8:
        arr = (np.clip(arr.astype(np.float32), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    return arr


def display_scale(height: int, min_height: int = 128) -> int:
    return max(1, math.ceil(min_height / max(height, 1)))


def _enlarge(img: Image.Image, scale: int) -> Image.Image:
    return img if scale == 1 else img.resize((img.width * scale, img.height * scale), Image.NEAREST)


def atomic_save(image: Image.Image, path: Path, **kwargs) -> Path:
    path = Path(path)
    with atomic_path(path) as tmp:
        image.save(tmp, format=path.suffix.lstrip(".").upper().replace("JPG", "JPEG"), **kwargs)
    return path


def make_strip(rows: dict[str, np.ndarray], column_labels: list[str], title: str = "") -> Image.Image:
    """A grid: one row per label (each (K, H, W, 3) uint8, K = len(column_labels)), labels on the left/top."""
    first = next(iter(rows.values()))
    h, w = first.shape[1], first.shape[2]
    scale = display_scale(h)
    fh, fw = h * scale, w * scale
    gap, label_w, header_h = 4, 110, 20 + (18 if title else 0)
    n_cols = len(column_labels)
    width = label_w + n_cols * (fw + gap) + gap
    height = header_h + len(rows) * (fh + gap) + gap
    canvas = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    f = font(12)
    if title:
        draw.text((gap, 2), title, fill=TEXT, font=f)
    for c, label in enumerate(column_labels):
        draw.text((label_w + c * (fw + gap) + gap, header_h - 16), label, fill=TEXT, font=f)
    for r, (name, frames) in enumerate(rows.items()):
        if frames.shape[0] != n_cols:
            raise ValueError(f"strip row {name!r} has {frames.shape[0]} frames, expected {n_cols}")
        y = header_h + r * (fh + gap) + gap
        draw.text((gap, y + fh // 2 - 6), name, fill=TEXT, font=f)
        for c in range(n_cols):
            tile = _enlarge(Image.fromarray(to_uint8(frames[c])), scale)
            canvas.paste(tile, (label_w + c * (fw + gap) + gap, y))
    return canvas


def small_png_bytes(image: Image.Image, max_width: int = 480, max_bytes: int = 40_000) -> bytes:
    """PNG bytes small enough to embed in Dagster markdown metadata (a few tens of KB at most)."""
    img = image.convert("RGB")
    if img.width > max_width:
        img = img.resize((max_width, max(1, round(img.height * max_width / img.width))), Image.LANCZOS)
    data = b""
    for colours in (None, 128, 64, 32):
        candidate = img if colours is None else img.quantize(colors=colours)
        buf = io.BytesIO()
        candidate.save(buf, format="PNG", optimize=True)
        data = buf.getvalue()
        if len(data) <= max_bytes:
            return data
    while len(data) > max_bytes and img.width > 64:  # still too big: shrink further
        img = img.resize((img.width * 3 // 4, max(1, img.height * 3 // 4)), Image.LANCZOS)
        buf = io.BytesIO()
        img.quantize(colors=32).save(buf, format="PNG", optimize=True)
        data = buf.getvalue()
    return data


def png_data_uri(image_or_path, max_width: int = 480, max_bytes: int = 40_000) -> str:
    """`data:image/png;base64,...` of a small copy of an image (a PIL image or a path to one)."""
    image = image_or_path if isinstance(image_or_path, Image.Image) else Image.open(image_or_path)
    data = small_png_bytes(image, max_width=max_width, max_bytes=max_bytes)
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def write_gif(gt: np.ndarray, pred: np.ndarray, context: int, path: Path, frame_ms: int = 100) -> Path:
    """Side-by-side GIF: ground truth | prediction. gt (C+H, H, W, 3); pred (H, H, W, 3) for the last H
    frames. During the context both panels show the ground truth the model was given."""
    gt, pred = to_uint8(gt), to_uint8(pred)
    if gt.shape[0] != context + pred.shape[0]:
        raise ValueError(f"GIF needs {context}+{pred.shape[0]} ground-truth frames, got {gt.shape[0]}")
    h, w = gt.shape[1:3]
    scale = display_scale(h)
    fh, fw = h * scale, w * scale
    label_h, gap = 16, 4
    f = font(11)
    images = []
    for t in range(gt.shape[0]):
        canvas = Image.new("RGB", (2 * fw + 3 * gap, fh + label_h + gap), BACKGROUND)
        draw = ImageDraw.Draw(canvas)
        right = gt[t] if t < context else pred[t - context]
        tag = f"context {t + 1}/{context}" if t < context else f"h={t - context + 1}"
        draw.text((gap, 1), "ground truth", fill=TEXT, font=f)
        draw.text((fw + 2 * gap, 1), f"prediction ({tag})", fill=TEXT, font=f)
        canvas.paste(_enlarge(Image.fromarray(gt[t]), scale), (gap, label_h))
        canvas.paste(_enlarge(Image.fromarray(right), scale), (fw + 2 * gap, label_h))
        images.append(canvas.convert("P", palette=Image.ADAPTIVE, colors=128))
    path = Path(path)
    with atomic_path(path) as tmp:
        images[0].save(tmp, format="GIF", save_all=True, append_images=images[1:], duration=frame_ms, loop=0)
    return path


def _nice_step(span: float, target_ticks: int = 6) -> float:
    raw = span / max(target_ticks, 1)
    mag = 10 ** math.floor(math.log10(raw))
    for m in (1, 2, 5, 10):
        if raw <= m * mag:
            return m * mag
    return 10 * mag


def series_colours(names) -> dict[str, tuple[int, int, int]]:
    """Baselines keep fixed colours; model variants take blue, green, then the extra palette, in order."""
    model_palette = iter([SERIES_COLOURS["model_k4"], SERIES_COLOURS["model_k64"]] + EXTRA_COLOURS)
    other_palette = iter(EXTRA_COLOURS[::-1])
    out = {}
    for name in names:
        if name in ("persistence", "tokenizer_ceiling"):
            out[name] = SERIES_COLOURS[name]
        elif name.startswith("model"):
            out[name] = next(model_palette, (0, 0, 0))
        else:
            out[name] = next(other_palette, (0, 0, 0))
    return out


def line_plot(
    x: list, series: dict[str, list], title: str, x_label: str, y_label: str, size: tuple[int, int] = (640, 400)
) -> Image.Image:
    """A legible line plot (axes, ticks, grid, legend under the axis). None / NaN points are skipped."""
    width, height = size
    f, f_title = font(12), font(14)
    colours = series_colours(series)
    # legend rows under the x-axis label: lay out entries left to right, wrapping at the canvas width
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    entries, row, row_w = [], 0, 0
    for name in series:
        w = 30 + int(probe.textlength(name, font=f)) + 16
        if row_w and 60 + row_w + w > width - 20:
            row, row_w = row + 1, 0
        entries.append((name, row, row_w))
        row_w += w
    legend_h = (row + 1) * 18 if series else 0
    left, right, top, bottom = 60, 20, 30, 50 + legend_h
    canvas = Image.new("RGB", size, BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    values = [v for ys in series.values() for v in ys if v is not None and math.isfinite(v)]
    lo, hi = (min(values), max(values)) if values else (0.0, 1.0)
    if hi - lo < 1e-9:
        lo, hi = lo - 1.0, hi + 1.0
    pad = 0.06 * (hi - lo)  # keep points off the frame
    lo, hi = lo - pad, hi + pad
    step = _nice_step(hi - lo)
    lo, hi = math.floor(lo / step) * step, math.ceil(hi / step) * step
    x_lo, x_hi = min(x), max(x)
    if x_hi == x_lo:
        x_lo, x_hi = x_lo - 1, x_hi + 1
    x_pad = 0.03 * (x_hi - x_lo)
    x_lo, x_hi = x_lo - x_pad, x_hi + x_pad
    plot_w, plot_h = width - left - right, height - top - bottom

    def px(xv, yv):
        return (left + (xv - x_lo) / (x_hi - x_lo) * plot_w, top + (hi - yv) / (hi - lo) * plot_h)

    draw.text((left, 6), title, fill=TEXT, font=f_title)
    n_ticks = int(round((hi - lo) / step))
    for i in range(n_ticks + 1):
        yv = lo + i * step
        _, y = px(x_lo, yv)
        draw.line([(left, y), (left + plot_w, y)], fill=(225, 225, 225))
        draw.line([(left - 4, y), (left, y)], fill=TEXT)
        label = f"{yv:g}" if abs(yv) >= 1e-9 else "0"
        draw.text((left - 8 - draw.textlength(label, font=f), y - 7), label, fill=TEXT, font=f)
    x_ticks = x if len(x) <= 16 else x[:: math.ceil(len(x) / 16)]
    for xv in x_ticks:
        xp, _ = px(xv, lo)
        draw.line([(xp, top + plot_h), (xp, top + plot_h + 4)], fill=TEXT)
        label = f"{xv:g}"
        draw.text((xp - draw.textlength(label, font=f) / 2, top + plot_h + 6), label, fill=TEXT, font=f)
    draw.rectangle([left, top, left + plot_w, top + plot_h], outline=TEXT)
    label_y = top + plot_h + 24
    draw.text((left + plot_w / 2 - draw.textlength(x_label, font=f) / 2, label_y), x_label, fill=TEXT, font=f)
    # vertical y label: draw on a small image and rotate
    label_img = Image.new("RGB", (int(draw.textlength(y_label, font=f)) + 4, 16), BACKGROUND)
    ImageDraw.Draw(label_img).text((2, 1), y_label, fill=TEXT, font=f)
    label_img = label_img.rotate(90, expand=True)
    canvas.paste(label_img, (4, top + plot_h // 2 - label_img.height // 2))

    for name, ys in series.items():
        pts = [px(xv, yv) for xv, yv in zip(x, ys) if yv is not None and math.isfinite(yv)]
        if len(pts) > 1:
            draw.line(pts, fill=colours[name], width=2, joint="curve")
        for xp, yp in pts:
            draw.ellipse([xp - 3, yp - 3, xp + 3, yp + 3], fill=colours[name])
    for name, r, offset in entries:
        y = label_y + 22 + r * 18
        x0 = left + offset
        draw.line([(x0, y), (x0 + 22, y)], fill=colours[name], width=3)
        draw.text((x0 + 28, y - 7), name, fill=TEXT, font=f)
    return canvas


def train_curve(train_log, key: str = "loss") -> tuple[list[int], list[float]]:
    """(steps, values) of `key` in a run's train_log.jsonl, by step. The last record of a step wins: a resumed
    run logs again the steps after its last checkpoint."""
    by_step = {}
    path = Path(train_log)
    for line in path.read_text().splitlines() if path.exists() else []:
        if line.strip():
            record = json.loads(line)
            if key in record:
                by_step[int(record["step"])] = record[key]
    steps = sorted(by_step)
    return steps, [by_step[s] for s in steps]


def loss_curve_png(train_log, key: str = "loss") -> bytes | None:
    """A small PNG of `key` against step from a run's train_log.jsonl, or None when no record has it."""
    steps, values = train_curve(train_log, key)
    if not steps:
        return None
    return small_png_bytes(line_plot(steps, {key: values}, f"training {key}", "step", key))


def markdown_table(header: list[str], rows: list[list]) -> str:
    def cell(v):
        if v is None:
            return "-"
        if isinstance(v, float):
            return "nan" if math.isnan(v) else f"{v:.4f}" if abs(v) < 1 else f"{v:.2f}"
        return str(v)

    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] * len(header)) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)
