"""The pages for people, read through the app: what each shows, paging and filters, the admin
actions with and without credentials, forged forms refused, pushed text shown as text."""

import re
import time
from urllib.parse import parse_qs, urlsplit

import pytest
from bs4 import BeautifulSoup
from itsdangerous import TimestampSigner, URLSafeTimedSerializer
from werkzeug.security import generate_password_hash

from periskop_pushgateway.storage.planning import key_digest
from periskop_pushgateway.web import form_tokens
from periskop_pushgateway.web.views import current_store

from .helpers import aggregate, counts, occurrence, post, push_body, scrape
from .test_auth import basic

CSP = re.compile(r"script-src 'self'(;|$)")


def page(client, path, status=200, **kwargs):
    """GET an HTML page; returns it parsed."""
    response = client.get(path, **kwargs)
    assert response.status_code == status, response.data[:2000]
    assert response.mimetype == "text/html"
    assert CSP.search(response.headers["Content-Security-Policy"])
    return BeautifulSoup(response.data, "html.parser")


def text(element):
    return " ".join(element.get_text().split())


def key_path(key, group=None):
    prefix = f"/services/{group}" if group else ""
    return f"{prefix}/-/keys/{key_digest(key).hex()}"


def listed_keys(soup):
    return [text(cell) for cell in soup.select("table.keys td.key")]


def push_keys(client, group, keys, **fields):
    response = post(client, push_body(*(aggregate(key, 1, **fields) for key in keys)), group=group)
    assert response.status_code == 200, response.data


# --- /: every group at a glance ---------------------------------------------------------


def test_the_overview_lists_the_default_group_before_anything_is_pushed(client):
    soup = page(client, "/")
    (row,) = soup.select("table.groups tbody tr")
    assert "the default group" in text(row)
    assert scrape(client)["target_uuid"] in text(row)
    assert "never" in text(row)


def test_the_overview_shows_each_groups_keys_counts_and_last_push(client):
    post(client, push_body(aggregate("a", 3), aggregate("b", 4), aggregate("c", 5)), group="jobs")
    client.delete("/services/jobs/-/errors/c")
    post(client, push_body(aggregate("x", 1)))
    rows = {
        text(row.select_one("td")): row for row in page(client, "/").select("table.groups tbody tr")
    }
    assert list(rows) == ["the default group", "jobs"]
    cells = [text(cell) for cell in rows["jobs"].select("td")]
    assert cells[1] == scrape(client, "jobs")["target_uuid"]
    assert cells[2:5] == ["2", "1", "7"]  # exported, hidden, the exported counts' sum
    assert re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC (now|\d+ seconds? ago)$", cells[5])
    assert rows["jobs"].select_one("a")["href"] == "/services/jobs/-/keys"
    assert rows["the default group"].select_one("a")["href"] == "/-/keys"


def test_the_overview_counts_rejected_pushes_per_group(client):
    push_keys(client, "jobs", ["k"])
    for _ in range(2):
        post(client, "not json", group="jobs")
    post(client, '{"aggregated_errors": [{"total_count": 1}]}', group="never-stored")
    rows = {
        text(row.select_one("td")): row for row in page(client, "/").select("table.groups tbody tr")
    }
    assert "2 rejected" in text(rows["jobs"])
    # A group whose every push was rejected has no row of its own in the database: listed.
    assert "1 rejected" in text(rows["never-stored"])
    assert "never" in text(rows["never-stored"])
    # The default group holds the reports; none of them was a push to it.
    assert "none" in text(rows["the default group"].select("td")[-1])
    link = rows["jobs"].select_one("a.rejected")["href"]
    assert link == key_path("InvalidPush@periskop-pushgateway")
    assert "push to group 'jobs' rejected with 400" in text(page(client, link))


# --- a group's page ---------------------------------------------------------------------


def test_the_group_page_shows_keys_with_severity_count_and_latest_error(client):
    old = occurrence("older message", timestamp="2026-01-01T00:00:00Z", cls="OldError")
    new = occurrence("newest message", timestamp="2026-01-02T00:00:00Z", cls="NewError")
    post(
        client,
        push_body(aggregate("Failure@1", 12, [old, new], severity="warning"), aggregate("q", 1)),
        group="jobs",
    )
    soup = page(client, "/services/jobs/-/keys")
    assert soup.select_one("h1").get_text() == "Group jobs"
    assert scrape(client, "jobs")["target_uuid"] in text(soup.select_one(".facts"))
    rows = {text(row.select_one("td.key")): row for row in soup.select("table.keys tbody tr")}
    cells = [text(cell) for cell in rows["Failure@1"].select("td")]
    assert cells[0] == "warning"
    assert cells[2] == "12"
    assert cells[4] == "NewError: newest message"
    assert rows["Failure@1"].select_one("td.key a")["href"] == key_path("Failure@1", "jobs")


def test_the_default_group_has_a_page_too(client):
    push_keys(client, None, ["default-key"])
    soup = page(client, "/-/keys")
    assert soup.select_one("h1").get_text() == "The default group"
    assert listed_keys(soup) == ["default-key"]
    assert soup.select_one("td.key a")["href"] == key_path("default-key")


def test_keys_sort_by_last_seen_count_and_key(app, client):
    store = current_store_of(app)
    for seconds, (key, count) in enumerate([("b", 5), ("c", 1), ("a", 9)]):
        store.clock = lambda seconds=seconds: (1_800_000_000 + seconds) * 10**9
        push_keys(client, "g", [key])
        post(client, push_body(aggregate(key, count)), group="g")

    def keys(query=""):
        return listed_keys(page(client, f"/services/g/-/keys{query}"))

    assert keys() == ["a", "c", "b"]  # the last seen first
    assert keys("?sort=last_seen&order=asc") == ["b", "c", "a"]
    assert keys("?sort=count") == ["a", "b", "c"]  # counts 10, 6, 2
    assert keys("?sort=count&order=asc") == ["c", "b", "a"]
    assert keys("?sort=key") == ["a", "b", "c"]
    assert keys("?sort=key&order=desc") == ["c", "b", "a"]


def current_store_of(app):
    with app.app_context():
        return current_store()


def test_keys_filter_by_severity_and_by_text_in_key_class_or_message(client):
    post(
        client,
        push_body(
            aggregate("Disk@1", 1, [occurrence("disk full", cls="IOError")], severity="error"),
            aggregate("Slow@2", 1, [occurrence("took 5 s", cls="Timeout")], severity="warning"),
            aggregate(
                "Note@3",
                1,
                [
                    occurrence("an older 100% match", timestamp="2026-01-01T00:00:00Z"),
                    occurrence("the latest", timestamp="2026-01-02T00:00:00Z"),
                ],
                severity="info",
            ),
        ),
        group="g",
    )

    def keys(query):
        return sorted(listed_keys(page(client, f"/services/g/-/keys?{query}")))

    assert keys("severity=warning") == ["Slow@2"]
    assert keys("severity=info") == ["Note@3"]
    assert keys("q=disk") == ["Disk@1"]  # key and message, case aside
    assert keys("q=ioerr") == ["Disk@1"]  # class
    assert keys("q=100%25") == ["Note@3"]  # an older occurrence's message; % is no wildcard
    assert keys("q=_") == []  # nor is _
    assert keys("q=%40") == ["Disk@1", "Note@3", "Slow@2"]
    assert keys("q=disk&severity=warning") == []
    soup = page(client, "/services/g/-/keys?q=nothing-like-it")
    assert "No key matches." in text(soup)
    assert soup.select_one("input[name=q]")["value"] == "nothing-like-it"


def test_keys_come_a_page_at_a_time(client):
    push_keys(client, "big", [f"Key@{number:04d}" for number in range(250)])

    def keys(query):
        return listed_keys(page(client, f"/services/big/-/keys?sort=key&{query}"))

    first, second, third = keys("page=1"), keys("page=2"), keys("page=3")
    assert (len(first), len(second), len(third)) == (100, 100, 50)
    assert first + second + third == [f"Key@{number:04d}" for number in range(250)]
    soup = page(client, "/services/big/-/keys?sort=key&order=asc&page=2&q=Key")
    assert "page 2 of 3" in text(soup.select_one(".pager"))
    next_link = soup.select_one(".pager a[rel=next]")["href"]
    assert parse_qs(urlsplit(next_link).query) == {
        "page": ["3"],
        "sort": ["key"],
        "order": ["asc"],
        "q": ["Key"],
    }
    assert len(listed_keys(page(client, next_link))) == 50
    page(client, "/services/big/-/keys?page=4", status=404)
    assert page(client, "/services/big/-/keys?q=Key@00&page=1").select_one(".pager") is None


def test_a_full_group_pages_to_its_last_key(client):
    keys = [f"Key@{number:04d}" for number in range(5000)]  # MAX_KEYS_PER_GROUP
    for start in range(0, len(keys), 1000):
        push_keys(client, "full", keys[start : start + 1000])
    soup = page(client, "/services/full/-/keys")
    assert len(listed_keys(soup)) == 100
    assert "5,000 exported keys" in text(soup.select_one(".summary"))
    last = soup.select_one(".pager a[rel=last]")["href"]
    assert parse_qs(urlsplit(last).query)["page"] == ["50"]
    assert len(listed_keys(page(client, last))) == 100
    assert listed_keys(page(client, "/services/full/-/keys?sort=key&page=50"))[-1] == "Key@4999"
    page(client, "/services/full/-/keys?page=51", status=404)


@pytest.mark.parametrize(
    "query",
    [
        "page=0",
        "page=-1",
        "page=x",
        "page=1.5",
        "page=",
        "page=%D9%A1",  # an Arabic-Indic one: a digit to str.isdigit, no page number
        "sort=severity",
        "order=up",
        "severity=fatal",
        "q=" + "x" * 1025,
        "q=%00",
    ],
)
def test_bad_page_queries_get_400_and_change_nothing(client, query):
    push_keys(client, "g", ["k"])
    before = scrape(client, "g")
    soup = page(client, f"/services/g/-/keys?{query}", status=400)
    assert soup.select_one("h1").get_text() == "400 Bad Request"
    assert scrape(client, "g") == before


def test_unknown_groups_and_keys_are_404_pages(client):
    push_keys(client, "g", ["k"])
    page(client, "/services/nowhere/-/keys", status=404)
    page(client, key_path("k", "nowhere"), status=404)
    page(client, key_path("other", "g"), status=404)
    page(client, key_path("k"), status=404)  # not in the default group
    soup = page(client, "/-/keys", status=404)  # nothing pushed to it
    assert "Nothing was ever pushed to the default group." in text(soup)
    # Not a digest: no page at all (the JSON 404 of an unknown path).
    assert client.get("/services/g/-/keys/k").status_code == 404


# --- a key's page -----------------------------------------------------------------------


def test_the_key_page_shows_counts_times_and_occurrences_newest_first(client):
    long_trace = [f"  File 'job.py', line {number}" for number in range(40)]
    first = occurrence("first", timestamp="2026-01-01T00:00:00Z")
    second = occurrence(
        "second",
        timestamp="2026-01-02T03:04:05.678Z",
        cls="TimeoutError",
        http_context={
            "request_method": "POST",
            "request_url": "http://svc/run?x=1",
            "request_headers": {"Authorization": "Bearer t0ken", "Accept": "text/plain"},
            "request_body": "{}",
        },
    )
    second["error"]["stacktrace"] = long_trace
    second["error"]["cause"] = {
        "class": "OSError",
        "message": "disk gone",
        "stacktrace": ["inner 1"],
        "cause": {"class": "IOError", "message": "deeper", "stacktrace": None, "cause": None},
    }
    post(
        client,
        push_body(
            aggregate(
                "Job@1", 7, [first, second], severity="warning", created_at="2025-12-31T23:00:00Z"
            )
        ),
        group="jobs",
    )
    soup = page(client, key_path("Job@1", "jobs"))
    facts = text(soup.select_one(".facts"))
    assert "count 7" in facts
    assert "first seen 2025-12-31 23:00:00 UTC" in facts
    assert re.search(r"last seen \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC (now|\d+ seconds? ago)", facts)
    assert "severity warning" in facts
    newest, oldest = soup.select("article.occurrence")
    assert "2026-01-02 03:04:05 UTC" in text(newest.select_one("header"))
    assert "ago" in text(newest.select_one("header"))
    assert text(newest.select_one(".error-text")) == "TimeoutError: second"
    assert text(oldest.select_one(".error-text")) == "ValueError: first"
    trace, inner_trace = newest.select("details.folded")[:2]
    assert not trace.has_attr("open")  # 40 lines: folded
    assert "40 lines" in text(trace.select_one("summary"))
    assert trace.select_one("pre").get_text() == "\n".join(long_trace)
    assert inner_trace.has_attr("open")  # 1 line: shown
    causes = [text(cause.select_one(".error-text")) for cause in newest.select("li.cause")]
    assert causes == ["OSError: disk gone", "IOError: deeper"]
    http = newest.select_one("section.http")
    assert "POST http://svc/run?x=1" in text(http)
    headers = {text(row.th): text(row.td) for row in http.select("table.headers tr")}
    assert headers == {"Authorization": "[Filtered]", "Accept": "text/plain"}  # as stored


def test_a_resolved_key_still_has_its_page_saying_so(client):
    push_keys(client, "g", ["k", "other"])
    assert client.delete("/services/g/-/errors/k").status_code == 200
    soup = page(client, key_path("k", "g"))
    assert "Not exported" in text(soup.select_one(".notice"))
    assert soup.select_one(".admin") is None
    assert listed_keys(page(client, "/services/g/-/keys")) == ["other"]


# --- pushed text is data, never markup ---------------------------------------------------

PAYLOADS = [
    "<script>window.xss = 1</script>",
    '"><img src=x onerror="window.xss = 1">',
    "'><svg onload=window.xss=1>",
    "</textarea></pre></code><b>bold</b>",
]


def test_pushed_text_is_shown_as_text_on_every_page(client):
    payload = " ".join(PAYLOADS)
    pushed = occurrence(
        payload,
        cls=payload,
        http_context={
            "request_method": payload,
            "request_url": payload,
            "request_headers": {payload: payload},
            "request_body": payload,
        },
    )
    pushed["error"]["stacktrace"] = [payload]
    pushed["error"]["cause"] = {"class": payload, "message": payload}
    post(client, push_body(aggregate(payload, 1, [pushed])), group="g")
    post(client, payload, group="g")  # rejected: the gateway's report quotes it
    paths = [
        "/",
        "/services/g/-/keys",
        "/services/g/-/keys?q=" + "window",
        key_path(payload, "g"),
        key_path("InvalidPush@periskop-pushgateway"),
    ]
    for path in paths:
        response = client.get(path)
        html = response.data.decode()
        soup = BeautifulSoup(html, "html.parser")
        # No element, attribute or script came of it: the only scripts are the gateway's own.
        assert [script.get("src") for script in soup.select("script")] == ["/-/static/pages.js"]
        assert not soup.select("img, svg, b, [onerror], [onload]")
        for fragment in ("<script>window", "<img", "<svg", "<b>"):
            assert fragment not in html
    key_page = page(client, key_path(payload, "g"))
    shown = key_page.get_text()
    assert shown.count(payload) >= 8  # key, class, message, trace, cause, method, url, header…
    assert payload in page(client, "/services/g/-/keys").select_one("td.key").get_text()
    assert payload in page(client, "/services/g/-/keys?q=window").select_one("td.key").get_text()


def test_every_page_and_error_sends_the_content_security_policy(make_app):
    client = make_app(ADMIN_OPEN=False).test_client()
    push_keys(client, "g", ["k"])
    for path, status in [
        ("/", 200),
        ("/services/g/-/keys", 200),
        (key_path("k", "g"), 200),
        ("/services/g/-/keys?page=0", 400),
        ("/services/none/-/keys", 404),
        ("/services/g/-/wipe", 403),
    ]:
        response = client.get(path)
        assert response.status_code == status
        policy = response.headers["Content-Security-Policy"]
        assert "script-src 'self';" in policy and "'unsafe-inline'" not in policy
        assert "frame-ancestors 'none'" in policy
        assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert client.get("/-/static/pages.css").mimetype == "text/css"


def test_reading_the_pages_takes_the_scrape_credentials(make_app):
    app = make_app(SCRAPE_USERNAME="periskop", SCRAPE_PASSWORD_HASH=generate_password_hash("pw"))
    client = app.test_client()
    push_keys(client, "g", ["k"])
    for path in ("/", "/services/g/-/keys", key_path("k", "g"), "/-/static/pages.css"):
        response = client.get(path)
        assert response.status_code == 401
        assert "Basic" in response.headers["WWW-Authenticate"]
        assert client.get(path, headers=basic("periskop", "pw")).status_code == 200
    assert "401 Unauthorized" in text(page(client, "/", status=401).select_one("h1"))


# --- admin actions ----------------------------------------------------------------------

ADMIN = basic("ops", "admin-secret")


@pytest.fixture
def admin_app(make_app):
    return make_app(
        ADMIN_USERNAME="ops", ADMIN_PASSWORD_HASH=generate_password_hash("admin-secret")
    )


def confirm(client, path, **kwargs):
    """Open a confirmation page; returns the token its form carries."""
    soup = page(client, path, **kwargs)
    form = soup.select_one("form.confirm")
    assert form["method"] == "post" and form["action"] == path
    return form.select_one("input[name=token]")["value"]


def test_resolving_a_key_from_its_page_with_admin_credentials(admin_app):
    client = admin_app.test_client()
    push_keys(client, "g", ["k", "other"])
    key_soup = page(client, key_path("k", "g"))
    button = key_soup.select_one(".admin a.button")
    assert button["href"] == key_path("k", "g") + "/resolve"
    assert "Needs the admin credentials" in text(key_soup.select_one(".admin"))

    token = confirm(client, button["href"], headers=ADMIN)
    response = client.post(button["href"], data={"token": token}, headers=ADMIN)
    assert response.status_code == 303
    assert response.headers["Location"] == "/services/g/-/keys?done=resolved"
    soup = page(client, response.headers["Location"])
    assert "Resolved" in text(soup.select_one(".notice"))
    assert listed_keys(soup) == ["other"]
    assert counts(scrape(client, "g")) == {"other": 1}


def test_wiping_a_group_from_its_page_with_admin_credentials(admin_app):
    client = admin_app.test_client()
    push_keys(client, "g", ["k"])
    push_keys(client, None, ["default-key"])
    old_uuid = scrape(client, "g")["target_uuid"]
    token = confirm(client, "/services/g/-/wipe", headers=ADMIN)
    response = client.post("/services/g/-/wipe", data={"token": token}, headers=ADMIN)
    assert response.status_code == 303
    assert response.headers["Location"] == "/services/g/-/keys?done=wiped"
    export = scrape(client, "g")
    assert export["aggregated_errors"] == [] and export["target_uuid"] != old_uuid
    assert "Wiped" in text(page(client, response.headers["Location"]).select_one(".notice"))

    token = confirm(client, "/-/wipe", headers=ADMIN)
    assert client.post("/-/wipe", data={"token": token}, headers=ADMIN).status_code == 303
    assert scrape(client)["aggregated_errors"] == []


@pytest.mark.parametrize("headers", [{}, basic("ops", "wrong"), basic("jobs", "admin-secret")])
def test_admin_actions_without_admin_credentials_get_401_and_change_nothing(admin_app, headers):
    client = admin_app.test_client()
    push_keys(client, "g", ["k"])
    before = scrape(client, "g")
    resolve = key_path("k", "g") + "/resolve"
    token = confirm(client, resolve, headers=ADMIN)
    wipe_token = confirm(client, "/services/g/-/wipe", headers=ADMIN)
    for path in (resolve, "/services/g/-/wipe"):
        soup = page(client, path, status=401, headers=headers)
        assert "401 Unauthorized" in text(soup.select_one("h1"))
    for path, form_token in ((resolve, token), ("/services/g/-/wipe", wipe_token)):
        response = client.post(path, data={"token": form_token}, headers=headers)
        assert response.status_code == 401
        assert "Basic" in response.headers["WWW-Authenticate"]
    assert scrape(client, "g") == before


def test_admin_actions_are_off_with_the_admin_api(make_app):
    client = make_app(ADMIN_OPEN=False).test_client()
    push_keys(client, "g", ["k"])
    before = scrape(client, "g")
    soup = page(client, key_path("k", "g"))
    assert soup.select_one(".admin button[disabled]").get_text() == "Resolve"
    assert "PERISKOP_PUSHGATEWAY_ADMIN_USERNAME" in text(soup.select_one(".admin"))
    assert page(client, "/services/g/-/keys").select_one(".admin button[disabled]")
    resolve = key_path("k", "g") + "/resolve"
    for path in (resolve, "/services/g/-/wipe"):
        assert "admin API is off" in text(page(client, path, status=403))
        assert client.post(path, data={"token": "x"}).status_code == 403
    assert scrape(client, "g") == before


def test_with_the_admin_api_open_the_actions_need_only_the_confirmation(client):
    push_keys(client, "g", ["k"])
    soup = page(client, key_path("k", "g"))
    assert "asks for a confirmation" in text(soup.select_one(".admin"))
    resolve = key_path("k", "g") + "/resolve"
    token = confirm(client, resolve)
    assert client.post(resolve, data={"token": token}).status_code == 303
    assert counts(scrape(client, "g")) == {}


def test_forged_or_misdirected_forms_are_refused_and_change_nothing(admin_app):
    client = admin_app.test_client()
    push_keys(client, "g", ["k", "other"])
    push_keys(client, "h", ["k"])
    before = {group: scrape(client, group) for group in ("g", "h")}
    resolve = key_path("k", "g") + "/resolve"
    token = confirm(client, resolve, headers=ADMIN)
    other_token = confirm(client, key_path("other", "g") + "/resolve", headers=ADMIN)
    wipe_token = confirm(client, "/services/g/-/wipe", headers=ADMIN)
    signer = URLSafeTimedSerializer("not the gateway's key", salt="periskop-pushgateway page form")
    for path, data in [
        (resolve, {}),  # no token: a form posted from another site
        (resolve, {"token": ""}),
        (resolve, {"token": token[:-2] + ("AA" if token[-2:] != "AA" else "BB")}),
        (resolve, {"token": other_token}),  # for another key
        (resolve, {"token": wipe_token}),  # for another action
        (key_path("k", "h") + "/resolve", {"token": token}),  # for another group
        ("/services/h/-/wipe", {"token": wipe_token}),
        ("/services/g/-/wipe", {"token": token}),
        (resolve, {"token": signer.dumps(["resolve", "g", key_digest("k").hex()])}),
    ]:
        response = client.post(path, data=data, headers=ADMIN)
        assert response.status_code == 400, (path, data)
        assert "nothing was changed" in text(BeautifulSoup(response.data, "html.parser"))
    assert {group: scrape(client, group) for group in ("g", "h")} == before


def test_a_form_older_than_an_hour_is_refused(client, app):
    push_keys(client, "g", ["k"])
    resolve = key_path("k", "g") + "/resolve"
    confirm(client, resolve)  # the gateway draws its key

    class OverAnHourAgo(TimestampSigner):
        def get_timestamp(self):
            return int(time.time()) - form_tokens.MAX_AGE_SECONDS - 1

    key = form_tokens.stored_secret(current_store_of(app))
    old = URLSafeTimedSerializer(key, salt="periskop-pushgateway page form", signer=OverAnHourAgo)
    response = client.post(
        resolve, data={"token": old.dumps(["resolve", "g", key_digest("k").hex()])}
    )
    assert response.status_code == 400
    assert counts(scrape(client, "g")) == {"k": 1}


def test_forms_shown_by_one_worker_are_taken_by_another(make_app):
    """Workers (and instances on one database) share the key kept in the database."""
    shown_by, taken_by = make_app().test_client(), make_app().test_client()
    push_keys(shown_by, "g", ["k"])
    resolve = key_path("k", "g") + "/resolve"
    token = confirm(shown_by, resolve)
    assert taken_by.post(resolve, data={"token": token}).status_code == 303
    assert counts(scrape(taken_by, "g")) == {}


def test_a_configured_secret_key_signs_the_forms(make_app):
    client = make_app(SECRET_KEY="configured").test_client()
    push_keys(client, "g", ["k", "other"])
    resolve = key_path("k", "g") + "/resolve"
    token = confirm(client, resolve)
    stored = make_app().test_client()  # the key kept in the database: another key
    assert stored.post(resolve, data={"token": token}).status_code == 400
    signer = URLSafeTimedSerializer("configured", salt="periskop-pushgateway page form")
    forged_elsewhere = signer.dumps(["resolve", "g", key_digest("k").hex()])
    assert client.post(resolve, data={"token": forged_elsewhere}).status_code == 303
    assert counts(scrape(client, "g")) == {"other": 1}


def test_acting_on_what_is_gone_is_404(client):
    push_keys(client, "g", ["k"])
    resolve = key_path("k", "g") + "/resolve"
    token = confirm(client, resolve)
    assert client.delete("/services/g/-/errors/k").status_code == 200
    page(client, resolve, status=404)
    assert client.post(resolve, data={"token": token}).status_code == 404
    page(client, key_path("never", "g") + "/resolve", status=404)
    page(client, "/services/nowhere/-/wipe", status=404)


def test_every_template_is_compiled_when_the_app_is_made(app):
    """Under gunicorn's preload that is in the master, before the workers fork: they share
    the compiled templates (about 1.25 MB of a worker's memory) instead of each compiling
    its own on its first page."""
    templates = app.jinja_env.list_templates()
    assert "pages/group.html" in templates
    compiled = {name for _, name in app.jinja_env.cache.keys()}
    assert compiled == set(templates)
