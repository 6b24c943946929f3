#!/usr/bin/env python3
"""Browser check of hookline-console: the page and its API, through Chromium (Playwright's
sync API). Runs against a console that is up, with data in it:

  CONSOLE_URL                        e.g. http://127.0.0.1:18090
  OPERATOR_USER, OPERATOR_PASSWORD   a console user of role operator
  VIEWER_USER, VIEWER_PASSWORD       a console user of role viewer
  WEBHOOK_ID                         a webhook with events...
  EVENT_TYPE, EVENT_ID               ...one of them of this type, with this provider event id
  DEAD_MESSAGE_ID                    message id of a dead letter of WEBHOOK_ID, not replayed yet
  SECRET_CANARY                      optional: a signing secret the page must never show
  SCREENSHOT_DIR                     optional: PNGs of the pages go there
  CHROMIUM                           optional: the browser (default /usr/bin/chromium)

Exits 1 on the first failed check, 0 when all pass.
"""

import base64
import json
import os
import re
import sys
import time
from dataclasses import dataclass

from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import expect, sync_playwright

LAPTOP = {"width": 1280, "height": 800}
PHONE = {"width": 375, "height": 812}
POLL_SECONDS = 30
MAX_PAGES = 100  # "Load more" clicks when looking for a row
SIGNATURE_HEADER = re.compile(r"signature|^x-hub-signature|^x-shopify-hmac", re.IGNORECASE)

# The page root says which hash it rendered and whether it is done (data-hash, data-state).
PAGE_DONE = """() => {
  const p = document.querySelector('#view > .page');
  return !!p && p.dataset.hash === location.hash && p.dataset.state !== 'loading';
}"""


@dataclass
class Config:
    url: str
    operator: str
    operator_password: str
    viewer: str
    viewer_password: str
    webhook_id: str
    event_type: str
    event_id: str
    dead_message_id: str
    secret_canary: str
    screenshot_dir: str
    chromium: str

    @staticmethod
    def from_env():
        def need(name):
            value = os.environ.get(name)
            if not value:
                sys.exit(f"console_flow: set {name}")
            return value

        return Config(
            url=need("CONSOLE_URL").rstrip("/"),
            operator=need("OPERATOR_USER"),
            operator_password=need("OPERATOR_PASSWORD"),
            viewer=need("VIEWER_USER"),
            viewer_password=need("VIEWER_PASSWORD"),
            webhook_id=need("WEBHOOK_ID"),
            event_type=need("EVENT_TYPE"),
            event_id=need("EVENT_ID"),
            dead_message_id=need("DEAD_MESSAGE_ID"),
            secret_canary=os.environ.get("SECRET_CANARY", ""),
            screenshot_dir=os.environ.get("SCREENSHOT_DIR", ""),
            chromium=os.environ.get("CHROMIUM", "/usr/bin/chromium"),
        )


class Flow:
    """One browser page going through the checks; `dead_letter_id` is found by check 1."""

    def __init__(self, cfg, playwright, page):
        self.cfg = cfg
        self.pw = playwright
        self.page = page
        self.dead_letter_id = None
        self.page_errors = []
        page.on("pageerror", lambda err: self.page_errors.append(str(err)))
        page.on("console", self._console)

    def _console(self, message):
        # A CSP refusal means something inline slipped into the page.
        if message.type == "error" and "Content Security Policy" in message.text:
            self.page_errors.append(message.text)

    # ---------- helpers ----------

    def by(self, testid, **attrs):
        selector = f'[data-testid="{testid}"]'
        selector += "".join(f'[data-{key.replace("_", "-")}="{css(value)}"]' for key, value in attrs.items())
        return self.page.locator(selector)

    def wait_done(self):
        """Waits until the route on the hash finished rendering, and fails on an error banner."""
        self.page.wait_for_function(PAGE_DONE, timeout=20_000)
        self.assert_no_error_banner()
        self.assert_no_page_errors()

    def assert_no_error_banner(self):
        banner = self.by("error")
        if banner.is_visible():
            raise AssertionError(f"the page at {self.page.url} shows an error: {banner.inner_text()}")

    def assert_no_page_errors(self):
        assert not self.page_errors, f"the page raised errors: {self.page_errors}"

    def shot(self, name):
        if not self.cfg.screenshot_dir:
            return
        os.makedirs(self.cfg.screenshot_dir, exist_ok=True)
        self.page.screenshot(path=os.path.join(self.cfg.screenshot_dir, name))

    def login(self, user, password, hash_route="#/webhooks"):
        self.page.goto("about:blank")  # a full load, not a hash change racing the form
        self.page.goto(f"{self.cfg.url}/{hash_route}")
        expect(self.by("login-username"), "the login form shows when there is no session").to_be_visible()
        self.by("login-username").fill(user)
        self.by("login-password").fill(password)
        self.by("login-submit").click()
        expect(self.by("whoami"), f"the header names {user} after login").to_contain_text(user)
        self.wait_done()

    def apply_filter(self, **values):
        """Fills the filter form (selects by value, text fields typed) and applies it."""
        for testid, value in values.items():
            field = self.by(testid)
            if field.evaluate("e => e.tagName") == "SELECT":
                field.select_option(value)
            else:
                field.fill(value)
        self.by("filter-apply").click()
        self.wait_done()

    def find_row(self, row):
        """The row in the list, clicking "Load more" until it shows or the list ends."""
        for _ in range(MAX_PAGES):
            if row.count():
                break
            more = self.by("load-more")
            if not more.is_visible():
                break
            more.click()  # disables the button until the page arrived
            self.page.wait_for_function("() => !document.querySelector('[data-testid=\"load-more\"]').disabled")
            self.assert_no_error_banner()
        return row

    # ---------- checks ----------

    def check_refused_without_credentials(self):
        cfg = self.cfg
        anonymous = self.pw.request.new_context(base_url=cfg.url)
        try:
            response = anonymous.get("/api/v1/webhooks")
            assert response.status == 401, (
                f"GET /api/v1/webhooks without credentials answered {response.status}, not 401")
        finally:
            anonymous.dispose()

        token = base64.b64encode(f"{cfg.operator}:{cfg.operator_password}".encode()).decode()
        basic = self.pw.request.new_context(base_url=cfg.url, extra_http_headers={"Authorization": f"Basic {token}"})
        try:
            self.dead_letter_id = find_dead_letter_id(basic, cfg)
            # The very dead letter that check 4 replays: if this went through, check 4 fails too.
            response = basic.post("/api/v1/dead-letters/replay", headers={"Content-Type": "application/json"},
                                  data=json.dumps({"ids": [self.dead_letter_id]}))
            assert response.status == 403, (
                "POST /api/v1/dead-letters/replay with Basic auth but no X-CSRF-Token "
                f"answered {response.status}, not 403")
        finally:
            basic.dispose()

    def check_webhooks(self):
        cfg = self.cfg
        self.login(cfg.operator, cfg.operator_password)
        row = self.by("webhook-row", webhook_id=cfg.webhook_id)
        expect(row, f"the webhooks table has a row for {cfg.webhook_id}").to_have_count(1)
        self.shot("webhooks.png")
        if cfg.screenshot_dir:
            self.page.set_viewport_size(PHONE)
            self.page.wait_for_timeout(300)  # the layout settles
            self.shot("webhooks-phone.png")
            self.page.set_viewport_size(LAPTOP)
        row.locator("a").first.click()
        self.wait_done()
        assert re.search(r"#/webhooks/[^/]+/[^/]+", self.page.url), f"a webhook row opens its page, not {self.page.url}"
        chart = self.page.locator('[data-testid="webhook-chart"] svg')
        expect(chart, "the webhook page draws its chart").to_be_visible()

    def check_events(self):
        cfg = self.cfg
        self.by("nav-events").click()
        self.wait_done()
        self.apply_filter(**{"filter-webhook": cfg.webhook_id, "filter-event-type": cfg.event_type})
        rows = self.by("event-row")
        assert rows.count() >= 1, f"no event of type {cfg.event_type} listed for {cfg.webhook_id}"
        types = rows.locator('[data-testid="event-type"]').all_inner_texts()
        wrong = [t for t in types if t.strip() != cfg.event_type]
        assert not wrong, f"filtered by type {cfg.event_type}, the list shows other types: {wrong}"
        self.shot("events.png")

        self.apply_filter(**{"filter-event-type": "", "filter-event-id": cfg.event_id})
        expect(rows, f"filtered by event id {cfg.event_id}, exactly one row").to_have_count(1)
        rows.first.locator("a").first.click()
        self.wait_done()
        expect(self.by("event-body"), "the event page shows the body").to_be_visible()
        expect(self.by("event-headers"), "the event page shows the request headers").to_be_visible()
        expect(self.by("event-path"), "the event page shows the path").to_be_visible()
        names = self.page.locator('[data-testid="event-headers"] tbody th').all_inner_texts()
        assert names, "the request headers table is empty"
        leaked = [n for n in names if SIGNATURE_HEADER.search(n.strip())]
        assert not leaked, f"signature headers are shown: {leaked}"
        if cfg.secret_canary:
            assert cfg.secret_canary not in self.page.content(), "the page contains the signing secret (SECRET_CANARY)"
        self.shot("event.png")

    def check_dead_letter_replay(self):
        cfg = self.cfg
        self.by("nav-dead-letters").click()
        self.wait_done()
        self.apply_filter(**{"filter-webhook": cfg.webhook_id})
        row = self.find_row(self.by("dead-letter-row", message_id=cfg.dead_message_id))
        expect(row, f"the dead letter {cfg.dead_message_id} is listed").to_have_count(1)
        status = row.locator('[data-testid="replay-status"]')
        expect(status, "the dead letter is not replayed yet").to_have_text("not replayed")

        row.locator('[data-testid="replay-one"]').click()
        expect(self.by("confirm-dialog"), "Replay asks for confirmation").to_be_visible()
        expect(self.by("confirm-text"), "the dialog says what it replays").to_have_text("Replay 1 dead letter?")
        self.by("confirm-ok").click()
        expect(self.by("replay-result"), "the replay's result shows").to_contain_text("Replayed 1 dead letter")
        self.assert_no_page_errors()
        self.shot("dead-letters.png")

        def replayed_and_stored():
            self.by("filter-apply").click()  # reloads the list
            self.wait_done()
            found = self.find_row(self.by("dead-letter-row", message_id=cfg.dead_message_id))
            cell = found.locator('[data-testid="replay-status"]')
            if not found.count() or cell.get_attribute("data-replay-state") != "stored":
                return False
            text = cell.inner_text()
            stored = text.rstrip().endswith("stored") and "not stored" not in text
            return stored and f"replayed by {cfg.operator}" in text

        poll(replayed_and_stored, f"the dead letter {cfg.dead_message_id} says replayed by {cfg.operator} and stored")

        self.by("nav-events").click()
        self.wait_done()

        def stored_event_listed():
            self.apply_filter(**{"filter-webhook": cfg.webhook_id})
            return self.find_row(self.by("event-row", message_id=cfg.dead_message_id)).count() == 1

        poll(stored_event_listed, f"the replayed message {cfg.dead_message_id} is listed among the events")

    def check_replays(self):
        cfg = self.cfg
        self.by("nav-replays").click()
        self.wait_done()
        expect(self.by("replays-table"), "the replays page shows its table").to_be_visible()
        mine = self.find_row(self.by("replay-row", requested_by=cfg.operator))
        assert mine.count() >= 1, f"no replay by {cfg.operator} is listed"

    def check_live(self):
        self.by("nav-live").click()
        self.wait_done()
        expect(self.page.locator('[data-testid="live-chart"] svg'), "the live page draws its chart").to_be_visible()
        self.page.wait_for_function(
            """() => Number(document.querySelector('[data-testid="live-chart"]').dataset.samples) >= 1""",
            timeout=15_000)
        self.assert_no_page_errors()
        self.shot("live.png")

    def check_viewer(self):
        cfg = self.cfg
        self.by("logout").click()
        expect(self.by("login-username"), "logging out shows the login form").to_be_visible()
        self.login(cfg.viewer, cfg.viewer_password, f"#/dead-letters?webhook_id={cfg.webhook_id}")
        expect(self.by("whoami"), "the header gives the viewer's role").to_contain_text("viewer")
        assert "#/dead-letters" in self.page.url, f"after login the page shows {self.page.url}, not the route asked for"
        expect(self.by("dead-letter-row").first, "the viewer sees the dead letters").to_be_visible()
        expect(self.by("replay-one"), "a viewer gets no Replay button").to_have_count(0)
        expect(self.by("replay-all"), "a viewer gets no Replay all button").to_have_count(0)
        answer = self.page.evaluate(
            """async (id) => {
                const session = await (await fetch('/api/v1/session', { credentials: 'same-origin' })).json();
                const response = await fetch('/api/v1/dead-letters/replay', {
                    method: 'POST',
                    credentials: 'same-origin',
                    headers: { 'Content-Type': 'application/json', 'X-CSRF-Token': session.csrf_token },
                    body: JSON.stringify({ ids: [id] }),
                });
                return { role: session.role, status: response.status };
            }""",
            self.dead_letter_id)
        assert answer["role"] == "viewer", f"the page's session is {answer['role']}, not viewer"
        assert answer["status"] == 403, f"a viewer's replay (with its CSRF token) answered {answer['status']}, not 403"


def css(value):
    return str(value).replace("\\", "\\\\").replace('"', '\\"')


def find_dead_letter_id(request, cfg):
    """The id of DEAD_MESSAGE_ID's dead letter, read through the API (Basic auth)."""
    cursor = None
    while True:
        params = {"webhook_id": cfg.webhook_id, "replayed": "false", "limit": "200"}
        if cursor:
            params["cursor"] = cursor
        response = request.get("/api/v1/dead-letters", params=params)
        assert response.ok, f"GET /api/v1/dead-letters with Basic auth answered {response.status}: {response.text()}"
        data = response.json()
        for item in data["items"]:
            if item["message_id"] == cfg.dead_message_id:
                return item["id"]
        cursor = data.get("next_cursor")
        assert cursor, f"no dead letter of {cfg.webhook_id} with message id {cfg.dead_message_id} waits for a replay"


def poll(condition, what):
    deadline = time.monotonic() + POLL_SECONDS
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(1)
    raise AssertionError(f"after {POLL_SECONDS} s, still not true: {what}")


CHECKS = [
    ("1 requests without credentials or CSRF token are refused", Flow.check_refused_without_credentials),
    ("2 the operator logs in and sees the webhook and its chart", Flow.check_webhooks),
    ("3 events filter by type and id; the event page hides signatures", Flow.check_events),
    ("4 a dead letter is replayed and stored", Flow.check_dead_letter_replay),
    ("5 the replays page lists the operator's replay", Flow.check_replays),
    ("6 the live page charts the stored rate", Flow.check_live),
    ("7 a viewer cannot replay", Flow.check_viewer),
]


def main():
    cfg = Config.from_env()
    expect.set_options(timeout=10_000)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=cfg.chromium, args=["--no-sandbox"], headless=True)
        try:
            page = browser.new_context(viewport=LAPTOP).new_page()
            page.set_default_timeout(15_000)
            flow = Flow(cfg, playwright, page)
            for name, check in CHECKS:
                try:
                    check(flow)
                except (AssertionError, PlaywrightError) as err:
                    print(f"FAIL {name}: {err}", file=sys.stderr)
                    return 1
                print(f"ok   {name}", flush=True)
        finally:
            browser.close()
    print("console_flow: all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
