"""Sales conduct analysis on hand-built timelines (spaCy model, no audio)."""

from __future__ import annotations

import dataclasses

import jsonschema
import pytest

from pipeline.analysis.conduct import analyze_conduct
from pipeline.analysis.conduct_eval import timeline_from_turns
from pipeline.config import load_config
from pipeline.record import record_schema
from pipeline.timeline import Speaker, Timeline, Turn, Word

OPTS = load_config().conduct


def run(*turns, options=OPTS):
    return analyze_conduct(timeline_from_turns(turns), options)


def flag_types(result):
    return [f.type for f in result.flags]


def A(text):
    return ("agent", text)


def C(text):
    return ("customer", text)


# --- refusal_then_continue -------------------------------------------------

def test_refusal_then_another_pitch_is_flagged_with_both_lines_and_times():
    tl = timeline_from_turns([
        C("hi my voicemail stopped working"),
        A("ive reset it can you try now"),
        C("yes it works now thanks"),
        A("great while i have you we have a fiber upgrade for just ten dollars more a month"),
        C("no thanks im fine"),
        A("ok what about adding a second line its only twenty dollars"),
        C("no"),
    ])
    r = analyze_conduct(tl, OPTS)
    (flag,) = [f for f in r.flags if f.type == "refusal_then_continue"]
    refusal_turn, pitch_turn = tl.turns[4], tl.turns[5]
    # Evidence quotes both parties with their times; detail carries the turns and the matched words.
    assert "no thanks im fine" in flag.evidence and "what about adding a second line" in flag.evidence
    assert flag.detail["refusal"]["start"] == refusal_turn.start
    assert flag.detail["pitch"]["start"] == pitch_turn.start
    assert flag.detail["refusal"]["text"] == refusal_turn.transcript
    assert flag.detail["pitch"]["text"] == pitch_turn.transcript
    # Match times are the words' own times.
    assert flag.detail["refusal"]["match_start"] == refusal_turn.words[0].start
    assert pitch_turn.start <= flag.detail["pitch"]["match_start"] < pitch_turn.end
    assert flag.start == refusal_turn.words[0].start and flag.end <= pitch_turn.end
    assert flag.role == "agent"
    assert "fiber upgrade" in flag.detail["refused_offer"]["text"]
    assert "pitch_before_resolution" not in flag_types(r)


def test_refusal_respected_is_not_flagged_and_counted_as_respected():
    r = run(C("hi i cant log in"), A("ive sent you a reset link"), C("ok im in now"),
            A("would it be alright if i mentioned our annual plan it saves twenty percent"),
            C("nah not right now"), A("no worries have a good evening"))
    assert flag_types(r) == []
    assert r.metrics["counts"]["refusals"] == 1
    assert r.metrics["counts"]["refusals_respected"] == 1
    assert r.metrics["permission_before_first_pitch"] is True


def test_a_proposal_of_something_new_is_an_offer_without_a_product_word():
    # "scarf" is in no product list: proposing a thing the customer never mentioned makes it an offer.
    r = run(C("can you check if my order shipped"), A("it shipped today"), C("great"),
            A("would you like to add the matching scarf"), C("no thanks"),
            A("it would look amazing with the coat and its almost sold out"), C("no"), A("ok enjoy"))
    assert flag_types(r) == ["refusal_then_continue"]
    assert r.metrics["refusals"][0]["text"] == "no thanks"


@pytest.mark.parametrize("proposal, reply", [
    ("would you like the tracking number", "no i have it thanks"),  # a service item
    ("would you like a new charger sent out", "no i will buy one in town"),  # the customer's own topic
])
def test_a_proposal_of_service_or_of_the_customers_own_topic_is_no_offer(proposal, reply):
    r = run(C("my charger stopped working"), A("sorry to hear that ive logged it"), C("thanks"),
            A(proposal), C(reply), A("okay just so you know the store opens at nine tomorrow morning"))
    assert r.metrics["counts"]["refusals"] == 0 and flag_types(r) == []


def test_offering_the_customers_own_order_by_email_is_no_pitch():
    # Real SpokenWOZ call through tiny.en: "order" is the booking, not a verb of buying.
    r = run(C("hi im looking for a restaurant"), A("there are three in the centre which area do you prefer"),
            C("the centre please"), A("your table is booked would you like to get the order by email"),
            C("yes please"), A("done have a good evening"))
    assert r.metrics["counts"]["pitches"] == 0 and flag_types(r) == []


def test_selling_talk_the_customer_declines_is_a_pitch_before_resolution():
    r = run(C("my meter display is blank"), A("our smart home kit shows your usage on your phone its sixty dollars"),
            C("no i need the meter checked"), A("ive booked a meter check for friday"), C("ok"))
    assert flag_types(r) == ["pitch_before_resolution"]


@pytest.mark.parametrize("opening, outbound", [
    ("hi its priya from homeworld just checking your washing machine arrived ok", True),
    ("hello is that mrs doyle its simone from clearsound", True),
    ("thanks for calling homeworld this is priya from the delivery team how can i help", False),
])
def test_who_opened_the_call_decides_whether_a_first_pitch_can_come_too_early(opening, outbound):
    r = run(A(opening), C("yeah it came on monday"),
            A("we also offer a five year care plan for that machine its eighty nine pounds"), C("no thanks"),
            A("no problem have a good day"))
    assert ("pitch_before_resolution" in flag_types(r)) is not outbound


def test_describing_the_customers_own_plan_is_no_pitch():
    r = run(C("why has my direct debit gone up"),
            A("your fixed deal ended in april so youre on the standard tariff at twenty seven p per unit"),
            C("oh i see"), A("ive set a reminder for the next fixed deal"), C("thanks"))
    assert flag_types(r) == [] and r.metrics["counts"]["pitches"] == 0


def test_a_fee_quoted_while_accepting_the_no_is_no_repitch():
    r = run(C("i need to move my flight from friday to sunday"),
            A("before we do that did you know you can upgrade to flex plus for thirty euros"),
            C("no just the date change please"),
            A("of course sunday has seats the change fee is forty five euros is that ok"), C("yes fine"),
            A("done your boarding pass is in your email"))
    assert "refusal_then_continue" not in flag_types(r)
    assert "pitch_before_resolution" in flag_types(r)


def test_a_misheard_greeting_is_no_permission_request_and_the_problem_no_refusal():
    # tiny.en hears "how can I help you" as "how can I tell you": a question about what, not a request.
    r = run(A("thank you for calling how can i tell you"), C("hi my internet is not working"),
            A("ok ive fixed it its working now"), C("yes it works now thanks"))
    assert r.metrics["counts"]["permission_requests"] == 0 and r.metrics["counts"]["refusals"] == 0
    assert flag_types(r) == []
    # Offering something is still a request, with or without the wh-word ASR put in front.
    r = run(A("how can i tell you about our premium plan"), C("no thanks not right now"), A("no problem"))
    assert r.metrics["counts"]["permission_requests"] == 1 and r.metrics["counts"]["refusals"] == 1


@pytest.mark.parametrize("answer", [
    "no i didnt get the email",
    "No, I didn't get the email.",
    "no that's all thanks",
])
def test_a_no_that_answers_a_question_is_not_a_refusal(answer):
    # The agent's last turn asked a question, not an offer: "no" answers it.
    r = run(C("hi my bill is wrong this month"), A("ive corrected it"), C("great thanks"),
            A("we also have a premium plan for ten dollars more a month"), C("hmm"),
            A("by the way did you get our email last week"), C(answer),
            A("ok you can upgrade to the premium plan any time"))
    assert r.metrics["counts"]["refusals"] == 0
    assert "refusal_then_continue" not in flag_types(r)


def test_no_problem_is_a_determiner_not_a_refusal():
    r = run(A("hi would you like to add our protection plan"), C("no problem at all tell me more"))
    assert r.metrics["counts"]["refusals"] == 0
    assert r.metrics["counts"]["customer_interest"] >= 1


def test_customer_reopening_the_subject_cancels_the_refusal():
    r = run(A("hi its sara from metro mobile we can upgrade you to the new iphone for no upfront cost"),
            C("no thanks"), A("no problem at all"),
            C("actually how much would my monthly bill be on that"),
            A("it would be fifty five dollars a month with unlimited data"))
    assert r.metrics["counts"]["refusals"] == 1
    assert "refusal_then_continue" not in flag_types(r)


def test_explicit_refusal_counts_without_an_offer_and_is_high_severity():
    r = run(A("hi this is rob from safe life insurance"), C("im not interested please dont call again"),
            A("it only takes two minutes and you could save a lot"))
    (flag,) = [f for f in r.flags if f.type == "refusal_then_continue"]
    assert flag.severity == "high" and flag.detail["refusal"]["kind"] == "explicit"


def test_pitch_outside_the_window_is_not_a_continuation():
    opts = dataclasses.replace(OPTS, continue_agent_turns=1)
    turns = [A("would you like our fiber upgrade for ten dollars more"), C("no thanks"),
             A("ok"), C("so about my bill"), A("sure"), C("ok"),
             A("our premium plan is only twenty dollars")]
    assert "refusal_then_continue" not in flag_types(run(*turns, options=opts))
    assert "refusal_then_continue" in flag_types(run(*turns))  # default window: 3 agent turns


# --- pitch_before_resolution -----------------------------------------------

def test_pitch_before_the_problem_is_solved_is_flagged():
    r = run(C("hi my internet has been down since this morning"),
            A("sorry about that with our premium plan you get a backup router so youd never be offline"),
            C("ok but can you fix it"), A("yes ive reset your line it should work now"), C("yes its working"))
    (flag,) = [f for f in r.flags if f.type == "pitch_before_resolution"]
    assert "internet has been down" in flag.evidence and "premium plan" in flag.evidence
    assert flag.detail["reason"]["kind"] == "problem"
    assert flag.detail["resolved_at"]["start"] > flag.detail["pitch"]["match_start"]
    assert r.metrics["reason_for_calling"]["kind"] == "problem"


def test_pitch_after_the_fix_in_the_same_turn_is_fine():
    r = run(C("hi my internet has been down since this morning"),
            A("ive reset your line it should work now and while i have you our premium plan is only ten dollars more"),
            C("no thanks"), A("ok have a good day"))
    assert flag_types(r) == []
    assert r.metrics["resolved_at"]["start"] < r.metrics["first_pitch_s"]


def test_claimed_fix_contradicted_by_the_customer_does_not_count():
    r = run(C("my router keeps dropping the connection"), A("ive reset it it should work now"),
            C("no its still not working"),
            A("you know our premium plan comes with a new router for only five dollars more"),
            C("just fix it please"), A("ok ive sent an engineer"))
    assert "pitch_before_resolution" in flag_types(r)


def test_customer_asking_for_the_product_is_not_pitch_before_resolution():
    r = run(C("hi my internet keeps buffering do you have anything faster"),
            A("yes our gigabit plan is seventy dollars a month"), C("ok switch me"), A("done"))
    assert flag_types(r) == []
    r = run(C("hi im looking to upgrade my phone what deals do you have"),
            A("the new phone is free with a two year plan at forty five a month"), C("sounds good"))
    assert flag_types(r) == [] and r.metrics["reason_for_calling"]["kind"] == "inquiry"


def test_outbound_sales_call_has_no_reason_to_resolve():
    r = run(A("hi this is jen from clearview windows am i speaking with the homeowner"), C("yes who is this"),
            A("we are offering free quotes on replacement windows this month"), C("ok sure"))
    assert "pitch_before_resolution" not in flag_types(r)


# --- positive markers ------------------------------------------------------

def test_good_habits_are_counted_with_times():
    tl = timeline_from_turns([
        C("hello the printer on our plan wont print anything"),
        A("ive pushed a driver update to your account could you check if it prints now"),
        C("yes it works"),
        A("great did that fix it for you"),
        C("yes thanks"),
        A("how many people in your office print each day"),
        C("about ten"),
        A("would it be okay if i mentioned our office bundle"),
        C("sure"),
        A("it would be twelve dollars a month and includes free toner"),
        C("sounds good how do i sign up"),
    ])
    r = analyze_conduct(tl, OPTS)
    c = r.metrics["counts"]
    assert c["checkbacks"] >= 1 and c["needs_questions"] == 1 and c["permission_requests"] == 1
    assert c["customer_interest"] >= 2 and c["pitches"] >= 1 and c["refusals"] == 0
    assert r.metrics["permission_before_first_pitch"] is True
    assert flag_types(r) == []
    needs = r.metrics["needs_questions"][0]
    assert tl.turns[5].start <= needs["start"] < needs["end"] <= tl.turns[5].end
    assert needs["text"].lower().startswith("how many people")
    assert r.metrics["resolved_at"]["start"] < r.metrics["first_pitch_s"]


def test_metrics_match_the_record_schema():
    r = run(C("hi my card was stolen"), A("did you know youre pre approved for our rewards card"),
            C("no i just want to block it"), A("what if i waived the annual fee"), C("block the card"),
            A("ok the card is blocked"))
    schema = record_schema()["properties"]["metrics"]["properties"]["conduct"]
    jsonschema.validate(r.metrics, schema)
    assert set(flag_types(r)) == {"refusal_then_continue", "pitch_before_resolution"}
    for f in r.flags:
        jsonschema.validate(f.to_dict(), record_schema()["$defs"]["flag"])


# --- ASR robustness --------------------------------------------------------

CLEAN = [C("Hi, my phone bill is way higher this month. I got charged for roaming I never used."),
         A("Let me look. Before I do, have you heard about our travel pass? It's only five dollars a day."),
         C("No, I don't travel. I just want the charge removed."),
         A("I understand, but the unlimited plan includes roaming and it's only fifteen more a month."),
         C("Can you just remove the charge?"),
         A("Okay, I've removed the roaming charge.")]


def _asr(text):
    # Lowercase, no punctuation, apostrophes dropped, a couple of misrecognitions.
    out = "".join(ch for ch in text.lower() if ch.isalnum() or ch in " '").replace("'", "")
    return out.replace("roaming", "roming").replace("travel pass", "travel pas")


def test_same_call_clean_and_asr_like_gives_the_same_flags():
    clean = run(*CLEAN)
    noisy = run(*[(role, _asr(text)) for role, text in CLEAN])
    assert set(flag_types(clean)) == {"refusal_then_continue", "pitch_before_resolution"}
    assert set(flag_types(noisy)) == set(flag_types(clean))


def test_plain_tokenizer_fallback_agrees_on_the_basics():
    opts = dataclasses.replace(OPTS, use_spacy=False)
    r = analyze_conduct(timeline_from_turns(CLEAN), opts)
    assert r.metrics["nlp"] == "plain"
    assert set(flag_types(r)) == {"refusal_then_continue", "pitch_before_resolution"}
    assert run(A("would you like the protection plan"), C("no problem go ahead"),
               options=opts).metrics["counts"]["refusals"] == 0


# --- config ----------------------------------------------------------------

def test_product_vocabulary_is_extendable_per_company():
    turns = [C("hi i cant log in to my account"),
             A("our platinum club includes login support"), C("ok"), A("ive unlocked it")]
    assert "pitch_before_resolution" not in flag_types(run(*turns))
    opts = dataclasses.replace(OPTS, extra_product_terms=("platinum club",))
    assert "pitch_before_resolution" in flag_types(run(*turns, options=opts))


def test_bad_phrase_syntax_and_unknown_categories_name_the_key(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('[conduct]\nrefusal_phrases = ["(not now"]\n')
    with pytest.raises(ValueError, match="conduct.refusal_phrases"):
        load_config(bad)
    bad.write_text('[conduct.pitch_phrases]\nbribe = ["cash"]\n')
    with pytest.raises(ValueError, match="pitch_phrases.*bribe"):
        load_config(bad)
    bad.write_text('[conduct]\nrefusal_phrases = ["i (already|just)? said no"]\n')
    with pytest.raises(ValueError, match=r"conduct.refusal_phrases.*\[a\|b\]"):
        load_config(bad)  # a regex "?" would silently make the group required
    bad.write_text('[conduct]\nproduct_terms = ["{nope}"]\n')
    with pytest.raises(ValueError, match="product_terms"):
        load_config(bad)


def test_disabled_returns_nothing():
    r = analyze_conduct(timeline_from_turns(CLEAN), dataclasses.replace(OPTS, enabled=False))
    assert r.metrics == {} and r.flags == ()


# --- purity and cost -------------------------------------------------------

def test_pure_and_deterministic():
    tl = timeline_from_turns(CLEAN)
    before = tl.to_dict()
    a, b = analyze_conduct(tl, OPTS), analyze_conduct(tl, OPTS)
    assert tl.to_dict() == before
    assert a.metrics == b.metrics and [f.to_dict() for f in a.flags] == [f.to_dict() for f in b.flags]


def test_redacted_text_without_matching_words_still_gets_times():
    words = tuple(Word(10 + i * 0.3, 10.25 + i * 0.3, w) for i, w in enumerate("no thanks im good".split()))
    tl = Timeline(duration=30, speakers=(Speaker("A", "agent", 0), Speaker("C", "customer", 1)), turns=(
        Turn("A", 5, 9, "agent", text="would you like our premium plan for [number] dollars"),
        Turn("C", 10, 11.2, "customer", words=words),
        Turn("A", 12, 15, "agent", text="what if i gave you [number] percent off"),
    ))
    (flag,) = analyze_conduct(tl, OPTS).flags
    assert flag.type == "refusal_then_continue"
    assert 12 <= flag.detail["pitch"]["match_start"] < 15 and flag.start == 10


def test_speech_segments_of_one_floor_are_read_together():
    # The pipeline cuts at pauses: the offer and the refusal's "no" land in separate segments.
    def seg(speaker, role, start, text):
        ws = tuple(Word(start + i * 0.3, start + i * 0.3 + 0.25, w) for i, w in enumerate(text.split()))
        return Turn(speaker, ws[0].start, ws[-1].end, role, words=ws)

    tl = Timeline(duration=40, speakers=(Speaker("A", "agent", 0), Speaker("C", "customer", 1)), turns=(
        seg("C", "customer", 0, "hi my internet is not working"),
        seg("A", "agent", 3, "okay I have fixed it"),
        seg("C", "customer", 6, "yes it works now"),
        seg("A", "agent", 9, "would you like our premium plan"),
        seg("A", "agent", 11, "it is great"),
        seg("C", "customer", 13, "no"),
        seg("C", "customer", 14, "not for me"),
        seg("A", "agent", 16, "okay"),
        seg("A", "agent", 17, "it is only ten dollars more a month"),
    ))
    r = analyze_conduct(tl, OPTS)
    (flag,) = r.flags
    assert flag.type == "refusal_then_continue"
    assert flag.detail["refusal"]["text"] == "no not for me" and flag.detail["refusal"]["start"] == 13
    assert flag.detail["pitch"]["match_start"] >= 17 and flag.detail["pitch"]["start"] == 16


# --- round-3 rules: selling talk right after a refusal, acknowledgement as resolution -----------

def test_selling_point_right_after_a_refusal_is_a_repitch_but_a_fix_is_not():
    base = [C("hi i need to exchange a lamp that arrived broken"), A("ive arranged the exchange"), C("great thanks"),
            A("would you like to join our rewards club for ten percent off"), C("no thanks")]
    r = run(*base, A("its free to join and you would also get free delivery"), C("no"))
    (flag,) = r.flags
    assert flag.type == "refusal_then_continue" and flag.detail["pitch"]["category"] == "selling_point"
    # The agent doing what was asked (a resolution) is moving on, even with a price in it.
    r = run(*base, A("ok ive added the exchange label for five dollars as you asked"), C("ok"))
    assert flag_types(r) == []
    # Selling talk counts only in the first agent turn after the refusal (continuation_agent_turns).
    r = run(*base, A("ok"), C("so when does the courier come"), A("monday and delivery is free"))
    assert flag_types(r) == []


def test_thanks_after_an_answer_marks_the_request_handled_but_not_after_a_hold():
    answered = run(C("hi i want to know when my contract ends"), A("your contract ends in march"), C("ok thanks"),
                   A("if you renew now i can give you the new phone for free"))
    assert "pitch_before_resolution" not in flag_types(answered)
    assert answered.metrics["resolved_at"]["by"] == "customer"
    on_hold = run(C("hi i want to know when my contract ends"), A("sure let me check"), C("ok thanks"),
                  A("if you renew now i can give you the new phone for free"))
    assert "pitch_before_resolution" in flag_types(on_hold)


def test_past_tense_survives_normalization():
    # spaCy's norm maps "did" to "do"; the conduct stream keeps the spelling so "didnt arrive" stays past.
    from pipeline.analysis.conduct_text import normalize_texts
    from pipeline.nlp import load_spacy

    (u,) = normalize_texts(["my bag didnt arrive and I'll pass"], load_spacy())
    assert u.forms == ["my", "bag", "did", "not", "arrive", "and", "i", "will", "pass"]


# --- round-5 rules: respect vs. continuing, implicit refusals, inflections ------------------------

def test_a_reply_that_does_not_move_on_after_a_refusal_is_continuing():
    base = [C("whats my gate"), A("gate twelve"), C("thanks"),
            A("would you like to upgrade to first class for ninety dollars"), C("no thanks")]
    r = run(*base, A("it is a long flight and you would have a seat that lies flat"), C("no"))
    (flag,) = r.flags
    assert flag.type == "refusal_then_continue" and flag.detail["pitch"]["category"] in ("continued", "selling_point")
    # An acknowledgement or a close moves on...
    assert flag_types(run(*base, A("no problem have a good flight"), C("thanks"))) == []
    # ...unless a contrast follows it.
    r = run(*base, A("no problem just so you know it is usually much more expensive at the gate"), C("no"))
    assert flag_types(r) == ["refusal_then_continue"]


def test_getting_on_with_the_customers_business_after_a_refusal_moves_on():
    base = [C("hi my plants arrived dead"), A("sorry whats the order number"), C("its t g six six"),
            A("are you a member of our green fingers club you get ten percent off every order"),
            C("i dont care about that just sort my plants out")]
    assert flag_types(run(*base, A("yes of course ill send out replacements for the dead ones on wednesday"),
                          C("thank you"))) == ["pitch_before_resolution"]
    # Back to selling after the business is not moving on.
    r = run(*base, A("ill send out replacements but the club also gets you free delivery"), C("no"))
    assert "refusal_then_continue" in flag_types(r)
    # "understood ... but ... ill need your bank details": the business comes after the "but".
    r = run(C("my withdrawal never arrived"), A("would you like our fixed cash account at four percent instead"),
            C("no i need it all"),
            A("understood so the sale went through but the payment failed ill need you to confirm your bank details"))
    assert "refusal_then_continue" not in flag_types(r)


@pytest.mark.parametrize("reply, refused", [
    ("no i didnt see any text", False),  # answers "did you get our text"
    ("no it hasnt arrived", False),
    ("no i didnt want it", True),
    ("no im keeping my phone", True),
])
def test_a_no_about_a_fact_is_an_answer_not_a_refusal(reply, refused):
    r = run(A("hi its rosa from vortex mobile did you get our text about your upgrade"), C(reply),
            A("well youre eligible for an upgrade and weve got great deals on the new iphone"), C("bye"))
    assert (r.metrics["counts"]["refusals"] >= 1) is refused


def test_asr_were_at_a_sentence_start_is_we_are():
    from pipeline.analysis.conduct_text import normalize_texts

    (utt,) = normalize_texts(["were doing free surveys this month"], None)
    assert utt.forms[:3] == ["we", "are", "doing"]
    (utt,) = normalize_texts(["were you happy with it"], None)
    assert utt.forms[:2] == ["were", "you"]
    # So the selling talk is an offer and the "no" declines it.
    r = run(A("hi its ryan from guardline have you got two minutes"), C("whats it about"),
            A("were doing free security surveys in your area and we can fit a monitored alarm"),
            C("no thanks were not really interested"),
            A("ok but the installation is completely free this month"), C("no i have to go"))
    assert "refusal_then_continue" in flag_types(r)


def test_a_welfare_question_right_after_the_complaint_is_no_checkback():
    r = run(A("hi bark box its gemma"), C("hiya id like to cancel my subscription please"),
            A("oh sorry to hear that is everything ok with biscuit"), C("yeah hes fine but hes on a special diet"),
            A("a lot of owners in your situation switch to our sensitive recipe instead"), C("no just cancel it"),
            A("ok thats cancelled"))
    assert "pitch_before_resolution" in flag_types(r)


def test_a_company_name_in_the_greeting_is_no_offer_and_booking_a_repair_is_a_request():
    # "hello furry friends insurance": a "yes hello" after it is no acceptance, so the call is not an inquiry.
    r = run(A("hello furry friends insurance you speak to tanya"),
            C("yes hello my claim for the dog operation is three weeks no money where is it"),
            A("i see you dont have the dental cover its only three pound extra a month"), C("not interested"),
            A("ok the claim was approved yesterday"))
    assert r.metrics["reason_for_calling"]["kind"] != "inquiry"
    assert "pitch_before_resolution" in flag_types(r)
    # The same words read two ways: the longer match decides.
    repair = run(C("hi ive cracked my screen and i want to book a repair"),
                 A("a lot of people in your situation go for an upgrade instead"), C("no just the repair"),
                 A("ok ive booked it for saturday"))
    room = run(C("hi i want to book a double room for two nights"),
               A("would you like breakfast with that its nine pounds"), C("no thanks"), A("ok thats booked"))
    assert "pitch_before_resolution" in flag_types(repair)
    assert "pitch_before_resolution" not in flag_types(room)


@pytest.mark.parametrize("offer, decline", [
    ("what i can do is match that so youd pay twenty five with us", "no ive already signed with them"),
    ("have you thought about adding a pt session", "moneys tight at the moment to be honest"),
    ("you might wanna think about a few sessions with a trainer we do six for ninety", "um not right now"),
])
def test_retention_and_soft_selling_frames_are_offers_a_soft_no_declines(offer, decline):
    r = run(C("hi can you book me onto the spin class"), A("done youre booked in"), C("nice one"),
            A(offer), C(decline), A("well if you did wed also give you the first month free"), C("no"))
    assert r.metrics["counts"]["refusals"] >= 1
    assert "refusal_then_continue" in flag_types(r)


def test_a_reply_that_neither_accepts_nor_asks_declines_the_offer():
    r = run(C("hi can you check my speed"), A("you are getting the full hundred megs"), C("good thanks"),
            A("would you like to upgrade to our five hundred meg plan"), C("a hundred is plenty for us"),
            A("i could do it for the same price for six months"))
    assert r.metrics["refusals"][0]["kind"] == "implicit"
    assert flag_types(r) == ["refusal_then_continue"]
    # A question about the offer is interest, not a decline.
    r = run(C("hi can you check my speed"), A("you are getting the full hundred megs"), C("good thanks"),
            A("would you like to upgrade to our five hundred meg plan"), C("how much would that be"),
            A("it would be ten dollars more a month"))
    assert r.metrics["counts"]["refusals"] == 0 and flag_types(r) == []


def test_phrase_words_match_their_inflections():
    import dataclasses as dc

    turns = [C("hi my internet is not working"), A("honestly the best fix is moving you to our fibre package"),
             C("ok"), A("ive fixed the line")]
    assert "pitch_before_resolution" in flag_types(run(*turns))
    strict = dc.replace(OPTS, inflect_words=False, soft_offer_is_pitch=False)
    assert "pitch_before_resolution" not in flag_types(run(*turns, options=strict))


# --- round 12: each rule change, with the case it must not break ------------------------------

def test_a_proposal_that_quotes_its_price_is_a_re_pitch_even_after_an_okay():
    r = run(C("hi id like to book a car for next weekend"), A("sure ive got a focus for one twenty do you want sat nav with it eight pound a day"),
            C("no ill use my phone"), A("okay and do you need a child seat were doing them at five a day"), C("no"))
    assert flag_types(r) == ["refusal_then_continue"]
    # The same okay before a service question (no price) is the agent moving on.
    r = run(C("hi id like to book a car for next weekend"), A("sure ive got a focus for one twenty do you want sat nav with it eight pound a day"),
            C("no ill use my phone"), A("okay and do you need a receipt by email"), C("no"))
    assert flag_types(r) == []


def test_a_bare_no_to_an_outbound_opening_is_a_refusal():
    turns = [A("hi there its kyle from zapmobile have you got a sec to talk about your mobile"), C("no"),
             A("ok so we could probably save you around ten pounds a month with the same data"), C("mate i said no")]
    assert flag_types(run(*turns)) == ["refusal_then_continue"]
    # An inbound greeting that names the agent's team is no sales opening: "no" there answers.
    r = run(A("thanks for calling homeworld this is priya from the delivery team how can i help"), C("no"),
            A("sorry i didnt catch that"), C("my parcel has not arrived"))
    assert r.metrics["counts"]["refusals"] == 0


def test_a_fix_followed_by_honestly_and_a_price_goes_back_to_selling():
    base = [C("hi my suitcase didnt arrive and i paid for a seat i didnt get"),
            A("ive logged the bag and just so you know our travel insurance covers delayed baggage"), C("no thanks"),
            A("no problem now the seat i can see you paid forty five"), C("yeah")]
    r = run(*base, A("ive refunded the forty five and honestly the insurance would have covered your bag its nineteen ninety nine a trip"))
    assert "refusal_then_continue" in flag_types(r)
    r = run(*base, A("ive refunded the forty five pounds to your card"))
    assert "refusal_then_continue" not in flag_types(r)


def test_a_reason_for_saying_no_does_not_reopen_the_offer():
    # "found something cheaper" names a product the customer chose elsewhere; it asks for nothing.
    r = run(A("hello its sam from elmbridge insurance calling about your renewal"), C("im not interested ive found something cheaper"),
            A("okay can i ask how much they quoted you"), C("two hundred and ten"), A("right i can match that today"))
    assert flag_types(r) == ["refusal_then_continue"]
    # "i just want to know about the claim" is the customer's own business, not interest in the offer.
    r = run(C("hi im ringing about my claim"), A("were running a deal on dental cover its just four pounds a month"),
            C("not interested i just want to know about the claim"), A("fair enough its just that dental is the thing people wish they had later"))
    assert "refusal_then_continue" in flag_types(r)


def test_a_question_about_what_happened_is_no_pitch():
    r = run(C("hi i got rear ended this morning"), A("sorry to hear that would you like our accident forgiveness its three pounds a month"),
            C("not now i just want to do the claim"), A("of course did you get the other drivers insurance info"), C("yes"))
    assert "refusal_then_continue" not in flag_types(r)


def test_a_price_increment_on_the_customers_own_plan_is_an_offer():
    r = run(C("hi im locked out of my account"), A("ive reset it youre all sorted now"), C("thanks im in"),
            A("while youre here youre on the basic plan with adverts for three pounds more you could go ad free"),
            C("ill pass thanks"), A("or if you went annual on premium it works out two months free"))
    assert flag_types(r) == ["refusal_then_continue"]


def test_only_the_agent_completes_a_cancellation():
    r = run(C("hi id like to cancel my tv package please"), A("can i ask why"), C("we dont watch it its all streaming now"),
            A("before i do that i can do your package at half price for six months"), C("no just cancel it please"),
            A("okay thats done your last bill is on the twentieth"))
    assert "pitch_before_resolution" in flag_types(r)


# --- round 13 ------------------------------------------------------------------------------------

def test_a_question_inside_the_reply_is_no_decline_and_the_answer_is_no_re_pitch():
    r = run(C("hi my direct debit claim"), A("before i start you might be interested in our credit builder card it helps your score"),
            C("um maybe what is it exactly"), A("its a card with a low limit so you use it for small things and pay it off each month"),
            C("ok"))
    assert r.metrics["counts"]["refusals"] == 0 and "refusal_then_continue" not in flag_types(r)


def test_an_embedded_why_still_lets_the_re_pitch_count():
    r = run(C("hi my bill is a hundred and forty its usually twenty"),
            A("i can see you were in spain what a lot of people do is add our travel pass its five pound a day"),
            C("eh maybe not i just want to know why its a hundred and forty"),
            A("yeah i get it its just honestly with the pass this would not happen and theres a discount on at the moment"))
    assert "refusal_then_continue" in flag_types(r)


def test_a_company_name_in_the_greeting_is_no_offer_a_no_could_refuse():
    r = run(A("Fibre Link, this is Hannah."), C("I want to downgrade to the cheapest package. I don't need 900 meg."),
            A("Okay. Before I do that, I could keep you on 900 for the same price as the 150 for six months."),
            C("No, just downgrade it."), A("Okay, I've moved you to the 150 plan from your next bill."))
    assert "refusal_then_continue" not in flag_types(r)


def test_a_no_to_an_identity_check_on_an_outbound_call_is_no_refusal():
    r = run(A("hi is that mrs doyle its kirsty from the riverside hospice hope im not catching you at a bad time"),
            C("no its fine love"), A("i just wanted to say thank you youve been giving ten pound a month for four years"),
            C("oh thats nice"))
    assert r.metrics["counts"]["refusals"] == 0 and flag_types(r) == []


def test_wanting_to_go_ahead_with_the_service_does_not_reopen_the_offer():
    r = run(C("Good morning. I'd like to transfer my pension out to my new employer's scheme."),
            A("Before we start, have you looked at our low cost fund? It has an annual charge of just 0.3 percent."),
            C("No, thank you. I'd like to go ahead with the transfer, please."),
            A("Of course. I'd just mention that we can waive the annual management charge for the first year if you stay."))
    assert "refusal_then_continue" in flag_types(r)


def test_so_you_can_see_is_a_purpose_not_a_fix():
    r = run(C("hi i want to add a sim for my daughter the basic ten gig one"), A("thats added and ill post the sim today"),
            C("great"), A("just so you know most parents go for the unlimited its twenty two a month"),
            C("thats a bit much for a thirteen year old"),
            A("i get that but its only fourteen more and i can throw the first month in free so you can see if she needs it"))
    assert "refusal_then_continue" in flag_types(r)


def test_naming_the_product_while_doing_what_was_asked_is_no_re_pitch():
    r = run(A("Hi, is that Mrs Kowalski? It's Daniel from Wanderlight Travel Club."), C("Yes, hello."),
            A("Your club membership is due for renewal next month, thirty nine pounds for the year, and I also wanted "
              "to mention our annual travel insurance add-on, which members get for sixty."),
            C("Hmm, maybe renew the membership, but not the insurance. We're covered through work."),
            A("That's fine. I'll renew the membership on the card we have on file. Is that okay?"), C("Yes, that's fine."))
    assert "refusal_then_continue" not in flag_types(r)


# --- round 14 ------------------------------------------------------------------------------------

_PROBLEM = (C("hi theres a problem with my account"),)
_HELP = (C("hi i need some help with my account please"),)
_INBOUND = (A("hello you are through to customer services how can i help"), C("hi i need some help with my account"))


# Rounds 14 and 15: offer frames, declines without a no, concessions.
@pytest.mark.parametrize("opening, offer, decline, repitch", [
    (_PROBLEM, "i wanted to talk about moving you to managed hosting which has staging and automatic backups",
     "honestly the budgets been signed off for the year", "totally hear you i can give you the first three months free"),
    (_PROBLEM, "great youre registered would you also like our revision pack with past papers",
     "no thanks ive already got the past papers", "the pack also includes examiner commentary its only twelve pounds"),
    (_PROBLEM, "ok sorry to hear that so rather than dropping down why not stay on fifty and add the hr module",
     "no we need to cut costs not add things", "sure what about annual prepay on the fifty tier it works out cheaper"),
    (_HELP, "brilliant all sorted oh while im here you might like our wifi extender if the signal struggles upstairs",
     "nah im alright", "its free for the first three months though and you can send it back"),
    (_HELP, "so its a term policy with no cash in value but before we cancel we have a cheaper lite plan",
     "no", "what if we went to a ten year term instead it would halve your premium"),
    (_HELP, "thats two forty nine and most people pair it with our bean subscription for eight ninety five",
     "ill take the machine but im not bothered about the beans",
     "the first bag is free though and you can cancel anytime so theres no commitment"),
    (_HELP, "ok so before we go through it our home plus upgrade doubles your garden cover and adds sheds and gates",
     "ive literally just told you my fence is down i dont want adverts",
     "i get that but if you take the upgrade today you get the first two months free"),
    (_INBOUND, "before i sort that out can i just ask have you looked at adding critical illness to your policy",
     "please i just want my money back",
     "i hear you its just with critical illness youd get a lump sum its a really good bit of cover"),
    (_INBOUND, "okay before i do that we could set your son up on a multi car policy with you", "no hes sorting his own",
     "sure though a multi car policy could save you both about fifteen percent"),
    (_INBOUND, "so were doing the season pass for next year twelve shows and i wanted to give you first dibs",
     "ah moneys tight at the moment to be honest",
     "yeah i get that which is why were doing it in four payments of thirty"),
])
def test_offer_frames_and_declines_without_a_no_are_seen(opening, offer, decline, repitch):
    r = run(*opening, A(offer), C(decline), A(repitch))
    assert "refusal_then_continue" in flag_types(r)


def test_something_youd_want_is_an_offer():
    r = run(C("hi my black bin got missed yesterday"), A("sorry about that ive booked a return collection for tomorrow"),
            C("oh brilliant thanks"),
            A("no problem and while youre on is garden waste something youd want weve got spaces on the brown bin service"),
            C("no thanks"), A("its only forty five pound for the whole year and youd get the autumn leaves collected"))
    assert "refusal_then_continue" in flag_types(r)


def test_selling_after_a_fix_in_the_same_turn_is_an_offer_but_the_fix_itself_is_not():
    r = run(C("hi i need to book pepper in for her booster"),
            A("lovely thats booked for monday at ten and while ive got you we do a flea and worm subscription posted to "
              "your door every month its eight ninety nine"),
            C("hmm ill think about it"), A("honestly its cheaper than buying them over the counter and you never forget"))
    assert "refusal_then_continue" in flag_types(r)
    r = run(C("Hi, I can't invite new users to our workspace."),
            A("You've hit the seat limit on your plan. I've added a free temporary seat so you can invite them now."),
            C("Yes, that worked."))
    assert flag_types(r) == []


def test_picking_one_of_the_options_offered_is_no_refusal():
    r = run(A("hi its chloe from the garage just a courtesy call your mot is due on the twentieth"), C("oh thanks"),
            A("would you like to book it in i have the fifteenth or the eighteenth"), C("the eighteenth please"),
            A("great and youre also due an interim service we could do both together for one forty nine"),
            C("yeah do both"))
    assert r.metrics["counts"]["refusals"] == 0 and "refusal_then_continue" not in flag_types(r)


def test_asking_what_the_offer_was_reopens_it():
    r = run(C("hi i need to give you a gas reading"), A("thanks thats on your balance is twenty in credit"), C("oh good"),
            A("while youre on weve got a smart thermostat offer its sixty nine pound installed"), C("no thanks"),
            A("no problem"), C("actually hang on what does it do exactly"),
            A("it learns your routine and people typically save about eight percent on heating"))
    assert "refusal_then_continue" not in flag_types(r)


def test_the_only_thing_id_say_goes_back_to_selling():
    r = run(A("Hi, it's Marcus from Pawsure, calling about Biscuit's renewal."), C("Oh, right."),
            A("It's twenty three a month on the time limited plan. I'd really recommend looking at our lifetime plan."),
            C("No, I'll stick with what I've got, thanks."),
            A("Okay. The only thing I'd say is, with time limited cover you're only covered for twelve months for a "
              "condition, whereas lifetime resets every year."))
    assert "refusal_then_continue" in flag_types(r)


def test_a_troubleshooting_question_is_no_pitch():
    r = run(C("hello my hearing aid has stopped working"), A("oh dear lets sort that have you tried a new battery"),
            C("yes two new ones"), A("ok ill send you a replacement receiver today free under your warranty"),
            C("thank you"))
    assert r.metrics["counts"]["pitches"] == 0 and flag_types(r) == []


def test_no_we_dont_have_one_answers_a_question_about_what_the_customer_has():
    r = run(A("hello its vikram calling from clearflow water services am i speaking with mrs brown"), C("yes this is her"),
            A("we are calling our customers about the home plumbing and drain cover do you have any cover already for the pipes"),
            C("no we dont have anything"),
            A("okay so with this cover if any pipe leaks we send an engineer the same day and it is six pound per month"),
            C("does it cover the pipe outside"))
    assert r.metrics["counts"]["refusals"] == 0 and "refusal_then_continue" not in flag_types(r)


def test_an_acknowledgement_into_so_explains_even_with_a_but_inside():
    r = run(C("hi theres a line on my bill that says network access fee and i dont know what it is"),
            A("before i get to that have you seen weve got the new fibre one fifty at twenty nine a month"),
            C("no no just tell me what the fee is"),
            A("no worries so the network access fee is the line rental part its been split out on the new bills but its "
              "not a new charge youre paying the same total"),
            C("oh ok that makes sense"))
    assert flag_types(r) == ["pitch_before_resolution"] and r.metrics["counts"]["refusals_respected"] == 1


# --- round 15 ------------------------------------------------------------------------------------

def test_a_short_reply_that_answers_the_phone_keeps_the_call_outbound():
    r = run(A("hi is that daniel"), C("yeah who is it"),
            A("hi daniel its harriet from your mobile network just a quick call we have a tablet sim offer for you its "
              "five gig for three pound a month"),
            C("oh right no thanks"), A("no problem thanks for your time"))
    assert "pitch_before_resolution" not in flag_types(r)


@pytest.mark.parametrize("request_", [
    "hi i want to take out insurance for my kitten",
    "hi we've taken on two new starters and i need to add two more users",
    "hi i'd like two returns from kings cross to edinburgh on the twelfth",
])
def test_asking_to_buy_is_an_inquiry_not_a_problem(request_):
    r = run(C(request_), A("lovely i can sort that and would you like to add our premium cover its six pound a month"),
            C("no just that thanks"), A("no problem thats all done"))
    assert r.metrics["reason_for_calling"]["kind"] == "inquiry"
    assert "pitch_before_resolution" not in flag_types(r)


def test_a_price_change_explained_and_the_customers_own_words_are_no_pitch():
    r = run(C("hi um why has my bill gone up im paying twelve ninety nine now"),
            A("so the standard plan went up from ten ninety nine on the first of the month we did send an email"),
            C("oh i missed it ok thanks"))
    assert flag_types(r) == []
    r = run(C("hi i didnt get my cash back this month on my reward account"),
            A("for the cash back you need to pay in fifteen hundred a month and have two direct debits"),
            C("oh right i cancelled one ok thanks"))
    assert flag_types(r) == []


def test_a_cost_stated_while_doing_what_was_asked_is_no_re_pitch():
    r = run(C("hi theres water coming up through my kitchen floor"),
            A("before we look at that our home plus cover would protect you from this for five pound a month"),
            C("not interested thanks can someone just come and find the leak"),
            A("of course so what ill do is book a leak detection visit thats free of charge"))
    assert "refusal_then_continue" not in flag_types(r)


def test_ill_before_any_verb_is_i_will():
    from pipeline.analysis.conduct_text import normalize_texts

    assert normalize_texts(["will do ill email it today"], None)[0].forms[:5] == ["will", "do", "i", "will", "email"]


def test_finding_what_went_wrong_after_a_no_is_the_customers_business():
    r = run(C("hi ive been charged after i cancelled my gym membership"),
            A("sorry about that while youre on our premium membership is only five pound more a month"),
            C("i dont want a membership i want my money back"),
            A("yes sorry let me check ah i can see the cancellation was logged but the direct debit wasnt stopped thats "
              "our error"))
    assert "refusal_then_continue" not in flag_types(r)


def test_a_price_sold_with_only_after_an_okay_is_a_re_pitch():
    r = run(C("hi i want to upgrade my phone im due one"), A("great thats forty one a month on the unlimited plan"),
            C("yeah ill have that"), A("perfect and do you want a case and insurance with it"), C("no just the phone"),
            A("ok and the screen protector is only a tenner with this one they scratch quite easily"))
    assert "refusal_then_continue" in flag_types(r)


