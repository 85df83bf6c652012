"""The Periskop server's rule for scraped counts, as a checker over successive scrapes.

Per scraped target_uuid and aggregation_key it remembers the last total_count; a lower count
for the same target_uuid is what the server logs as "inconsistent" and ignores.
"""


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
