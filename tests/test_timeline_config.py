"""Timeline/record round trips and the config contract."""

from __future__ import annotations

import dataclasses
import tomllib

import pytest

from pipeline.config import DEFAULT_CONFIG_PATH, Config, load_config
from pipeline.record import CallRecord, Flag
from pipeline.timeline import Interval, Speaker, Timeline, Turn, Word, complement, intersect, merge_intervals


def test_interval_algebra():
    ivs = [Interval(0, 1), Interval(1.2, 2), Interval(5, 6)]
    assert merge_intervals(ivs, max_gap=0.3) == [Interval(0, 2), Interval(5, 6)]
    assert complement(ivs, start=0, end=7) == [Interval(1, 1.2), Interval(2, 5), Interval(6, 7)]
    assert intersect([Interval(0, 3)], [Interval(2, 5), Interval(1, 1.5)]) == [Interval(1, 1.5), Interval(2, 3)]


def test_record_round_trip():
    tl = Timeline(duration=10.0, speakers=(Speaker("left", "agent", 0), Speaker("right", "customer", 1)),
                  turns=(Turn("right", 2.0, 3.0, "customer", (Word(2.0, 2.5, "hi"),)),
                         Turn("left", 0.0, 1.5, "agent", (Word(0.1, 0.6, "hello"), Word(0.7, 1.2, "there")))))
    assert [t.start for t in tl.turns] == [0.0, 2.0]  # time-ordered whatever the input order
    rec = CallRecord(call_id="c1", status="ok", source={"path": "x.wav", "duration_s": 10.0}, timeline=tl,
                     flags=[Flag("dead_air", "medium", 1.5, 2.0, "agent", "quiet")], metrics={"a": 1})
    back = CallRecord.from_dict(rec.to_dict())
    assert back.to_dict() == rec.to_dict()
    assert back.timeline.turns[0].transcript == "hello there"


def test_flag_validation():
    with pytest.raises(ValueError, match="severity"):
        Flag("x", "urgent", 0, 1, "agent", "e")
    with pytest.raises(ValueError, match="before start"):
        Flag("x", "low", 2, 1, "agent", "e")


def _fields(cls):
    return {f.name for f in dataclasses.fields(cls)}


def test_default_toml_lists_every_setting_of_every_section():
    toml = tomllib.loads(DEFAULT_CONFIG_PATH.read_text())
    for section in dataclasses.fields(Config):
        cls = section.type if isinstance(section.type, type) else type(getattr(Config(), section.name))
        assert section.name in toml, f"[{section.name}] missing from config/default.toml"
        assert set(toml[section.name]) == _fields(cls), f"[{section.name}] keys differ from {cls.__name__}"


def test_default_toml_comments_every_key():
    """Each key carries its unit and reason: on its line, or in a comment right above it."""
    lines = DEFAULT_CONFIG_PATH.read_text().splitlines()
    for i, line in enumerate(lines):
        if "=" in line and line[:1].isalpha():
            above = lines[i - 1].lstrip() if i else ""
            assert "#" in line or above.startswith("#"), f"no unit/reason comment: {line}"


def test_unknown_and_mistyped_settings_are_named(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[talk]\ndead_air_seconds = 5\n")
    with pytest.raises(ValueError, match="dead_air_seconds"):
        load_config(bad)
    bad.write_text("[talk]\ndead_air_s = 'ten'\n")
    with pytest.raises(ValueError, match="talk.dead_air_s must be a number"):
        load_config(bad)
    bad.write_text("[vad]\nbackend = 'magic'\n")
    with pytest.raises(ValueError, match="vad.backend"):
        load_config(bad)


def test_overrides_change_the_config_hash():
    a = load_config()
    b = load_config(overrides={"talk": {"dead_air_s": 12.0}})
    assert b.talk.dead_air_s == 12.0 and a.hash != b.hash and a.hash == load_config().hash
