"""The pages in a real browser: headless Chromium (Debian's chromium and chromium-driver)
driven by selenium, against gunicorn on a database the real periskop-client filled. It follows
links from / to a key, filters, resolves a key with the admin credentials, checks that pushed
markup is shown as text and never runs, and saves a screenshot of each page in SCREENSHOTS."""

import base64
import shutil

import pytest
import requests
from periskop_client.collector import ExceptionCollector
from periskop_client.exporter import ExceptionExporter
from periskop_client.models import HTTPContext
from werkzeug.security import generate_password_hash

from .helpers import aggregate, counts, occurrence, push_body
from .servers import REPO, gunicorn_on_new_database
from .test_real_client import report

CHROMIUM = shutil.which("chromium")
CHROMEDRIVER = shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(
    not (CHROMIUM and CHROMEDRIVER),
    reason="no Chromium: apt-get install chromium chromium-driver (.ci/run installs them)",
)
# Left after the run, one PNG per page (build/ is not in git).
SCREENSHOTS = REPO / "build" / "screenshots"
ADMIN = ("ops", "admin-secret")
# Each would set window.xss if it ever ran.
PAYLOAD = '<script>window.xss = 1</script> "><img src=x onerror="window.xss = 2">'
# Real exceptions from real code: each class raised from its own line is a key of its own.
JOB_ERRORS = [
    (ValueError, "invalid literal for int() with base 10: 'n/a'", 3),
    (KeyError, "'customer_id'", 2),
    (TimeoutError, "reading from the warehouse took over 30 s", 5),
    (ConnectionError, "connection to db-replica-2:5432 refused", 1),
    (PermissionError, "[Errno 13] Permission denied: '/var/spool/reports'", 1),
    (FileNotFoundError, "[Errno 2] No such file or directory: 'rates-2026-11-26.csv'", 4),
    (ZeroDivisionError, "division by zero", 2),
    (UnicodeDecodeError, None, 1),
]


def fill(url):
    """What the pages show: a job's errors from the periskop-client, one with an HTTP request;
    markup in every text field the client sends (a class named after it too); a push with
    other severities and a cause chain (the client sends neither); a rejected push."""
    jobs = ExceptionCollector()
    for error_class, message, times in JOB_ERRORS:
        if error_class is UnicodeDecodeError:
            error = UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte")
        else:
            error = error_class(message)
        context = None
        if error_class is TimeoutError:
            context = HTTPContext(
                request_method="GET",
                request_url="http://reports.internal/v1/nightly?day=2026-11-26",
                request_headers={"Accept": "application/json", "Authorization": "Bearer secret"},
            )
        report(jobs, error, times, context)
    ExceptionExporter(jobs).push_to_gateway(url + "/services/nightly-report")

    hostile = ExceptionCollector()
    marked_up = type(PAYLOAD, (Exception,), {})  # a class whose name is markup
    context = HTTPContext(
        request_method=PAYLOAD,
        request_url=PAYLOAD,
        request_headers={PAYLOAD: PAYLOAD},
        request_body=PAYLOAD,
    )
    report(hostile, marked_up(PAYLOAD), 1, context)
    ExceptionExporter(hostile).push_to_gateway(url + "/services/hostile")

    caused = occurrence("the quota is nearly used", cls="QuotaWarning")
    caused["error"]["cause"] = {"class": PAYLOAD, "message": PAYLOAD, "stacktrace": [PAYLOAD]}
    body = push_body(
        aggregate("QuotaWarning@1f2e3d4c", 7, [caused], severity="warning"),
        aggregate(
            "CacheMiss@9a8b7c6d", 40, [occurrence("cold cache", cls="CacheMiss")], severity="info"
        ),
    )
    for group in ("nightly-report", "hostile"):
        response = requests.post(f"{url}/services/{group}/errors", json=body, timeout=30)
        assert response.status_code == 200, response.text
    rejected = requests.post(url + "/services/nightly-report/errors", data="{", timeout=30)
    assert rejected.status_code == 400


@pytest.fixture(scope="module")
def gateway(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pages-browser")
    env = {
        "PERISKOP_PUSHGATEWAY_ADMIN_USERNAME": ADMIN[0],
        "PERISKOP_PUSHGATEWAY_ADMIN_PASSWORD_HASH": generate_password_hash(ADMIN[1]),
    }
    with gunicorn_on_new_database(folder, env=env) as server:
        fill(server.url)
        yield server


@pytest.fixture(scope="module")
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage"):
        options.add_argument(argument)  # no sandbox: the tests run as root
    options.add_argument("--window-size=1400,1000")
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.implicitly_wait(5)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    print(f"screenshots in {SCREENSHOTS}")
    yield driver
    driver.quit()


def css(browser, selector):
    from selenium.webdriver.common.by import By

    return browser.find_elements(By.CSS_SELECTOR, selector)


def listed_keys(browser):
    return [cell.text for cell in css(browser, "table.keys td.key")]


def follow(browser, element):
    """Click a link or button and wait for the page it leads to."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.expected_conditions import staleness_of
    from selenium.webdriver.support.ui import WebDriverWait

    page = browser.find_element(By.TAG_NAME, "html")
    element.click()
    WebDriverWait(browser, 10).until(staleness_of(page))


def nothing_ran(browser):
    assert browser.execute_script("return typeof window.xss") == "undefined"


def screenshot(browser, name):
    path = SCREENSHOTS / f"{name}.png"
    assert browser.save_screenshot(str(path))
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_following_links_from_the_overview_to_a_key(gateway, browser):
    from selenium.webdriver.common.by import By

    browser.get(gateway.url + "/")
    rows = {row.find_element(By.CSS_SELECTOR, "td").text: row for row in css(browser, "tbody tr")}
    assert set(rows) == {"the default group", "nightly-report", "hostile"}
    assert "1 rejected" in rows["nightly-report"].text
    screenshot(browser, "overview")

    follow(browser, rows["nightly-report"].find_element(By.LINK_TEXT, "nightly-report"))
    assert browser.find_element(By.TAG_NAME, "h1").text == "Group nightly-report"
    keys = listed_keys(browser)
    assert len(keys) == len(JOB_ERRORS) + 2
    screenshot(browser, "group")

    follow(browser, browser.find_element(By.PARTIAL_LINK_TEXT, "TimeoutError@"))
    assert browser.find_element(By.CSS_SELECTOR, "h1 code.key").text.startswith("TimeoutError@")
    facts = browser.find_element(By.CSS_SELECTOR, ".facts").text
    assert "count\n5" in facts
    (latest, *_older) = css(browser, "article.occurrence")
    assert "TimeoutError: reading from the warehouse took over 30 s" in latest.text
    assert "GET http://reports.internal/v1/nightly?day=2026-11-26" in latest.text
    assert "[Filtered]" in latest.text and "Bearer secret" not in browser.page_source
    screenshot(browser, "key")


def test_filtering_a_group(gateway, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.expected_conditions import staleness_of
    from selenium.webdriver.support.ui import Select, WebDriverWait

    browser.get(gateway.url + "/services/nightly-report/-/keys")
    search = browser.find_element(By.NAME, "q")
    search.send_keys("warehouse")
    follow(browser, browser.find_element(By.CSS_SELECTOR, "form.filters button[type=submit]"))
    assert [key.split("@")[0] for key in listed_keys(browser)] == ["TimeoutError"]
    screenshot(browser, "group-filtered")

    browser.get(gateway.url + "/services/nightly-report/-/keys")
    # pages.js applies a changed list at once.
    page = browser.find_element(By.TAG_NAME, "html")
    Select(browser.find_element(By.NAME, "severity")).select_by_value("warning")
    WebDriverWait(browser, 10).until(staleness_of(page))
    assert "severity=warning" in browser.current_url
    assert listed_keys(browser) == ["QuotaWarning@1f2e3d4c"]
    # Sorting by a column header.
    browser.get(gateway.url + "/services/nightly-report/-/keys")
    follow(browser, browser.find_element(By.LINK_TEXT, "count"))
    assert listed_keys(browser)[0] == "CacheMiss@9a8b7c6d"  # 40, the highest count


def test_pushed_markup_is_shown_as_text_and_never_runs(gateway, browser):
    from selenium.webdriver.common.by import By

    browser.get(gateway.url + "/services/hostile/-/keys")
    nothing_ran(browser)
    assert any(PAYLOAD in key for key in listed_keys(browser))
    follow(browser, browser.find_element(By.PARTIAL_LINK_TEXT, "window.xss = 1"))
    nothing_ran(browser)
    page_text = browser.find_element(By.TAG_NAME, "main").text
    # The key, class, message, method, URL, header name and value, body, stack trace.
    assert page_text.count("<script>window.xss = 1</script>") >= 8
    # Asked of the page itself: find_elements would wait out the implicit wait to find none.
    assert browser.execute_script("return document.querySelectorAll('main img').length") == 0
    scripts = browser.execute_script(
        "return Array.from(document.scripts, script => script.getAttribute('src'))"
    )
    assert scripts == ["/-/static/pages.js"]
    screenshot(browser, "key-with-markup")

    browser.get(gateway.url + "/services/hostile/-/keys?q=QuotaWarning")
    follow(browser, browser.find_element(By.PARTIAL_LINK_TEXT, "QuotaWarning@"))
    nothing_ran(browser)
    cause = browser.find_element(By.CSS_SELECTOR, "li.cause").text
    assert PAYLOAD in cause
    for path in ("/", "/services/hostile/-/keys?q=script"):
        browser.get(gateway.url + path)
        nothing_ran(browser)


def test_resolving_a_key_with_admin_credentials(gateway, browser):
    from selenium.webdriver.common.by import By

    browser.get(gateway.url + "/services/nightly-report/-/keys?q=KeyError")
    follow(browser, browser.find_element(By.PARTIAL_LINK_TEXT, "KeyError@"))
    key = browser.find_element(By.CSS_SELECTOR, "h1 code.key").text
    admin = browser.find_element(By.CSS_SELECTOR, ".admin").text
    assert "Needs the admin credentials" in admin
    # The browser sends the credentials as a person's would once asked.
    token = base64.b64encode(":".join(ADMIN).encode()).decode()
    browser.execute_cdp_cmd("Network.enable", {})
    browser.execute_cdp_cmd(
        "Network.setExtraHTTPHeaders", {"headers": {"Authorization": f"Basic {token}"}}
    )
    try:
        follow(browser, browser.find_element(By.PARTIAL_LINK_TEXT, "Resolve"))
        assert browser.find_element(By.TAG_NAME, "h1").text == "Resolve this key?"
        screenshot(browser, "confirm-resolve")
        follow(browser, browser.find_element(By.CSS_SELECTOR, "form.confirm button[type=submit]"))
    finally:
        browser.execute_cdp_cmd("Network.setExtraHTTPHeaders", {"headers": {}})
    assert browser.current_url.endswith("/services/nightly-report/-/keys?done=resolved")
    assert "Resolved" in browser.find_element(By.CSS_SELECTOR, ".notice").text
    assert key not in listed_keys(browser)
    assert len(listed_keys(browser)) == len(JOB_ERRORS) + 1
    export = requests.get(gateway.url + "/services/nightly-report/-/errors", timeout=30).json()
    assert key not in counts(export)
    screenshot(browser, "group-after-resolve")
