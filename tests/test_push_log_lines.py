"""A push's log line: INFO when it changed something, DEBUG when it changed nothing (the same
state pushed again), so that a gateway's steady load of unchanged states does not fill the log."""

import logging

from .helpers import aggregate, occurrence, post, push_body


def push_lines(caplog):
    lines = [r for r in caplog.records if r.getMessage().startswith("push outcome=accepted")]
    return [(logging.getLevelName(r.levelno), r.getMessage()) for r in lines]


def test_a_push_that_changed_nothing_is_logged_at_debug(client, caplog):
    first = push_body(aggregate("k", 1, [occurrence("a")]), target_uuid="p")
    later = push_body(aggregate("k", 2, [occurrence("a"), occurrence("b")]), target_uuid="p")
    with caplog.at_level(logging.DEBUG, logger="periskop_pushgateway"):
        for body in (first, first, later, later):
            assert post(client, body).status_code == 200
    levels = [(level, "count_increase=1" in line) for level, line in push_lines(caplog)]
    assert levels == [("INFO", True), ("DEBUG", False), ("INFO", True), ("DEBUG", False)]


def test_at_info_only_the_pushes_that_changed_something_are_logged(client, caplog):
    body = push_body(aggregate("k", 1), target_uuid="p")
    with caplog.at_level(logging.INFO, logger="periskop_pushgateway"):
        for _ in range(3):
            assert post(client, body).status_code == 200
    assert [level for level, _ in push_lines(caplog)] == ["INFO"]


def test_keys_found_stale_or_dropped_are_logged_at_info(make_app, caplog):
    client = make_app(MAX_KEYS_PER_GROUP=1).test_client()
    with caplog.at_level(logging.INFO, logger="periskop_pushgateway"):
        assert post(client, push_body(aggregate("k", 5), target_uuid="p")).status_code == 200
        stale = push_body(aggregate("k", 3), target_uuid="p")  # an earlier state, arriving late
        assert post(client, stale).status_code == 200
        dropped = push_body(aggregate("other", 1), target_uuid="q")  # past the group's one key
        assert post(client, dropped).status_code == 200
    lines = [line for _, line in push_lines(caplog)]
    assert len(lines) == 3
    assert "stale_keys=1" in lines[1] and "dropped_keys=1" in lines[2]
