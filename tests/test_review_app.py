"""Review app over HTTP (in-process client): filters, call page, range audio, verdicts, sessions."""

from __future__ import annotations

import io
from markupsafe import escape as html_escape
import re
import sqlite3
import time

import pytest
import soundfile as sf
from fastapi.testclient import TestClient

from pipeline import store
from pipeline.review import queries
from pipeline.review.app import create_app
from pipeline.review.options import options_from_dict
from pipeline.review.synthetic import build_demo, bulk_records
from pipeline.review.timeline_view import build_view


@pytest.fixture()
def demo(tmp_path):
    return build_demo(tmp_path)


def signed_in(demo, **overrides) -> TestClient:
    client = TestClient(create_app(demo["db"], options_from_dict({**demo["options"], **overrides})))
    r = client.post("/login", data={"username": demo["user"], "password": demo["password"]}, follow_redirects=False)
    assert r.status_code == 303 and "callqa_session" in r.cookies
    return client


def fid_of(demo, call_id: str, ftype: str) -> str:
    """The store's id of a call's flag of ``ftype`` (computed, not hard-coded)."""
    flag = next(f for f in demo["records"][call_id]["flags"] if f["type"] == ftype)
    return store.flag_id(call_id, flag)


def csrf_of(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def flag_rows(html: str) -> list[str]:
    body = html.split('id="flag-table"', 1)[1]
    return re.findall(r'<td class="type">([^<]+)</td>', body)


def test_refuses_to_start_without_a_way_to_sign_in(demo):
    with pytest.raises(ValueError, match="hash-password"):
        create_app(demo["db"], options_from_dict({"recording_roots": [str(demo["root"])]}))


def test_plain_password_in_config_is_rejected():
    with pytest.raises(ValueError, match="review.users.bob"):
        options_from_dict({"users": {"bob": "hunter2"}})


def test_wrong_password_is_refused(demo):
    client = TestClient(create_app(demo["db"], options_from_dict(demo["options"])))
    r = client.post("/login", data={"username": demo["user"], "password": "nope"}, follow_redirects=False)
    assert r.status_code == 401 and "callqa_session" not in r.cookies
    r = client.post("/login", data={"username": "nobody", "password": demo["password"]}, follow_redirects=False)
    assert r.status_code == 401


def test_token_sign_in(demo):
    import hashlib

    opts = {"token_sha256": hashlib.sha256(b"s3cret-token").hexdigest(), "recording_roots": [str(demo["root"])]}
    client = TestClient(create_app(demo["db"], options_from_dict(opts)))
    assert client.post("/login", data={"token": "wrong"}, follow_redirects=False).status_code == 401
    r = client.post("/login", data={"token": "s3cret-token"}, follow_redirects=False)
    assert r.status_code == 303
    assert client.get("/flags").status_code == 200


def test_sessions_expire(demo):
    client = signed_in(demo, session_lifetime_min=1 / 60)  # 1 s
    assert client.get("/flags", follow_redirects=False).status_code == 200
    time.sleep(2.2)
    r = client.get("/flags", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/login")


def test_tampered_cookie_is_not_a_session(demo):
    client = signed_in(demo)
    cookie = client.cookies["callqa_session"]
    sig_at = cookie.rindex(".") + 1  # flip a character in the middle of the signature
    tampered = cookie[:sig_at + 3] + ("A" if cookie[sig_at + 3] != "A" else "B") + cookie[sig_at + 4:]
    client.cookies.clear()
    client.cookies.set("callqa_session", tampered)
    assert client.get("/flags", follow_redirects=False).status_code == 303


def test_security_headers(demo):
    r = signed_in(demo).get("/flags")
    assert "script-src 'self'" in r.headers["content-security-policy"]
    assert r.headers["x-frame-options"] == "DENY"
    assert r.headers["cache-control"] == "no-store"


def test_flag_list_filters_match_the_store(demo):
    client = signed_in(demo)
    conn = store.connect(demo["db"], readonly=True)
    all_types = sorted(r[0] for r in conn.execute("SELECT type FROM flags"))
    assert sorted(flag_rows(client.get("/flags?state=all").text)) == all_types
    html = client.get("/flags?type=refusal_then_continue&state=all").text
    n = conn.execute("SELECT COUNT(*) FROM flags WHERE type='refusal_then_continue'").fetchone()[0]
    assert flag_rows(html) == ["refusal_then_continue"] * n and n == 2
    agent = flag_rows(client.get("/flags?agent=A002&state=all").text)
    assert agent == ["pitch_before_resolution"]
    assert flag_rows(client.get("/flags?campaign=support&state=all").text) == ["noisy_background"]
    assert flag_rows(client.get("/flags?severity=low&state=all").text).count("dead_air") == 1
    dated = flag_rows(client.get("/flags?date_from=2026-11-19&date_to=2026-11-20&state=all").text)
    assert sorted(dated) == ["noisy_background", "pitch_before_resolution"]
    sev = client.get("/flags?state=all&sort=severity").text
    ranks = [queries.SEVERITY_RANK[s] for s in re.findall(r'<tr class="sev-(\w+)">', sev)]
    assert ranks == sorted(ranks, reverse=True) and len(ranks) == len(all_types)
    assert client.get("/flags?date_from=yesterday").status_code == 400


def test_counts_per_type_and_pagination(tmp_path):
    db = tmp_path / "bulk.db"
    conn = store.connect(db)
    for rec in bulk_records(40, flags_per_call=3):
        store.save_record(conn, rec)
    conn.commit()
    flt = queries.FlagFilter(state="all")
    page = queries.list_flags(conn, flt, page=1, page_size=7)
    assert page.total == 120 and page.pages == 18 and len(page.rows) == 7
    assert sum(c["n"] for c in page.counts) == 120
    seen = set()
    for p in range(1, page.pages + 1):
        seen |= {r["flag_id"] for r in queries.list_flags(conn, flt, page=p, page_size=7).rows}
    assert len(seen) == 120  # stable order: every flag exactly once across pages
    ftype = page.counts[0]["type"]
    typed = queries.list_flags(conn, queries.FlagFilter(state="all", type=ftype), page=1, page_size=500)
    assert typed.total == page.counts[0]["n"] and {r["type"] for r in typed.rows} == {ftype}
    # counts ignore the type filter (so the table still shows every type while one is selected)
    assert sum(c["n"] for c in typed.counts) == 120


def test_call_page_shows_timeline_transcript_evidence_metrics(demo):
    client = signed_in(demo)
    rec = demo["records"]["call-stereo-01"]
    html = client.get("/calls/call-stereo-01").text
    assert '<audio id="player"' in html and 'src="/audio/0/2026-11-21/call-stereo-01.wav"' in html
    for lane in ("Agent (S0, ch 0)", "Customer (S1, ch 1)", "Silence", "Overtalk", "Noise", "Flags"):
        assert lane in html
    for seg in rec["segments"]:
        assert f'data-seek="{seg["start"]:.3f}"' in html
    assert "[PHONE]" in html  # redacted text shown as stored
    for flag in rec["flags"]:  # evidence beside each flag (HTML-escaped, as stored)
        assert str(html_escape(flag["evidence"])) in html
    assert "Talk ratio" in html and "Overtalk" in html
    mono = client.get("/calls/call-mono-02").text
    assert "Agent (S0)" in mono and "mono" in mono
    outside = client.get("/calls/call-outside-04").text
    assert "<audio" not in outside and "Audio not available" in outside
    assert client.get("/calls/no-such-call").status_code == 404


def test_audio_range_requests(demo):
    client = signed_in(demo)
    path = demo["root"] / "2026-11-21" / "call-stereo-01.wav"
    data = path.read_bytes()
    url = "/audio/0/2026-11-21/call-stereo-01.wav"
    full = client.get(url)
    assert full.status_code == 200 and full.content == data and full.headers["accept-ranges"] == "bytes"
    part = client.get(url, headers={"Range": "bytes=100-199"})
    assert part.status_code == 206 and part.content == data[100:200]
    assert part.headers["content-range"] == f"bytes 100-199/{len(data)}"
    assert client.get(url, headers={"Range": "bytes=-50"}).content == data[-50:]
    assert client.get(url, headers={"Range": "bytes=1000-"}).content == data[1000:]
    head = client.head(url)
    assert head.status_code == 200 and int(head.headers["content-length"]) == len(data) and not head.content
    bad = client.get(url, headers={"Range": f"bytes={len(data) + 10}-"})
    assert bad.status_code == 416 and bad.headers["content-range"] == f"bytes */{len(data)}"


def test_mulaw_is_decoded_to_pcm_and_keeps_stereo(demo):
    client = signed_in(demo)
    src = demo["root"] / "2026-11-19" / "call-ulaw-03.wav"
    assert sf.info(str(src)).subtype == "ULAW"
    body = client.get("/audio/0/2026-11-19/call-ulaw-03.wav").content
    info = sf.info(io.BytesIO(body))
    assert info.subtype == "PCM_16" and info.channels == 2
    assert abs(info.duration - sf.info(str(src)).duration) < 0.01
    head = client.get("/audio/0/2026-11-19/call-ulaw-03.wav", headers={"Range": "bytes=0-43"})
    assert head.status_code == 206 and head.content == body[:44]


def test_verdicts_are_kept_with_who_and_when_and_history(demo, tmp_path):
    client = signed_in(demo)
    html = client.get("/calls/call-stereo-01").text
    fid = fid_of(demo, "call-stereo-01", "refusal_then_continue")
    r = client.post("/verdict", data={"csrf_token": csrf_of(html), "flag_id": fid, "verdict": "confirmed",
                                      "note": "clear repitch"}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/calls/call-stereo-01")
    # a fresh client (new session) sees it after reload
    again = signed_in(demo).get("/calls/call-stereo-01").text
    assert re.search(r'class="verdict confirmed">confirmed</span>\s*by supervisor at 20\d\d-', again)
    assert "clear repitch" in again
    client.post("/verdict", data={"csrf_token": csrf_of(html), "flag_id": fid, "verdict": "dismissed"})
    conn = sqlite3.connect(demo["db"])
    assert conn.execute("SELECT verdict, reviewer FROM reviews WHERE flag_id=?", (fid,)).fetchone() == (
        "dismissed", "supervisor")
    hist = [r[0] for r in conn.execute("SELECT verdict FROM review_log WHERE flag_id=? ORDER BY id", (fid,))]
    assert hist == ["confirmed", "dismissed"]
    open_rows = client.get("/flags?type=refusal_then_continue").text  # default state: open
    assert flag_rows(open_rows) == ["refusal_then_continue"] and "call-outside-04" in open_rows
    assert "call-stereo-01" not in open_rows.split('id="flag-table"')[1]
    assert flag_rows(client.get("/flags?state=dismissed").text) == ["refusal_then_continue"]
    client.post("/verdict", data={"csrf_token": csrf_of(html), "flag_id": fid, "verdict": "cleared"})
    assert conn.execute("SELECT COUNT(*) FROM reviews").fetchone()[0] == 0
    r = client.post("/verdict", data={"csrf_token": csrf_of(html), "flag_id": "nope:x:1", "verdict": "confirmed"})
    assert r.status_code == 404
    r = client.post("/verdict", data={"csrf_token": csrf_of(html), "flag_id": fid, "verdict": "maybe"})
    assert r.status_code == 400


def test_export_and_precision(demo, tmp_path):
    conn = store.connect(demo["db"])
    queries.ensure_review_tables(conn)
    queries.save_verdict(conn, fid_of(demo, "call-stereo-01", "refusal_then_continue"), "confirmed", reviewer="a",
                         note="x")
    queries.save_verdict(conn, fid_of(demo, "call-outside-04", "refusal_then_continue"), "dismissed", reviewer="b")
    queries.save_verdict(conn, fid_of(demo, "call-mono-02", "pitch_before_resolution"), "confirmed", reviewer="a")
    prec = queries.verdict_precision(conn)
    assert prec["refusal_then_continue"] == {"confirmed": 1, "dismissed": 1, "reviewed": 2, "precision": 0.5}
    assert prec["pitch_before_resolution"]["precision"] == 1.0
    assert queries.export_reviews(conn, tmp_path / "r.csv") == 3
    lines = (tmp_path / "r.csv").read_text().splitlines()
    assert lines[0].startswith("flag_id,call_id,type") and len(lines) == 4
    # a verdict outlives its flag (re-analysis dropped it): still exported, call/type from the flag id
    conn.execute("DELETE FROM flags WHERE call_id='call-mono-02'")
    conn.commit()
    rows = queries.reviews_for_export(conn)
    gone = next(r for r in rows if r["flag_id"].startswith("call-mono-02"))
    assert gone["flag_present"] is False and gone["type"] == "pitch_before_resolution"


def test_timeline_view_lanes():
    rec = {"duration_s": 20.0, "speakers": [{"id": "S0", "role": "agent"}, {"id": "S1", "role": "customer"}],
           "segments": [{"speaker": "S0", "role": "agent", "start": 0.0, "end": 5.0, "text": "a"},
                        {"speaker": "S1", "role": "customer", "start": 4.0, "end": 8.0, "text": "b"},
                        {"speaker": "S0", "role": "agent", "start": 15.0, "end": 16.0, "text": "c"}],
           "flags": [{"type": "noisy_background", "severity": "low", "start": 1.0, "end": 3.0, "evidence": ""}],
           "metrics": {}}
    lanes = {lane.key: lane for lane in build_view(rec, silence_min_s=2.0).lanes}
    assert [(i.start, i.end) for i in lanes["overtalk"].items] == [(4.0, 5.0)]
    assert [(i.start, i.end) for i in lanes["silence"].items] == [(8.0, 15.0), (16.0, 20.0)]
    assert [(i.start, i.end) for i in lanes["noise"].items] == [(1.0, 3.0)]
    assert len(lanes["speaker:S0"].items) == 2 and len(lanes["flags"].items) == 1


def test_counts_agree_with_a_plain_join_in_every_state(tmp_path):
    conn = store.connect(tmp_path / "bulk.db")
    queries.ensure_review_tables(conn)
    for rec in bulk_records(30, flags_per_call=3, seed=5):
        store.save_record(conn, rec)
    conn.commit()
    ids = [r[0] for r in conn.execute("SELECT flag_id FROM flags ORDER BY flag_id")]
    for i, fid in enumerate(ids[::4]):
        queries.save_verdict(conn, fid, "confirmed" if i % 3 else "dismissed", reviewer="t")
    agent = conn.execute("SELECT agent_id FROM flags LIMIT 1").fetchone()[0]
    for state in queries.STATES:
        for extra in ({}, {"agent": agent}, {"severity": "high"}, {"date_from": "2026-10-10"}):
            flt = queries.FlagFilter(state=state, **extra)
            where, args = flt.where()
            expect = conn.execute("SELECT COUNT(*) FROM flags f LEFT JOIN reviews r ON r.flag_id = f.flag_id"
                                  + where, args).fetchone()[0]
            page = queries.list_flags(conn, flt, page_size=1000)
            assert page.total == expect == len(page.rows), (state, extra)
            assert sum(c["n"] for c in page.counts) == expect


def test_error_record_and_unknown_speaker_pages_render(demo):
    conn = store.connect(demo["db"])
    store.save_record(conn, {"schema_version": "1.0", "call_id": "broken-05", "status": "error",
                             "error": {"kind": "decode_error", "message": "not an audio file"},
                             "source": {"path": "broken.wav"}, "speakers": [], "segments": [], "metrics": {},
                             "flags": [], "provenance": {"processed_at": "2026-11-22T01:00:00Z"}})
    rec = dict(demo["records"]["call-mono-02"], call_id="unk-06",
               speakers=[{"id": "spk0", "role": "unknown", "channel": None}])
    rec["segments"] = [dict(s, speaker="spk0", role="unknown") for s in rec["segments"]]
    store.save_record(conn, rec)
    conn.commit()
    client = signed_in(demo)
    html = client.get("/calls/broken-05").text
    assert "decode_error: not an audio file" in html and "No transcript." in html
    html = client.get("/calls/unk-06").text
    assert "Unknown (spk0)" in html and html.count('class="line role-unknown"') == len(rec["segments"])


def test_noise_lane_and_glance_read_the_noise_metrics_layout():
    from pipeline.review.present import metric_glance

    metrics = {"noise": {"overall": {"snr_db": 20.0}, "method": {"block_s": 2.0},
                         "by_role": {"agent": {"snr_db": 31.2, "noise_floor_dbfs": -60.4},
                                     "customer": {"snr_db": 9.0, "background_speech_share": 0.4,
                                                  "dropouts": {"count": 1, "times": [[3.0, 3.5]]}}}}}
    glance = dict(metric_glance(metrics))
    assert glance["Noise (agent)"] == "SNR 31 dB · floor -60 dBFS"
    assert glance["Noise (customer)"] == "SNR 9 dB · background speech 40%"
    assert not any("method" in k for k in glance)
    rec = {"duration_s": 10.0, "speakers": [], "segments": [], "metrics": metrics,
           "flags": [{"type": "poor_line_quality", "severity": "medium", "start": 6.0, "end": 7.0, "evidence": ""}]}
    lanes = {lane.key: lane for lane in build_view(rec).lanes}
    assert [(i.start, i.end) for i in lanes["noise"].items] == [(3.0, 3.5), (6.0, 7.0)]


def test_repeated_failed_sign_ins_are_locked_out(demo):
    client = TestClient(create_app(demo["db"], options_from_dict({**demo["options"], "login_max_failures": 3})))
    for _ in range(3):
        assert client.post("/login", data={"username": demo["user"], "password": "guess"}).status_code == 401
    r = client.post("/login", data={"username": demo["user"], "password": demo["password"]}, follow_redirects=False)
    assert r.status_code == 429 and "callqa_session" not in r.cookies  # even the right password, for a while


def test_removing_a_user_ends_their_sessions(demo):
    from pipeline.review.auth import hash_password

    key = {"secret_key": "fixed-key-so-cookies-survive-a-restart"}
    client = signed_in(demo, **key)
    assert client.get("/flags", follow_redirects=False).status_code == 200
    other = {"users": {"someone-else": hash_password("x", iterations=1000)}}
    restarted = TestClient(create_app(demo["db"], options_from_dict({**demo["options"], **key, **other})))
    restarted.cookies = client.cookies
    assert restarted.get("/flags", follow_redirects=False).status_code == 303
    kept = TestClient(create_app(demo["db"], options_from_dict({**demo["options"], **key})))
    kept.cookies = client.cookies  # same users, same key: the sign-in survives the restart
    assert kept.get("/flags", follow_redirects=False).status_code == 200


def test_flag_detail_rows_seek_to_the_matched_words():
    from pipeline.review.present import detail_rows

    rows = detail_rows({"refusal": {"start": 10.0, "end": 14.0, "text": "no thanks I am fine", "match": "no thanks",
                                    "match_start": 10.4}, "resolved_at": None, "repitches_in_call": 2})
    assert rows[0] == {"label": "refusal", "text": "0:10.0–0:14.0 no thanks I am fine", "seek": 10.4}
    assert rows[1]["text"] == "–" and rows[2] == {"label": "repitches_in_call", "text": "2", "seek": None}
