"""The checker that stands in for the Periskop server must itself catch a decrease."""

import pytest

from .periskop_server import InconsistentCount, ScrapeChecker


def export(target, **keys):
    return {
        "target_uuid": target,
        "aggregated_errors": [{"aggregation_key": k, "total_count": v} for k, v in keys.items()],
    }


def test_checker_accepts_growing_counts_and_a_new_target():
    checker = ScrapeChecker()
    checker.observe(export("t1", a=1))
    checker.observe(export("t1", a=3, b=1))
    checker.observe(export("t2", a=0))


def test_checker_rejects_a_decrease_under_the_same_target():
    checker = ScrapeChecker()
    checker.observe(export("t1", a=3))
    with pytest.raises(InconsistentCount):
        checker.observe(export("t1", a=2))


def test_checker_remembers_keys_that_left_the_export():
    checker = ScrapeChecker()
    checker.observe(export("t1", a=3))
    checker.observe(export("t1"))
    with pytest.raises(InconsistentCount):
        checker.observe(export("t1", a=1))
