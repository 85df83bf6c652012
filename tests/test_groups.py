"""Groups: /services/<name>/... keep their own aggregates and their own stable target_uuid."""

import pytest

from .helpers import aggregate, counts, post, push_body, scrape


def test_groups_are_isolated_from_each_other_and_the_default(client):
    post(client, push_body(aggregate("k", 1), target_uuid="p"), group="nightly-report")
    post(client, push_body(aggregate("k", 5), target_uuid="p"), group="billing.v2")
    post(client, push_body(aggregate("other", 2), target_uuid="p"))
    assert counts(scrape(client, "nightly-report")) == {"k": 1}
    assert counts(scrape(client, "billing.v2")) == {"k": 5}
    assert counts(scrape(client)) == {"other": 2}


def test_each_group_has_its_own_stable_target_uuid(client):
    post(client, push_body(aggregate("k", 1)), group="a")
    post(client, push_body(aggregate("k", 1)), group="b")
    post(client, push_body(aggregate("k", 1)))
    uuids = [
        scrape(client, "a")["target_uuid"],
        scrape(client, "b")["target_uuid"],
        scrape(client)["target_uuid"],
    ]
    assert len(set(uuids)) == 3
    post(client, push_body(aggregate("k", 9)), group="a")
    assert scrape(client, "a")["target_uuid"] == uuids[0]


def test_group_export_answers_with_trailing_slash(client):
    post(client, push_body(aggregate("k", 1)), group="a")
    assert client.get("/services/a/-/errors/").data == client.get("/services/a/-/errors").data


def test_a_group_never_pushed_to_exports_nothing(client):
    export = scrape(client, "not-yet")
    assert export["aggregated_errors"] == []
    assert scrape(client, "not-yet")["target_uuid"] == export["target_uuid"]


@pytest.mark.parametrize("name", ["..", ".hidden", "a" * 129, "sp%20ace", "semi;colon", "ü"])
def test_invalid_group_names_are_404(client, name):
    response = client.post(f"/services/{name}/errors", data="{}")
    assert response.status_code == 404
    assert client.get(f"/services/{name}/-/errors").status_code == 404


def test_longest_valid_group_name_is_accepted(client):
    name = "a" * 128
    assert post(client, push_body(aggregate("k", 1)), group=name).status_code == 200
    assert counts(scrape(client, name)) == {"k": 1}
