"""Turn core results into what the Dagster UI renders: small inline images and markdown tables."""
from __future__ import annotations

import base64


def image_markdown(png: bytes, alt: str) -> str:
    """Markdown with the PNG inline, so the asset page shows it without a file server."""
    return f"![{alt}](data:image/png;base64,{base64.b64encode(png).decode()})"


def metrics_table_markdown(metrics: dict) -> str:
    """PSNR per horizon, one column per model variant or baseline (from metrics.json's shape)."""
    from ahriuwu_core.evaluate import series_label

    names = [n for n in metrics["psnr"] if metrics["psnr"][n] is not None]
    header = [series_label(metrics, n) for n in names]
    rows = ["| horizon | " + " | ".join(header) + " | action gap (dB) |", "|" + "---|" * (len(names) + 2)]
    gap = metrics.get("action_gap_db") or [float("nan")] * len(metrics["horizons"])
    for i, h in enumerate(metrics["horizons"]):
        cells = [f"{metrics['psnr'][n][i]:.2f}" for n in names]
        rows.append(f"| {h} | " + " | ".join(cells) + f" | {gap[i]:.2f} |")
    return f"PSNR (dB) per horizon on held-out videos, {metrics.get('clips')} clips\n\n" + "\n".join(rows)
