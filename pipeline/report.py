"""Turn core results into what the Dagster UI renders: small inline images and markdown tables."""

from __future__ import annotations

import base64

from dagster import MetadataValue, TableColumn, TableRecord, TableSchema


def image_markdown(png: bytes, alt: str) -> str:
    """Markdown with the PNG inline, so the asset page shows it without a file server."""
    return f"![{alt}](data:image/png;base64,{base64.b64encode(png).decode()})"


def loss_curve_markdown(train_log) -> str | None:
    """The run's training loss against step as an inline picture; None before anything was logged."""
    from ahriuwu_core.images.pictures import loss_curve_png

    png = loss_curve_png(train_log)
    return image_markdown(png, "training loss vs step") if png else None


def metrics_table_markdown(metrics: dict, split: str) -> str:
    """One split's PSNR per horizon, one column per model variant or baseline (from metrics.json's shape)."""
    from ahriuwu_core.eval.report import series_label

    m = metrics[split]
    names = [n for n in m["psnr"] if m["psnr"][n] is not None]
    header = [series_label(m, n) for n in names]
    rows = ["| horizon | " + " | ".join(header) + " | action gap (dB) |", "|" + "---|" * (len(names) + 2)]
    gap = m.get("action_gap_db") or [float("nan")] * len(m["horizons"])
    for i, h in enumerate(m["horizons"]):
        cells = [f"{m['psnr'][n][i]:.2f}" for n in names]
        rows.append(f"| {h} | " + " | ".join(cells) + f" | {gap[i]:.2f} |")
    return (
        f"**{split}**: PSNR (dB) per horizon on the {split} videos ({', '.join(m['videos'])}), "
        f"{m.get('clips')} clips\n\n" + "\n".join(rows)
    )


def metrics_table(metrics: dict, split: str) -> MetadataValue:
    """One split's PSNR-per-horizon figures as a Dagster table (sortable in the UI, typed columns); a series
    covering fewer clips says so in its column description."""
    from ahriuwu_core.eval.report import series_label

    m = metrics[split]
    names = [n for n in m["psnr"] if m["psnr"][n] is not None]
    gap = m.get("action_gap_db") or [None] * len(m["horizons"])
    columns = [TableColumn("horizon", "int", description="frames predicted past the context")]
    columns += [
        TableColumn(n, "float", description=f"PSNR (dB) on the {split} videos, {series_label(m, n)}") for n in names
    ]
    columns.append(TableColumn("action_gap_db", "float", description="PSNR gain from the true actions (dB)"))
    rows = [
        TableRecord(
            {
                "horizon": int(h),
                **{n: float(m["psnr"][n][i]) for n in names},
                "action_gap_db": None if gap[i] is None else float(gap[i]),
            }
        )
        for i, h in enumerate(m["horizons"])
    ]
    return MetadataValue.table(rows, schema=TableSchema(columns))
