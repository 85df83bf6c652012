"""Secrets beyond headers, as Sentry scrubs them by default: fields with secret names in the
request URL and body, and payment card numbers in messages, URLs and bodies. Each client's
shapes: the Python client itself, and the Go, Ruby (Rack) and Scala clients' bodies."""

import json
import uuid
from pathlib import Path

import pytest
from periskop_client.collector import ExceptionCollector
from periskop_client.exporter import ExceptionExporter
from periskop_client.models import HTTPContext

from .helpers import aggregate, by_key, occurrence, post, push_body, scrape
from .servers import gunicorn_on_new_database
from .test_gunicorn import scrape as scrape_url

F = "[Filtered]"


def pushed(client, message="boom", cause=None, **context):
    """The occurrence as exported after pushing one with this message and http_context."""
    http_context = {
        "request_method": "POST",
        "request_url": None,
        "request_headers": None,
        "request_body": None,
        **context,
    }
    entry = occurrence(message, http_context=http_context)
    entry["error"]["cause"] = cause
    key = str(uuid.uuid4())
    assert post(client, push_body(aggregate(key, 1, [entry]))).status_code == 200
    return by_key(scrape(client))[key]["latest_errors"][0]


def test_the_python_client_through_gunicorn(tmp_path):
    collector = ExceptionCollector()
    context = HTTPContext(
        request_method="POST",
        request_url="http://shop/checkout?user=ann&password=hunter2&page=2",
        request_headers={"Accept": "application/json", "Authorization": "Bearer x"},
        request_body=json.dumps(
            {"user": "ann", "password": "hunter2", "card": "4111 1111 1111 1111", "qty": 2}
        ),
    )
    try:
        raise ValueError("charge of card 4242424242424242 declined")
    except ValueError as error:
        collector.report_with_context(error, context)
    with gunicorn_on_new_database(tmp_path) as gateway:
        ExceptionExporter(collector).push_to_gateway(gateway.url)
        [aggregate_] = scrape_url(gateway.url).json()["aggregated_errors"]
    exported = aggregate_["latest_errors"][0]
    assert exported["error"]["message"] == f"charge of card {F} declined"
    http = exported["http_context"]
    assert http["request_url"] == f"http://shop/checkout?user=ann&password={F}&page=2"
    assert json.loads(http["request_body"]) == {"user": "ann", "password": F, "card": F, "qty": 2}
    assert http["request_headers"] == {"Accept": "application/json", "Authorization": F}


def test_go_client_shapes(client):
    # periskop-go: the server request's URL (path and query), the body as read, JSON.
    body = {
        "payment": {"card_number": "5555555555554444", "cvc": "123"},
        "auth": {"user": "svc", "pass": "x"},
        "items": [{"sku": "A1", "api_key": "k-1"}],
    }
    exported = pushed(
        client,
        request_url="/v1/charge?amount=5&api_key=k123&Access-Token=t",
        request_headers={"Content-Type": "application/json"},
        request_body=json.dumps(body),
    )["http_context"]
    assert exported["request_url"] == f"/v1/charge?amount=5&api_key={F}&Access-Token={F}"
    assert json.loads(exported["request_body"]) == {
        "payment": {"card_number": F, "cvc": "123"},
        "auth": F,
        "items": [{"sku": "A1", "api_key": F}],
    }


def test_ruby_rack_shapes(client):
    # Rails' login form, as Rack hands it over: form-encoded, names in brackets.
    form = (
        "utf8=%E2%9C%93&authenticity_token=abc%2Bdef%3D%3D&user%5Bemail%5D=a%40b.c"
        "&user%5Bpassword%5D=hunter2&commit=Log+in"
    )
    exported = pushed(
        client,
        request_url="https://app.example/users/sign_in?return_to=%2Fhome&session_id=s1",
        request_headers={"HTTP_COOKIE": "_app_session=abc", "CONTENT_TYPE": "form"},
        request_body=form,
    )["http_context"]
    assert exported["request_url"] == (
        f"https://app.example/users/sign_in?return_to=%2Fhome&session_id={F}"
    )
    assert exported["request_body"] == (
        f"utf8=%E2%9C%93&authenticity_token={F}&user%5Bemail%5D=a%40b.c"
        f"&user%5Bpassword%5D={F}&commit=Log+in"
    )
    assert exported["request_headers"]["HTTP_COOKIE"] == F


def test_scala_client_shapes(client):
    # A message-only report (addMessage: no class, no stack trace), a cause with a card
    # number, and a JSON body cut short, which does not parse.
    exported = pushed(
        client,
        message="payment with 3782 822463 10005 failed",
        cause={"class": "java.lang.IllegalStateException", "message": "card 5105105105105100"},
        request_url="https://billing.internal/api/pay#access_token=xyz&state=1",
        request_body='{"customer": "c-1", "secret": "abc", "note": "card 4000056655665556 and',
    )
    assert exported["error"]["message"] == f"payment with {F} failed"
    assert exported["error"]["cause"]["message"] == f"card {F}"
    http = exported["http_context"]
    assert http["request_url"] == f"https://billing.internal/api/pay#access_token={F}&state=1"
    assert http["request_body"] == f'{{"customer": "c-1", "secret": "{F}", "note": "card {F} and'


def test_a_password_in_the_url_user_info_is_filtered(client):
    exported = pushed(client, request_url="https://deploy:s3cr3t@hooks.example/run?x=1")
    assert exported["http_context"]["request_url"] == f"https://deploy:{F}@hooks.example/run?x=1"


@pytest.mark.parametrize(
    "text",
    [
        "http://svc/search?q=a+b&page=2",  # nothing secret: kept byte for byte
        "order 1764201234567890123 failed",  # a nanosecond timestamp: begins with 1
        "card 4111111111111112 failed",  # fails the Luhn check
        "card 411111111111 failed",  # 12 digits
        "ids 4111111111111111999999 failed",  # part of a longer number
    ],
)
def test_what_is_not_secret_is_kept(client, text):
    exported = pushed(client, message=text, request_url=text, request_body=text)
    assert exported["error"]["message"] == text
    assert exported["http_context"]["request_url"] == text
    assert exported["http_context"]["request_body"] == text


def test_a_json_body_without_secrets_is_kept_as_it_was(client):
    body = '{ "user" : "ann",\n  "note": "the author is set" }'  # "author": a word, no field
    assert pushed(client, request_body=body)["http_context"]["request_body"] == body


def test_the_lists_are_configurable(make_app):
    client = make_app(SCRUB_FIELDS="customer_ref, pin").test_client()
    exported = pushed(client, request_url="/x?Customer_Ref=c1&pin=1234&password=p")
    assert exported["http_context"]["request_url"] == f"/x?Customer_Ref={F}&pin={F}&password={F}"

    client = make_app(SCRUB_DEFAULT_FIELDS=False, SCRUB_CARD_NUMBERS=False).test_client()
    exported = pushed(client, message="card 4111111111111111", request_url="/x?password=p&token=t")
    assert exported["error"]["message"] == "card 4111111111111111"
    assert exported["http_context"]["request_url"] == "/x?password=p&token=t"


@pytest.mark.sqlite_only
def test_scrubbed_values_never_reach_the_database_file(client, database_url):
    pushed(
        client,
        message="card 4111111111111111",
        request_url="/login?password=very-secret-pw",
        request_body='{"api_key": "very-secret-key"}',
    )
    path = Path(database_url.removeprefix("sqlite:///"))
    data = b"".join(p.read_bytes() for p in (path, Path(f"{path}-wal")) if p.exists())
    assert F.encode() in data
    for secret in (b"4111111111111111", b"very-secret-pw", b"very-secret-key"):
        assert secret not in data
