"""The call timeline picture: lanes computed once from a record, drawn as SVG (web) or PNG (plot).

Pure functions over the stored record: speaker lanes from the segments, silences as the
gaps between everyone's speech, overtalk as the overlap of different speakers' speech,
noise from noise flags (and any timed noise events in ``metrics.noise``), and the flags.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from html import escape

from ..timeline import Interval, complement, intersect, merge_intervals

ROLE_ORDER = {"agent": 0, "customer": 1, "unknown": 2}
COLORS = {
    "agent": "#2b6cb0", "customer": "#2f855a", "unknown": "#718096",
    "silence": "#cbd5e0", "overtalk": "#dd6b20", "noise": "#8b5e34",
    "high": "#c53030", "medium": "#d69e2e", "low": "#4a5568",
}
NOISE_FLAG_TYPES = ("noisy_background", "poor_line_quality")


@dataclass(frozen=True)
class Item:
    start: float
    end: float
    color: str
    title: str  # tooltip / legend text (already-redacted record text only)
    flag_id: str | None = None


@dataclass(frozen=True)
class Lane:
    key: str
    label: str
    items: tuple[Item, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class TimelineView:
    duration: float
    lanes: tuple[Lane, ...]


def fmt_time(t: object) -> str:
    """Seconds -> m:ss.s (h:mm:ss for long calls)."""
    if not isinstance(t, (int, float)) or isinstance(t, bool):  # missing (None / template Undefined)
        return "–"
    t = max(0.0, float(t))
    h, rem = divmod(t, 3600)
    m, s = divmod(rem, 60)
    return f"{int(h)}:{int(m):02d}:{s:04.1f}" if h else f"{int(m)}:{s:04.1f}"


def build_view(record: dict, *, flags: list[dict] | None = None, silence_min_s: float = 2.0) -> TimelineView:
    """Lanes for one call. ``flags`` (rows with flag_id) default to the record's own flags."""
    segments = [s for s in record.get("segments") or [] if float(s["end"]) > float(s["start"])]
    duration = float(record.get("duration_s") or (record.get("source") or {}).get("duration_s") or 0.0)
    duration = max([duration] + [float(s["end"]) for s in segments]) or 1.0
    roles = {sp["id"]: sp.get("role", "unknown") for sp in record.get("speakers") or []}
    channels = {sp["id"]: sp.get("channel") for sp in record.get("speakers") or []}
    speakers = sorted({s["speaker"] for s in segments} | set(roles),
                      key=lambda sid: (ROLE_ORDER.get(roles.get(sid, "unknown"), 3), sid))

    lanes: list[Lane] = []
    speech: dict[str, list[Interval]] = {}
    for sid in speakers:
        turns = [s for s in segments if s["speaker"] == sid]
        role = roles.get(sid) or (turns[0].get("role") if turns else "unknown") or "unknown"
        ch = channels.get(sid)
        label = f"{role.capitalize()} ({sid}{f', ch {ch}' if ch is not None else ''})"
        speech[sid] = [Interval(float(s["start"]), float(s["end"])) for s in turns]
        lanes.append(Lane(key=f"speaker:{sid}", label=label, items=tuple(
            Item(float(s["start"]), float(s["end"]), COLORS.get(role, COLORS["unknown"]),
                 f"{role} {fmt_time(s['start'])}–{fmt_time(s['end'])}: {_clip(s.get('text', ''))}")
            for s in turns)))

    everyone = merge_intervals(iv for ivs in speech.values() for iv in ivs)
    gaps = [g for g in complement(everyone, start=0.0, end=duration) if g.duration >= silence_min_s]
    lanes.append(Lane(key="silence", label="Silence", items=tuple(
        Item(g.start, g.end, COLORS["silence"], f"silence {g.duration:.1f} s at {fmt_time(g.start)}") for g in gaps)))

    over: list[Interval] = []
    sids = list(speech)
    for i, a in enumerate(sids):
        for b in sids[i + 1:]:
            over.extend(intersect(speech[a], speech[b]))
    lanes.append(Lane(key="overtalk", label="Overtalk", items=tuple(
        Item(o.start, o.end, COLORS["overtalk"], f"overtalk {o.duration:.1f} s at {fmt_time(o.start)}")
        for o in merge_intervals(over))))

    flag_rows = flags if flags is not None else [
        {"type": f["type"], "severity": f["severity"], "start_s": f["start"], "end_s": f["end"],
         "evidence": f.get("evidence", ""), "flag_id": None} for f in record.get("flags") or []]
    noise = [Interval(float(f["start_s"]), float(f["end_s"])) for f in flag_rows if f["type"] in NOISE_FLAG_TYPES]
    noise += _noise_events((record.get("metrics") or {}).get("noise"))
    lanes.append(Lane(key="noise", label="Noise", items=tuple(
        Item(n.start, max(n.end, n.start + 0.2), COLORS["noise"], f"noise {fmt_time(n.start)}–{fmt_time(n.end)}")
        for n in merge_intervals(noise))))

    lanes.append(Lane(key="flags", label="Flags", items=tuple(
        Item(float(f["start_s"]), max(float(f["end_s"]), float(f["start_s"]) + 0.3),
             COLORS.get(f["severity"], COLORS["low"]),
             f"{f['type']} ({f['severity']}) {fmt_time(f['start_s'])}–{fmt_time(f['end_s'])}",
             flag_id=f.get("flag_id"))
        for f in flag_rows)))
    return TimelineView(duration=duration, lanes=tuple(lanes))


def _noise_events(noise: object, depth: int = 0) -> list[Interval]:
    """Timed noise events anywhere in metrics.noise ({start, end} dicts, ``times: [[a, b]]``)."""
    out: list[Interval] = []
    if depth > 4:
        return out
    if isinstance(noise, dict):
        if isinstance(noise.get("start"), (int, float)) and isinstance(noise.get("end"), (int, float)):
            out.append(Interval(float(noise["start"]), float(noise["end"])))
        else:
            for k, v in noise.items():
                if k == "times" and isinstance(v, list):  # [[start, end], ...] (e.g. dropouts)
                    out.extend(Interval(float(t[0]), float(t[1])) for t in v
                               if isinstance(t, (list, tuple)) and len(t) == 2
                               and all(isinstance(x, (int, float)) for x in t))
                else:
                    out.extend(_noise_events(v, depth + 1))
    elif isinstance(noise, list):
        for v in noise:
            out.extend(_noise_events(v, depth + 1))
    return out


def _clip(text: str, n: int = 120) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= n else text[: n - 1] + "…"


# --- SVG ---------------------------------------------------------------------------------------

SVG_W, LABEL_W, LANE_H, LANE_GAP, AXIS_H = 1000, 150, 18, 6, 22


def render_svg(view: TimelineView) -> str:
    """Inline SVG; every shape carries ``data-seek`` so a click seeks the audio (see static/call.js)."""
    plot_w = SVG_W - LABEL_W - 22  # room for the last tick label
    scale = plot_w / view.duration
    height = AXIS_H + len(view.lanes) * (LANE_H + LANE_GAP) + 4
    out = [f'<svg id="timeline" class="timeline" viewBox="0 0 {SVG_W} {height}" role="img" '
           f'aria-label="call timeline" data-x0="{LABEL_W}" data-scale="{scale:.6f}" '
           f'data-duration="{view.duration:.3f}" xmlns="http://www.w3.org/2000/svg">']
    for t in _ticks(view.duration):
        x = LABEL_W + t * scale
        out.append(f'<line x1="{x:.1f}" y1="{AXIS_H - 4}" x2="{x:.1f}" y2="{height}" class="tick"/>'
                   f'<text x="{x:.1f}" y="{AXIS_H - 8}" class="tick-label" text-anchor="middle">'
                   f'{escape(fmt_time(t).removesuffix(".0"))}</text>')
    for i, lane in enumerate(view.lanes):
        y = AXIS_H + i * (LANE_H + LANE_GAP)
        out.append(f'<rect x="{LABEL_W}" y="{y}" width="{plot_w}" height="{LANE_H}" class="lane-bg"/>'
                   f'<text x="{LABEL_W - 6}" y="{y + LANE_H - 5}" text-anchor="end" class="lane-label">'
                   f'{escape(lane.label)}</text>')
        for it in lane.items:
            x = LABEL_W + it.start * scale
            w = max(1.5, (it.end - it.start) * scale)
            fid = f' data-flag-id="{escape(it.flag_id)}"' if it.flag_id else ""
            out.append(f'<rect x="{x:.2f}" y="{y + 1}" width="{w:.2f}" height="{LANE_H - 2}" fill="{it.color}" '
                       f'class="seg seg-{escape(lane.key.split(":")[0])}" data-seek="{it.start:.3f}"{fid}>'
                       f'<title>{escape(it.title)}</title></rect>')
    out.append(f'<line id="playhead" x1="{LABEL_W}" y1="{AXIS_H - 4}" x2="{LABEL_W}" y2="{height}" '
               'class="playhead"/></svg>')
    return "".join(out)


def _ticks(duration: float) -> list[float]:
    step = next((s for s in (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600) if duration / s <= 12), 7200)
    return [float(t) for t in range(0, int(duration) + 1, step)]


# --- PNG (callqa plot) -----------------------------------------------------------------------------

def render_png(view: TimelineView, out_path, *, title: str = "", dpi: int = 100) -> None:
    """The same lanes drawn with matplotlib (Agg, no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(view.lanes)
    fig, ax = plt.subplots(figsize=(12, 0.45 * n + 1.2), dpi=dpi)
    try:
        for i, lane in enumerate(view.lanes):
            y = n - 1 - i
            if lane.items:
                ax.broken_barh([(it.start, max(it.end - it.start, view.duration / 800)) for it in lane.items],
                               (y + 0.1, 0.8), facecolors=[it.color for it in lane.items])
            if lane.key == "flags":  # name each flag so the picture reads on paper
                for it in lane.items:
                    ax.text(it.start + view.duration / 400, y + 0.5, it.title.split(" ")[0], fontsize=7,
                            va="center", ha="left", color="white", clip_on=True)
        ax.set_yticks([n - 1 - i + 0.5 for i in range(n)], [lane.label for lane in view.lanes])
        ax.set_ylim(0, n)
        ax.set_xlim(0, view.duration)
        ax.set_xlabel("time (s)")
        ax.grid(axis="x", alpha=0.3)
        if title:
            ax.set_title(title, loc="left", fontsize=10)
        fig.tight_layout()
        fig.savefig(out_path, format="png")
    finally:
        plt.close(fig)
