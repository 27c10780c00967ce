"""The delivery bench's pure parts: the receiver's request parsing, matching arrivals to
sends, percentiles and the per-stage split."""

import pytest

from bench.deliveries import match_arrivals, percentile, query_param, stages_of, summarize
from bench.receiver import parse_head


def test_parse_head_reads_target_event_id_and_length_whatever_the_case():
    head = (b"POST /wh?x=1 HTTP/1.1\r\nHost: 127.0.0.1:9\r\naffTok-EVENT-id: 5b7c\r\n"
            b"Content-Length: 42\r\nConnection: close\r\n\r\n")
    assert parse_head(head) == ("/wh?x=1", "5b7c", 42)


def test_parse_head_without_event_id_or_body():
    assert parse_head(b"GET /pb?cid=a&e=b HTTP/1.1\r\nHost: x\r\n\r\n") == ("/pb?cid=a&e=b", "", 0)


@pytest.mark.parametrize("head", [b"GET /\r\n\r\n", b"GET / HTTP/1.1\r\nno colon here\r\n\r\n", b"GET / SPDY/3\r\n\r\n"])
def test_parse_head_refuses_what_is_not_http_1(head):
    with pytest.raises(ValueError):
        parse_head(head)


@pytest.mark.parametrize(("q", "expected"), [(0.5, 50), (0.95, 95), (0.99, 99), (1.0, 100), (0.001, 1)])
def test_percentile_is_nearest_rank(q, expected):
    assert percentile([float(v) for v in range(1, 101)], q) == expected


def test_percentile_and_summary_of_nothing():
    assert percentile([], 0.99) is None
    assert summarize([]).count == 0 and summarize([]).max_s is None


def test_query_param():
    assert query_param("/pb?cid=abc&e=ev-1&s=approved", "cid") == "abc"
    assert query_param("/pb?e=ev-1", "cid") is None


def test_match_counts_first_arrivals_duplicates_other_events_unknown_and_missing():
    sent = {"a": 10.0, "b": 20.0, "c": 30.0}
    arrivals = [
        ("a", "ev-a", 10.5),
        ("b", "ev-b", 21.0),
        ("a", "ev-a", 10.2),  # arrived first, listed later: it is the one that counts
        ("b", "ev-b2", 22.0),  # another event for the same click
        ("z", "ev-z", 5.0),  # no such click sent
        (None, "", 6.0),  # no click id at all
    ]
    m = match_arrivals(sent, arrivals)
    assert m.latencies_s == pytest.approx([0.2, 1.0])
    assert m.first_arrival == {"a": 10.2, "b": 21.0}
    assert (m.missing, m.duplicates, m.other_events, m.unknown) == (1, 1, 1, 2)


def test_stages_split_each_matched_postback_and_skip_the_rest():
    sent, arrived = {"a": 100.0, "b": 200.0}, {"a": 101.0}
    rows = [
        {"click_id": "a", "accepted_s": 100.001, "row_s": 100.011, "dispatched_s": 100.111, "attempt_s": 100.611},
        {"click_id": "b", "accepted_s": 200.0, "row_s": 200.0, "dispatched_s": 200.0, "attempt_s": 200.0},  # never arrived
    ]
    stages = stages_of(sent, arrived, rows)
    assert [s.summary.count for s in stages] == [1] * 5
    assert [s.summary.p50_s for s in stages] == pytest.approx([0.001, 0.010, 0.100, 0.500, 0.389])
