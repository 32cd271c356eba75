"""One call, end to end: decode → speech activity → speakers → roles → words → analyses → record.

``analyze_file`` never raises for a bad recording: it returns an error record whose
message a QA lead can act on. Models are loaded once per process (``get_models``),
which is what a worker pool or a Dask worker wants.
"""

from __future__ import annotations

import logging
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from . import __version__
from .analysis.conduct import analyze_conduct
from .analysis.noise import analyze_noise
from .analysis.pii import redact_timeline
from .analysis.talk import analyze_talk
from .asr import SAMPLE_RATE, Transcriber
from .audio import AudioError, load_audio, probe_source
from .config import Config
from .diarize import backend_version, diarize_mono
from .diarize.assign import words_to_turns
from .record import AnalysisResult, CallRecord, Flag, error_record
from .roles import assign_roles, parse_channel_map
from .timeline import Interval, Speaker, Timeline, Turn, Word
from .vad import ChannelActivity, detect_speech

log = logging.getLogger("pipeline")

ProgressHook = Callable[[str, dict], None]  # (stage name, details)

# Longer calls run their stages one after the other even with two threads: two legs decoded side
# by side hold ~200 MB more at once (a 2 h stereo call: 2.17 GB peak vs 1.91 GB; the budget is 2 GB).
CONCURRENT_MAX_S = 3600.0


@dataclass
class Models:
    """Per-process model cache; each model loads on first use."""

    transcriber: Transcriber

    @classmethod
    def create(cls, config: Config, *, cpu_threads: int | None = None) -> "Models":
        return cls(transcriber=Transcriber(config.asr, cpu_threads=cpu_threads))


_MODELS: dict[tuple, Models] = {}


def get_models(config: Config, *, cpu_threads: int | None = None) -> Models:
    """The process's models for this ASR configuration (loaded once, reused for every call)."""
    key = (config.asr, cpu_threads)
    if key not in _MODELS:
        _MODELS[key] = Models.create(config, cpu_threads=cpu_threads)
    return _MODELS[key]


@dataclass
class _Stopwatch:
    elapsed: dict[str, float] = field(default_factory=dict)

    def stage(self, name: str):
        sw = self

        class _Ctx:
            def __enter__(self):
                self.t = time.perf_counter()

            def __exit__(self, *exc):
                sw.elapsed[name] = sw.elapsed.get(name, 0.0) + time.perf_counter() - self.t

        return _Ctx()


def analyze_file(path: str | Path, *, config: Config, call_id: str | None = None, channel_map: str | None = None,
                 metadata: dict | None = None, progress: ProgressHook | None = None,
                 models: Models | None = None) -> CallRecord:
    """Analyse one recording; always returns a record (``status`` ok or error)."""
    path = Path(path)
    call_id = call_id or path.stem
    metadata = dict(metadata or {})
    clock = _Stopwatch()
    started = time.perf_counter()
    notify = progress or (lambda stage, info: None)

    def provenance(extra: dict | None = None) -> dict:
        clock.elapsed["total"] = time.perf_counter() - started
        p = {"pipeline_version": __version__, "config_hash": config.hash,
             "processed_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
             "elapsed_s": dict(clock.elapsed)}
        p.update(extra or {})
        return p

    try:
        explicit_agent = parse_channel_map(channel_map)
        models = models or get_models(config)
        notify("decode", {"call_id": call_id})
        with clock.stage("decode"):
            audio = load_audio(path, config.audio)
        source = audio.source.to_dict()

        notify("vad", {"call_id": call_id})
        with clock.stage("vad"):
            activity = detect_speech(audio.samples, SAMPLE_RATE, config.vad)
        if not any(a.speech for a in activity):
            return error_record(call_id, source, "no_speech",
                                f"No speech was found in {audio.duration:.1f} s of audio (the recording holds only "
                                "noise, tones or music). Check that the right file and channels were recorded.",
                                provenance=provenance(), metadata=metadata)

        notify("transcribe", {"call_id": call_id})
        if audio.channels == 2:
            timeline = _stereo_timeline(audio, activity, models, clock)
        else:
            timeline = _mono_timeline(audio, activity, models, config, clock)
        if not timeline.turns:
            return error_record(call_id, source, "no_speech",
                                "Speech activity was found but no words could be recognised; the audio may be "
                                "music, tones or a language the model does not know.",
                                provenance=provenance(), metadata=metadata)

        with clock.stage("roles"):
            decision = assign_roles(timeline, config.roles, explicit_agent=explicit_agent)
            timeline = timeline.with_roles(decision.roles)

        # Redaction comes before anything else sees the text: nothing downstream holds raw PII.
        with clock.stage("pii"):
            timeline, pii = redact_timeline(timeline, config.pii)

        noise = None
        if config.noise.enabled:
            notify("noise", {"call_id": call_id})
            with clock.stage("noise"):
                noise = analyze_noise(audio, timeline, activity, config.noise)

        notify("analyze", {"call_id": call_id})
        with clock.stage("analyses"):
            metrics, flags = run_analyses(timeline, config, noise=noise, pii=pii)

        record = CallRecord(
            call_id=call_id, status="ok", source=source, timeline=timeline,
            role_assignment=decision.to_dict(), metrics=metrics, flags=flags, metadata=metadata,
        )
        record.provenance = provenance({
            "models": {"asr": models.transcriber.provenance(), "vad": config.vad.backend,
                       "diarization": "one speaker per channel" if audio.channels == 2
                       else backend_version(config.diarization)},
            "warnings": list(audio.warnings),
            "channel_map": channel_map,
        })
        notify("done", {"call_id": call_id})
        return record
    except AudioError as e:
        return error_record(call_id, probe_source(path), e.kind, e.message, provenance=provenance(),
                            metadata=metadata)
    except ValueError as e:  # bad per-call settings (e.g. a channel map naming a channel the call lacks)
        return error_record(call_id, probe_source(path), "bad_settings", str(e), provenance=provenance(),
                            metadata=metadata)
    except Exception as e:  # a bug or a broken model: one call fails, the batch goes on
        log.error("call %s failed:\n%s", call_id, traceback.format_exc())
        return error_record(call_id, probe_source(path), "internal",
                            f"callqa failed on this call ({type(e).__name__}: {e}). This is a bug or a broken "
                            "installation; the log has the traceback.", provenance=provenance(), metadata=metadata)


def run_analyses(timeline: Timeline, config: Config, *, noise: AnalysisResult | None = None,
                 pii: AnalysisResult | None = None) -> tuple[dict, list[Flag]]:
    """Every analysis over a (redacted) timeline; ``noise``/``pii`` come from stages that need audio/raw text.

    ``callqa reanalyze`` calls this on stored timelines, passing the stored noise and pii results.
    """
    talk = analyze_talk(timeline, config.talk)
    metrics = dict(talk.metrics)
    flags = list(talk.flags)
    if config.conduct.enabled:
        conduct = analyze_conduct(timeline, config.conduct)
        metrics["conduct"] = conduct.metrics
        flags.extend(conduct.flags)
    for name, result in (("noise", noise), ("pii", pii)):
        if result is not None:
            metrics[name] = result.metrics
            flags.extend(result.flags)
    return metrics, flags


def _turns_from_regions(speaker: str, regions: list[Interval], words: list[Word]) -> list[Turn]:
    """One turn per speech region that holds words; regions without words (noise, music) are dropped."""
    turns = []
    j = 0
    for iv in regions:
        mine = []
        while j < len(words) and (words[j].start + words[j].end) / 2 < iv.end:
            if (words[j].start + words[j].end) / 2 >= iv.start - 0.05:
                mine.append(words[j])
            j += 1
        if mine:
            turns.append(Turn(speaker=speaker, start=min(iv.start, mine[0].start), end=max(iv.end, mine[-1].end),
                              words=tuple(mine)))
    return turns


def _stereo_timeline(audio, activity: list[ChannelActivity], models: Models, clock: _Stopwatch) -> Timeline:
    speakers = (Speaker("left", channel=0), Speaker("right", channel=1))
    with clock.stage("asr"):
        words = models.transcriber.transcribe_channels([(audio.channel(a.channel), a.speech) for a in activity],
                                                       concurrent=audio.duration <= CONCURRENT_MAX_S)
    turns: list[Turn] = []
    for spk, act, leg_words in zip(speakers, activity, words):
        turns.extend(_turns_from_regions(spk.id, act.speech, leg_words))
    return Timeline(duration=audio.duration, speakers=speakers, turns=tuple(turns))


def _mono_timeline(audio, activity: list[ChannelActivity], models: Models, config: Config,
                   clock: _Stopwatch) -> Timeline:
    signal = audio.channel(0)
    speech = activity[0].speech
    if models.transcriber.streams < 2 or audio.duration > CONCURRENT_MAX_S:
        with clock.stage("asr"):
            words = models.transcriber.transcribe_regions(signal, speech)
        with clock.stage("diarization"):
            segments = diarize_mono(signal, SAMPLE_RATE, speech, config.diarization)
    else:  # the diarizer on one thread beside the ASR: a second decode thread would add only ~10 %
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(1) as pool:
            started = time.perf_counter()
            diarized = pool.submit(diarize_mono, signal, SAMPLE_RATE, speech, config.diarization)
            with clock.stage("asr"):
                words = models.transcriber.transcribe_regions(signal, speech)
            segments = diarized.result()
            # Wall time the diarizer added after the ASR finished (its own time overlaps the ASR).
            clock.elapsed["diarization"] = max(0.0, time.perf_counter() - started - clock.elapsed["asr"])
    turns = words_to_turns(words, segments)
    ids = sorted({s.speaker for s in segments} | {t.speaker for t in turns})
    return Timeline(duration=audio.duration, speakers=tuple(Speaker(i) for i in ids), turns=tuple(turns))
