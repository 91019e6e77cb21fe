"""Dashboards on Apache Superset, in a real browser: the pipeline fills the marts from simulated
traffic, publishes them to a real PostgreSQL, ``lakepulse bi`` starts Superset (own virtualenv)
and imports the dashboards of ``bi/superset/``. Debian's Chromium (Playwright) logs in as each
tenant, opens every dashboard and checks that each chart drew data and shows no error, and that
what a person reads is formatted: percentages with %, money with $, no raw floats, the funnel's
counts and step conversion, the decisions table's interval and rule, the live charts on the last
hours; the tenants' numbers come from their own rows only. Screenshots go to test-artifacts/."""

import json
import os
import re
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

import psutil
import pytest

from ingestion.tenants import TenantRegistry
from lakepulse.core.settings import PROJECT_ROOT, Settings
from lakepulse.demo.simulator import Faults
from lakepulse.operations.bi import DASHBOARDS_DIR
from lakepulse.warehouse.postgres import free_port
from lakepulse.warehouse.publish import ensure_serving, publish
from tests.conftest import Workspace, land_simulated, record_anomaly_alerts
from tests.e2e.test_dagster_ui import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

DASHBOARDS = {
    "lakepulse-business": 5,
    "lakepulse-marketing": 5,
    "lakepulse-operations": 4,
    "lakepulse-predictions": 5,
}
"""Dashboard slug (before the tenant suffix) -> number of charts on it."""
PREDICTING = "shop"
"""The tenant with a history to predict from (customers over two years, ten days of visits,
ten ended campaigns): its Predictions dashboard is the one checked; minutes of simulated
traffic give acme and globex nothing to fit."""
ERRORS = ("error", "refused", "no results", "permission denied", "no data")
"""Text of a chart that failed or came back empty (compared lower-cased)."""
LIVE = {
    "lakepulse-business": {"Live 5-minute conversion", "Orders per minute"},
    "lakepulse-operations": {"Events per minute by tenant and type", "Rejected events by reason"},
}
"""Dashboard -> its live charts: the ones its time-range filter applies to."""
LIVE_HOURS = 3
"""The time-range filter's default: the last hours of the wall clock."""
RAW_FLOAT = re.compile(r"\d\.\d{6,}")
"""A float printed as it came from the database (0.527027027027027), not formatted."""
PERCENT = re.compile(r"^[+-]?\d+(\.\d+)?%$")
CANVAS_TEXT = """
const fill = CanvasRenderingContext2D.prototype.fillText;
CanvasRenderingContext2D.prototype.fillText = function (text, ...rest) {
    (this.canvas.drawnText ||= new Set()).add(String(text));
    return fill.call(this, text, ...rest);
};
"""
"""Keeps the text each canvas draws (ECharts draws labels and axes on one): the test reads what
a person sees, not only the DOM."""


@pytest.fixture(scope="module")
def superset(tmp_path_factory, postgres_url):
    """Marts of two tenants (with rejected events and an alert each) published to PostgreSQL,
    and ``lakepulse bi`` serving them; yields (settings, url, tenant logins)."""
    with pytest.MonkeyPatch.context() as mp:
        home = tmp_path_factory.mktemp("bi") / "home"
        mp.setenv("LAKEPULSE_HOME", str(home))
        mp.setenv("LAKEPULSE_BI_PORT", str(free_port()))
        mp.setenv("LAKEPULSE_PG_URL", postgres_url)
        mp.delenv("DAGSTER_HOME", raising=False)
        settings = Settings.from_env()
        settings.ensure_dirs()
        registry = TenantRegistry(settings.tenants_file)
        keys = {tenant: registry.add(tenant) for tenant in ("acme", "globex")}
        registry.add(PREDICTING)
        # Superset starts first (it needs only the logins), while the pipeline fills the marts.
        ensure_serving(postgres_url)
        out_path = home / "bi.out"
        with open(out_path, "w") as out:
            bi = subprocess.Popen(
                [sys.executable, "-m", "lakepulse.cli", "bi"],
                cwd=PROJECT_ROOT,
                env=settings.process_env() | {"LAKEPULSE_BI_PORT": os.environ["LAKEPULSE_BI_PORT"]},
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        url = f"http://127.0.0.1:{os.environ['LAKEPULSE_BI_PORT']}"
        try:
            workspace = Workspace(settings)
            # Ten minutes of traffic that ended two minutes ago: the live charts show the last
            # hours of the wall clock.
            start = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=12)
            land_simulated(
                settings,
                None,
                start=start,
                until=start + timedelta(minutes=10),
                visits_per_second=1.5,
                faults=Faults(duplicate_rate=0.05, malformed_rate=0.02),
                tenants=keys,
                count=False,
            )
            workspace.ingest()
            # An anomaly alert per tenant: a firing of the `anomaly` trigger kind.
            record_anomaly_alerts(settings, keys)
            workspace.build()
            land_prediction_history(settings, workspace)
            publish(settings, postgres_url)
            wait_for(url + "/health", seconds=400)
            wait_until_banner(out_path, bi)
            passwords = {
                tenant: (home / "bi" / "users" / tenant).read_text().strip()
                for tenant in (*keys, PREDICTING)
            }
            admin = (home / "bi" / "admin_password").read_text().strip()
            yield settings, url, passwords, admin, out_path, bi
        finally:
            children = psutil.Process(bi.pid).children(recursive=True) if bi.poll() is None else []
            bi.send_signal(signal.SIGINT)
            bi.wait(timeout=60)
            _gone, alive = psutil.wait_procs(children, timeout=10)
            assert alive == [], f"Superset processes left after Ctrl-C: {alive}"


def land_prediction_history(settings, workspace) -> None:
    """The PREDICTING tenant's history through the real pipeline and `lakepulse predict`'s
    fits (the data of test_clv.py, test_propensity.py and test_campaign_forecast.py), built
    after the other tenants' full build and only as far as the prediction marts need."""
    from lakepulse.operations.predict import fit_predictions, fit_propensity
    from tests.integration import test_campaign_forecast as campaigns
    from tests.integration.test_clv import land_customers, simulate_customers
    from tests.integration.test_propensity import simulate
    from tests.integration.test_triggers import land

    visits = simulate(settings, tenant=PREDICTING)
    clock = visits["now"]
    land_customers(
        settings,
        PREDICTING,
        simulate_customers(300, 1, {"r": 2.0, "alpha": 50.0, "a": 0.8, "b": 3.0}),
        1,
    )
    messages = []
    launch = clock - timedelta(days=60)
    for k, (r4, r7) in enumerate(campaigns.ENDED * 2):
        messages += campaigns.campaign(
            f"spring{k}", launch + timedelta(days=2 * k), r4, r7 - r4, clock
        )
    for name, hours, r4 in (("weak", 30, 20), ("strong", 10, 300)):
        messages += campaigns.campaign(name, clock - timedelta(hours=hours), r4, None, clock)
    land(settings, messages, tenant=PREDICTING)
    workspace.ingest()
    workspace.build(
        "--select", "+int_customer_orders", "+int_session_clocks", "+int_session_features"
    )
    assert [r.error for r in fit_predictions(settings, [PREDICTING])] == [None]
    assert [r.error for r in fit_propensity(settings, [PREDICTING])] == [None]
    workspace.build(
        "--select",
        "+mart_customer_segments",
        "+mart_model_accuracy",
        "+mart_campaign_forecast",
        "mart_event_volume",
    )


def wait_until_banner(out_path, process, seconds: float = 60) -> None:
    import time

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if "Superset is up" in out_path.read_text():
            return
        assert process.poll() is None, out_path.read_text()
        time.sleep(0.5)
    raise AssertionError(out_path.read_text())


def test_banner_shows_url_and_logins_and_no_database_password(superset):
    settings, url, passwords, admin, out_path, _ = superset
    banner = out_path.read_text()
    assert url in banner and admin in banner
    assert all(password in banner for password in passwords.values())
    db_passwords = json.loads((settings.home / "postgres" / "bi_logins.json").read_text())
    assert not any(login["password"] in banner for login in db_passwords.values())
    assert not list((settings.home / "bi").glob("bundle-*.zip")), "bundles hold DB passwords"


def chart_states(page) -> list[dict]:
    """Every chart on the open dashboard (not its Markdown notes): its title, id and
    description, whether it drew something, its text (an error's too), the text its canvas drew
    and its table's rows (column header -> cell text)."""
    return page.eval_on_selector_all(
        ".dashboard-component-chart-holder",
        """holders => holders.filter(h => !h.closest('.dashboard-markdown')).map(h => {
            const slice = h.querySelector('[data-test-chart-id]');
            const chart = h.querySelector('.dashboard-chart');
            const headers = [...h.querySelectorAll('table thead th')].map(th => th.innerText.trim());
            return {
                title: (h.querySelector('.header-title, [data-test="editable-title"]') || {}).innerText || '',
                id: slice ? Number(slice.getAttribute('data-test-chart-id')) : null,
                description: chart ? chart.getAttribute('aria-label') || '' : '',
                drawn: !!h.querySelector('canvas, table tbody tr'),
                loading: !!h.querySelector('.loading, [aria-label="Loading"]'),
                text: h.innerText,
                drawnText: [...h.querySelectorAll('canvas')].flatMap(c => [...(c.drawnText || [])]),
                rows: [...h.querySelectorAll('table tbody tr')].map(tr => Object.fromEntries(
                    [...tr.querySelectorAll('td')].map((td, i) => [headers[i], td.innerText.trim()]))),
            };
        })""",
    )


def charts_titled(states: list[dict], title: str) -> list[dict]:
    return [s for s in states if s["title"].rsplit(" · ", 1)[0] == title]


def chart(states: list[dict], title: str) -> dict:
    (found,) = charts_titled(states, title)
    return found


def drawn_text(page, title: str, complete, seconds: float = 60.0) -> list[str]:
    """The text the chart ``title`` has drawn on its canvas, read again until ``complete`` says
    it is all there or ``seconds`` pass: ECharts draws a funnel's labels only when its
    animation ends, which on a loaded machine comes after the chart counts as drawn. A chart
    missing from the page is read again too: the dashboard re-renders its charts when its
    time-range filter applies, and in between shows none (seen once on a loaded machine)."""
    deadline = time.monotonic() + seconds
    while True:
        states = chart_states(page)
        found = charts_titled(states, title)
        texts = chart(states, title)["drawnText"] if found else []
        if complete(texts) or time.monotonic() > deadline:
            assert found, (title, [s["title"] for s in states])
            return texts
        page.wait_for_timeout(250)


def check_formatting(slug: str, states: list[dict], page, queries: dict[int, dict]) -> None:
    """What a person reads on the dashboard is formatted: no raw float in any chart, and on each
    dashboard the charts that had them show percentages with %, money with $, the funnel's
    counts and step conversion, the decision next to the interval it is made on (with the
    rule), and the live charts on the last hours, set by the dashboard's time-range filter."""
    for state in states:
        shown = [state["text"], *state["drawnText"]]
        assert not any(RAW_FLOAT.search(text) for text in shown), (slug, state["title"], shown)
    if slug == "lakepulse-business":
        kpis = chart(states, "Campaign KPIs")["rows"]
        assert kpis and all(PERCENT.match(row["24 h return rate"]) for row in kpis), kpis
        assert all(row["revenue, first 4 h"].startswith("$") for row in kpis), kpis
        revenue = drawn_text(
            page, "Revenue since launch", lambda texts: any(t.startswith("$") for t in texts)
        )
        assert any(text.startswith("$") for text in revenue), revenue
        live = drawn_text(
            page, "Live 5-minute conversion", lambda texts: any(PERCENT.match(t) for t in texts)
        )
        assert any(PERCENT.match(t) for t in live), live
        # Each step's users and its share of the previous step's: "170 (54.14%)".
        step_label = re.compile(r"([\d,]+) \((\d+\.\d+)%\)")
        funnel = drawn_text(
            page,
            "Purchase funnel (users, % of the previous step)",
            lambda texts: sum(bool(step_label.fullmatch(t)) for t in texts) >= 4,
        )
        steps = [step_label.fullmatch(text) for text in funnel]
        users = [int(m[1].replace(",", "")) for m in steps if m]
        shares = [float(m[2]) for m in steps if m]
        assert len(users) == 4 and users == sorted(users, reverse=True), funnel
        for before, after, share in zip(users[:-1], users[1:], shares[1:], strict=True):
            assert abs(100 * after / before - share) < 0.01, funnel
    if slug == "lakepulse-marketing":
        decisions = chart(states, "Experiment decisions")
        assert decisions["rows"], decisions
        assert "always-valid interval of the absolute lift" in decisions["description"]
        notes = page.locator(".dashboard-markdown").all_inner_texts()
        assert any("always-valid interval of the absolute lift" in note for note in notes), notes
        for row in decisions["rows"]:
            assert PERCENT.match(row["relative lift"]), row
            # The decision follows the interval the table shows: "-0.9 … +12.4 pp",
            # "-$1,122.47 … +$97.38 per user".
            interval = row["always-valid interval (decides)"]
            ends = re.findall(r"([+-])\$?([\d,]+\.\d+)", interval)
            low, high = (float(sign + digits.replace(",", "")) for sign, digits in ends)
            expected = "ship" if low > 0 else "stop" if high < 0 else "continue"
            assert row["decision"] in (expected, "invalid: SRM"), row
    if slug == "lakepulse-operations":
        alerts = chart(states, "Anomaly alerts")["rows"]
        assert alerts and all(PERCENT.match(row["change"]) for row in alerts), alerts
    if slug in LIVE:
        # The filter bar shows the window it applies: "2026-12-05T10:13:49 ≤ col < ...T13:13:49".
        window = " ".join(page.locator('[data-test="time-range-trigger"]').all_inner_texts())
        ends = re.findall(r"\d{4}-\d\d-\d\dT[\d:]+", window)
        assert len(ends) == 2, (slug, window)
        since, until = (datetime.fromisoformat(end) for end in ends)
        # Superset reads its clock once for each end, so the two may be a second apart.
        assert abs(until - since - timedelta(hours=LIVE_HOURS)) <= timedelta(seconds=2), window
        assert abs(until - datetime.now()) < timedelta(minutes=10), window  # Superset's clock
        for state in states:
            applied = queries[state["id"]]["form_data"].get("extra_form_data", {})
            is_live = state["title"].rsplit(" · ", 1)[0] in LIVE[slug]
            assert ("time_range" in applied) == is_live, (slug, state["title"], applied)


def open_dashboard(page, url: str, slug: str, expected: int, shot: str) -> list[dict]:
    page.goto(f"{url}/superset/dashboard/{slug}/", wait_until="domcontentloaded")
    deadline = 120_000
    page.wait_for_selector(".dashboard-component-chart-holder", timeout=deadline)
    states: list[dict] = []
    for _ in range(240):
        states = chart_states(page)
        if len(states) == expected and all(s["drawn"] and not s["loading"] for s in states):
            break
        if any(marker in s["text"].lower() for s in states for marker in ERRORS):
            break
        page.wait_for_timeout(500)
    page.wait_for_timeout(1500)  # let the last animation settle for the screenshot
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{shot}.png"), full_page=True)
    return states


def keep_chart_query(request, queries: dict[int, dict]) -> None:
    if "/api/v1/chart/data" in request.url and request.method == "POST":
        body = request.post_data_json
        queries[body["form_data"]["slice_id"]] = body


def login(page, url: str, user: str, password: str) -> None:
    """Log in through Superset's own form, as a person does.

    A second after the login page loads, Superset's front end posts its usage log (an anonymous
    ``POST /superset/log/``, answered by a redirect to the login page that rewrites the session
    cookie). A login answered before that exchange ends is undone by it: the browser lands back
    on ``/login/?next=/superset/welcome/``, as one CI run did. A person types for longer than a
    second; the test waits for that exchange to end instead of racing it."""

    def usage_log_answered(request) -> bool:
        return request.redirected_from is not None and "/superset/log/" in (
            request.redirected_from.url
        )

    with page.expect_event("requestfinished", usage_log_answered, timeout=60_000):
        page.goto(f"{url}/login/", wait_until="domcontentloaded")
    page.fill("#username", user)
    page.fill("#password", password)
    page.keyboard.press("Enter")
    page.wait_for_url(lambda u: "/login" not in u, timeout=60_000)


def test_each_tenant_sees_every_dashboard_drawn_with_its_own_data_only(superset):
    from playwright.sync_api import sync_playwright

    _settings, url, passwords, _, _, _ = superset
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            # acme opens every dashboard; globex the one with a tenant column (time budget).
            for tenant, other, slugs in (
                ("acme", "globex", [d for d in DASHBOARDS if d != "lakepulse-predictions"]),
                ("globex", "acme", ["lakepulse-operations"]),
                (PREDICTING, "acme", ["lakepulse-predictions"]),
            ):
                context = browser.new_context(viewport={"width": 1400, "height": 1000})
                context.add_init_script(CANVAS_TEXT)
                page = context.new_page()
                login(page, url, tenant, passwords[tenant])
                queries: dict[int, dict] = {}  # chart id -> the query it sent for its data
                page.on("request", lambda r, q=queries: keep_chart_query(r, q))
                for slug in slugs:
                    expected = DASHBOARDS[slug]
                    states = open_dashboard(
                        page, url, f"{slug}-{tenant}", expected, f"superset-{slug}-{tenant}"
                    )
                    assert len(states) == expected, (slug, states)
                    for state in states:
                        assert state["drawn"], (slug, state)
                        for marker in ERRORS:
                            assert marker not in state["text"].lower(), (slug, state)
                        # The tenant column shows only this tenant, never the other one.
                        assert other not in state["text"], (slug, state)
                    check_formatting(slug, states, page, queries)
                # The other tenant's dashboards are not even reachable: Superset answers the
                # page itself with 404 and renders its own "Page not found" (waited for, not a
                # fixed pause), so no chart can follow.
                refused = page.goto(f"{url}/superset/dashboard/lakepulse-business-{other}/")
                assert refused is not None and refused.status == 404, refused
                page.get_by_text("Page not found").wait_for(timeout=60_000)
                assert page.locator(".dashboard-component-chart-holder").count() == 0
                context.close()
        finally:
            browser.close()


def test_each_tenants_charts_return_only_its_own_numbers(superset):
    """Through Superset's REST API as each tenant: the events dataset's total is the tenant's
    own total in the warehouse, it lists only its own charts and datasets, and asking for the
    other tenant's dataset is refused."""
    import httpx

    settings, url, passwords, _, _, _ = superset
    workspace = Workspace(settings)
    datasets = {}
    for tenant in passwords:
        with httpx.Client(base_url=url, timeout=60) as client:
            token = client.post(
                "/api/v1/security/login",
                json={"username": tenant, "password": passwords[tenant], "provider": "db"},
            )
            token.raise_for_status()
            client.headers["Authorization"] = f"Bearer {token.json()['access_token']}"
            charts = client.get("/api/v1/chart/", params={"q": "(page_size:100)"}).json()
            names = [chart["slice_name"] for chart in charts["result"]]
            assert len(names) == sum(DASHBOARDS.values())
            assert all(name.endswith(f"· {tenant}") for name in names), names
            listed = client.get("/api/v1/dataset/", params={"q": "(page_size:100)"}).json()
            tables = {d["table_name"]: d["id"] for d in listed["result"]}
            assert all(table.endswith(f"__{tenant}") for table in tables), tables
            datasets[tenant] = tables[f"mart_event_volume__{tenant}"]
            rows = chart_data(client, datasets[tenant])
            log = settings.home / "logs" / "superset.log"
            assert rows.status_code == 200, log.read_text()[-3000:]
            by_tenant = {
                row["tenant_id"]: row["events"] for row in rows.json()["result"][0]["data"]
            }
            expected = workspace.sql(
                f"select sum(events) from marts.mart_event_volume where tenant_id = '{tenant}'"
            )[0][0]
            assert by_tenant == {tenant: expected} and expected > 0
    with httpx.Client(base_url=url, timeout=60) as client:
        token = client.post(
            "/api/v1/security/login",
            json={"username": "acme", "password": passwords["acme"], "provider": "db"},
        )
        client.headers["Authorization"] = f"Bearer {token.json()['access_token']}"
        refused = chart_data(client, datasets["globex"])
        assert refused.status_code in (403, 404), refused.text


def chart_data(client, dataset_id: int):
    """Events per tenant from one dataset, the way a chart asks Superset for its data."""
    return client.post(
        "/api/v1/chart/data",
        json={
            "datasource": {"id": dataset_id, "type": "table"},
            "queries": [
                {
                    "columns": ["tenant_id"],
                    "metrics": [
                        {"expressionType": "SQL", "sqlExpression": "SUM(events)", "label": "events"}
                    ],
                    "row_limit": 100,
                }
            ],
            "result_format": "json",
            "result_type": "full",
        },
    )


def test_bundle_on_disk_is_one_placeholder_connection():
    """bi/superset is the export of one connection: per-tenant copies are made at import."""
    databases = list((DASHBOARDS_DIR / "databases").glob("*.yaml"))
    assert len(databases) == 1
    assert "XXXXXXXXXX" in databases[0].read_text()
