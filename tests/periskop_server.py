"""The Periskop server's rule for scraped counts, as a checker over successive scrapes.

Per scraped target_uuid and aggregation_key it remembers the last total_count; a lower count
for the same target_uuid is what the server logs as "inconsistent" and ignores.
"""

import uuid


class InconsistentCount(AssertionError):
    pass


class ScrapeChecker:
    def __init__(self):
        self.last = {}  # (target_uuid, aggregation_key) -> total_count
        self.scrapes = 0

    def observe(self, export):
        target = export["target_uuid"]
        for aggregate in export["aggregated_errors"]:
            key = (target, aggregate["aggregation_key"])
            count = aggregate["total_count"]
            if count < self.last.get(key, 0):
                raise InconsistentCount(
                    f"{key[1]!r} went from {self.last[key]} down to {count} under target {target}"
                )
            self.last[key] = count
        self.scrapes += 1


def assert_decodable_by_periskop(export):
    """The export has the types the Go Periskop server's encoding/json decode needs: strings
    (or null) where it expects strings, integers for counts, RFC 3339 times, UUIDs."""
    from periskop_pushgateway.wire.timestamps import parse_rfc3339_ns

    def is_text(value):
        return value is None or type(value) is str

    def check_time(value):
        assert type(value) is str and value.endswith("Z") and parse_rfc3339_ns(value) is not None

    def check_error(error):
        assert type(error) is dict
        assert is_text(error.get("class")) and is_text(error.get("message"))
        stacktrace = error.get("stacktrace")
        assert stacktrace is None or all(type(line) is str for line in stacktrace)
        if error.get("cause") is not None:
            check_error(error["cause"])

    assert type(export) is dict
    uuid.UUID(export["target_uuid"])
    for aggregate in export["aggregated_errors"]:
        assert type(aggregate["aggregation_key"]) is str
        assert type(aggregate["total_count"]) is int and 0 <= aggregate["total_count"] < 2**63
        assert aggregate["severity"] in ("info", "warning", "error")
        check_time(aggregate["created_at"])
        for occurrence in aggregate["latest_errors"]:
            check_error(occurrence["error"])
            assert str(uuid.UUID(occurrence["uuid"])) == occurrence["uuid"]
            check_time(occurrence["timestamp"])
            assert occurrence["severity"] in ("info", "warning", "error")
            context = occurrence["http_context"]
            if context is not None:
                assert all(
                    is_text(context[name])
                    for name in ("request_method", "request_url", "request_body")
                )
                headers = context["request_headers"]
                assert headers is None or all(
                    type(k) is str and type(v) is str for k, v in headers.items()
                )
