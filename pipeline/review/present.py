"""Turning a stored record's metrics and flag details into short, display-ready rows (pure)."""

from __future__ import annotations

from .timeline_view import fmt_time


def _num(v: object) -> float | None:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def _per_role(d: object, fmt) -> str | None:
    if not isinstance(d, dict):
        return None
    parts = [f"{role} {fmt(_num(d.get(role)))}" for role in ("agent", "customer") if _num(d.get(role)) is not None]
    return " · ".join(parts) or None


def metric_glance(metrics: dict) -> list[tuple[str, str]]:
    """The call's key numbers, in a fixed order; missing metrics are left out."""
    rows: list[tuple[str, str | None]] = [
        ("Talk ratio", _per_role(metrics.get("talk_ratio"), lambda v: f"{100 * v:.0f}%")),
        ("Talk time", _per_role(metrics.get("talk_time_s"), lambda v: f"{v:.0f} s")),
    ]
    sil = metrics.get("silence") or {}
    if _num(sil.get("total_s")) is not None:
        rows.append(("Silence", f"{sil['total_s']:.0f} s total · longest {_num(sil.get('longest_s')) or 0:.1f} s"
                                f" · {sil.get('count_over_threshold', 0)} over {sil.get('threshold_s', '?')} s"))
    ot = metrics.get("overtalk") or {}
    if _num(ot.get("total_s")) is not None:
        rows.append(("Overtalk", f"{ot['total_s']:.1f} s"))
        rows.append(("Interruptions", _per_role(ot.get("interruptions"), lambda v: f"{v:.0f}")))
    mono = metrics.get("monologues") or {}
    rows.append(("Longest monologue", _per_role(mono.get("longest_s"), lambda v: f"{v:.0f} s")))
    rows.append(("Words / minute", _per_role(metrics.get("words_per_minute"), lambda v: f"{v:.0f}")))
    rows.append(("Questions", _per_role(metrics.get("questions"), lambda v: f"{v:.0f}")))
    rows.extend(_noise_rows(metrics.get("noise")))
    return [(k, v) for k, v in rows if v]


NOISE_PICKS = (("snr_db", "SNR {:.0f} dB"), ("noise_floor_dbfs", "floor {:.0f} dBFS"),
               ("background_speech_share", "background speech {:.0%}"), ("bak_mos", "BAK {:.1f}"))


def _noise_rows(noise: object) -> list[tuple[str, str]]:
    """Per side (``by_role``, else any per-key blocks): SNR, noise floor, background speech, BAK."""
    if not isinstance(noise, dict):
        return []
    blocks = noise.get("by_role") if isinstance(noise.get("by_role"), dict) else {
        k: v for k, v in noise.items() if isinstance(v, dict) and k not in ("method", "overall")}
    rows = []
    for side, m in blocks.items():
        if isinstance(m, dict):
            parts = [fmt.format(m[k]) for k, fmt in NOISE_PICKS if _num(m.get(k)) is not None]
            if parts:
                rows.append((f"Noise ({side})", " · ".join(parts)))
    return rows


def detail_rows(detail: dict) -> list[dict]:
    """A flag's detail as rows: ``{label, text, seek}``; timed parts (start/end) become seek buttons."""
    rows: list[dict] = []
    for key, val in (detail or {}).items():
        items = val if isinstance(val, list) else [val]
        for item in items[:10]:
            if isinstance(item, dict) and _num(item.get("start")) is not None:
                text = item.get("text") or item.get("evidence") or item.get("quote") or ""
                span = f"{fmt_time(item['start'])}–{fmt_time(item.get('end', item['start']))}"
                # seek to the matched words when the analysis says where they are, else the turn start
                seek = _num(item.get("match_start"))
                rows.append({"label": key, "text": f"{span} {text}".strip(),
                             "seek": seek if seek is not None else float(item["start"])})
            elif item is None:
                rows.append({"label": key, "text": "–", "seek": None})
            elif isinstance(item, (str, int, float, bool)):
                rows.append({"label": key, "text": str(item), "seek": None})
            else:
                import json

                rows.append({"label": key, "text": json.dumps(item, ensure_ascii=False)[:200], "seek": None})
    return rows
