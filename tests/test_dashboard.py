"""Dashboard (P14): login, CSRF, pages with data, live rule edits (P8), SSE (D8, X3)."""
from __future__ import annotations

import datetime as dt
import json
import re

import pytest
from click.testing import CliRunner

from controller import create_app
from controller.cli import main as cli
from controller import config as config_mod
from controller.dashboard import stream as stream_mod
from controller.dashboard.forms import parse_rules
from controller.errors import Conflict, InvalidInput
from controller.models import (
    Agent,
    CallAttempt,
    CallRecord,
    Campaign,
    Pool,
    Queue,
    QueueFeed,
    Worker,
    utcnow,
)
from controller.services import reporting, users
from esl_dialer.messages import AgentState, CampaignStatus, RecordStatus, SelectionMode

PASSWORD = "correct horse battery"


# --- sample data (also used by test_browser.py and for screenshots) --------

def seed(db) -> dict:
    """A campaign with three pools, two queues, four agents and some attempts."""
    now = utcnow()
    with db.session() as s:
        camp = Campaign(name="Spring renewals", status=CampaignStatus.ACTIVE, abandon_target=0.03)
        other = Campaign(name="Winback", status=CampaignStatus.PAUSED)
        s.add_all([camp, other])
        s.flush()
        hot = Pool(campaign_id=camp.id, name="Hot leads", position=0, difficulty=2)
        main = Pool(campaign_id=camp.id, name="Main list", position=1)
        old = Pool(campaign_id=camp.id, name="Old customers", position=2)
        wb = Pool(campaign_id=other.id, name="Lapsed", position=0)
        s.add_all([hot, main, old, wb])
        s.flush()
        agents = [
            Agent(name="alice", extension="1001", skill_level=3, state=AgentState.TALKING,
                  state_since=now - dt.timedelta(seconds=95)),
            Agent(name="bob", extension="1002", skill_level=1, state=AgentState.IDLE,
                  state_since=now - dt.timedelta(seconds=12)),
            Agent(name="carol", extension="1003", skill_level=2, state=AgentState.WRAPUP,
                  state_since=now - dt.timedelta(seconds=30)),
            Agent(name="dave", extension="1004", skill_level=0, state=AgentState.PAUSED,
                  state_since=now - dt.timedelta(minutes=7)),
        ]
        s.add_all(agents)
        s.flush()
        workers = [
            Worker(name=f"pc-{a.name}", token_hash="x" * 64, agent_id=a.id, campaign_id=camp.id,
                   last_heartbeat=now - dt.timedelta(seconds=2))
            for a in agents
        ]
        s.add_all(workers)
        s.flush()
        q1 = Queue(campaign_id=camp.id, worker_id=workers[0].id, name="alice-queue",
                   selection_mode=SelectionMode.PERCENTAGE, lead_minutes=5)
        q2 = Queue(campaign_id=camp.id, worker_id=workers[1].id, name="bob-queue",
                   selection_mode=SelectionMode.PRIORITY, lead_minutes=3)
        s.add_all([q1, q2])
        s.flush()
        s.add_all([
            QueueFeed(queue_id=q1.id, pool_id=hot.id, position=0, weight=70),
            QueueFeed(queue_id=q1.id, pool_id=main.id, position=1, weight=30, shareable=True),
            QueueFeed(queue_id=q2.id, pool_id=main.id, position=0, weight=0),
            QueueFeed(queue_id=q2.id, pool_id=old.id, position=1, weight=0),
        ])
        records = []
        for i in range(60):
            pool = (hot, main, old)[i % 3]
            records.append(CallRecord(campaign_id=camp.id, pool_id=pool.id, number=f"+1212555{i:04d}",
                                      name=f"Customer {i}", timezone="America/New_York"))
        for i in range(5):
            records.append(CallRecord(campaign_id=other.id, pool_id=wb.id, number=f"+1305555{i:04d}"))
        s.add_all(records)
        s.flush()
        # a few records moved on: queued, leased, done, exhausted
        for r in records[:4]:
            r.status, r.queue_id = RecordStatus.QUEUED, q1.id
        for r in records[4:6]:
            r.status, r.queue_id = RecordStatus.LEASED, q1.id
            r.held_by_worker_id, r.held_until = workers[0].id, now + dt.timedelta(minutes=15)
        for r in records[6:9]:
            r.status, r.attempts, r.last_result = RecordStatus.DONE, 1, "answered"
        records[6].attempts = 3
        records[9].status, records[9].attempts = RecordStatus.EXHAUSTED, 3
        # attempts: record 6 has a timeline of three; 20 answered, 1 abandoned overall
        results = ["no_answer", "busy", "answered"]
        for k, res in enumerate(results):
            start = now - dt.timedelta(minutes=30 - 5 * k)
            s.add(CallAttempt(
                client_id=f"seed-tl-{k}", record_id=records[6].id, campaign_id=camp.id,
                worker_id=workers[0].id, agent_id=agents[0].id, number=records[6].number,
                started_at=start, received_at=now - dt.timedelta(minutes=1),
                answered_at=start + dt.timedelta(seconds=8) if res == "answered" else None,
                connected_at=start + dt.timedelta(seconds=9) if res == "answered" else None,
                ended_at=start + dt.timedelta(seconds=20 if res != "answered" else 140),
                result=res, hangup_cause={"answered": "NORMAL_CLEARING", "busy": "USER_BUSY"}.get(res, "NO_ANSWER"),
                disposition="sale" if res == "answered" else None,
            ))
        for k in range(20):
            r = records[10 + k]
            start = now - dt.timedelta(minutes=2, seconds=k)
            res = "abandoned" if k == 0 else "answered"
            s.add(CallAttempt(
                client_id=f"seed-{k}", record_id=r.id, campaign_id=camp.id, worker_id=workers[k % 2].id,
                agent_id=None if res == "abandoned" else agents[k % 2].id, number=r.number,
                started_at=start, received_at=now - dt.timedelta(minutes=1), answered_at=start,
                ended_at=start + dt.timedelta(seconds=45), result=res, abandoned=res == "abandoned",
                hangup_cause="NORMAL_CLEARING",
            ))
        return {
            "campaign_id": camp.id, "q1": q1.id, "q2": q2.id,
            "pools": {"hot": hot.id, "main": main.id, "old": old.id, "lapsed": wb.id},
            "agents": {a.name: a.id for a in agents}, "timeline_record": records[6].id,
        }


# --- fixtures ---------------------------------------------------------------

REAL_HASH_TESTS = {"test_p14_users_hash_passwords_and_validate"}


@pytest.fixture(autouse=True)
def _fast_password_hashes(request, monkeypatch):
    """Cheap hashes keep the many logins fast; the hashing test uses the real default."""
    if request.node.originalname not in REAL_HASH_TESTS:
        monkeypatch.setattr(users, "PASSWORD_METHOD", "pbkdf2:sha256:1000")


@pytest.fixture
def app(db, db_url):
    users.add_user(db, "sup", PASSWORD)
    app = create_app(config_mod.TestConfig(db_url))
    yield app
    app.extensions["dialer_db"].dispose()


@pytest.fixture
def client(app):
    return app.test_client()


def _token(client, path="/login") -> str:
    html = client.get(path).get_data(as_text=True)
    m = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert m, f"no CSRF token on {path}"
    return m.group(1)


def login(client, username="sup", password=PASSWORD):
    token = _token(client)
    return client.post("/login", data={"username": username, "password": password, "csrf_token": token})


@pytest.fixture
def logged_in(client):
    resp = login(client)
    assert resp.status_code == 302
    return client


# --- P14: login, sessions, CSRF ---------------------------------------------

PAGES = ["/campaigns", "/pools", "/agents", "/attempts", "/queues/1/rules", "/records/1"]


@pytest.mark.parametrize("path", PAGES + ["/stream", "/"])
def test_p14_login_required_on_every_page(client, path):
    resp = client.get(path)
    if path == "/stream":
        assert resp.status_code == 401
    else:
        assert resp.status_code == 302
        assert "/login" in resp.headers["Location"]


def test_p14_every_dashboard_route_is_covered_by_login(app, client):
    # Guards against a future view that forgets the requirement.
    public = {"dashboard.login", "dashboard.static"}
    for rule in app.url_map.iter_rules():
        if not rule.endpoint.startswith("dashboard.") or rule.endpoint in public:
            continue
        url = re.sub(r"<int:\w+>", "1", rule.rule)
        method = "POST" if "GET" not in rule.methods else "GET"
        resp = client.open(url, method=method)
        assert resp.status_code in (302, 401), f"{rule.rule} answered {resp.status_code} without login"


def test_p14_wrong_password_is_refused(client):
    resp = login(client, password="wrong password!")
    assert resp.status_code == 401
    assert "Wrong user name or password." in resp.get_data(as_text=True)
    assert client.get("/campaigns").status_code == 302
    resp = login(client, username="nobody")
    assert resp.status_code == 401


def test_p14_login_then_logout(client):
    resp = login(client)
    assert resp.status_code == 302 and resp.headers["Location"].endswith("/campaigns")
    assert client.get("/campaigns").status_code == 200
    token = _token(client, "/campaigns")
    assert client.post("/logout", data={"csrf_token": token}).status_code == 302
    assert client.get("/campaigns").status_code == 302


def test_p14_login_redirects_back_but_never_off_site(client):
    token = _token(client)
    resp = client.post("/login?next=/agents", data={"username": "sup", "password": PASSWORD, "csrf_token": token})
    assert resp.headers["Location"].endswith("/agents")
    client.post("/logout", data={"csrf_token": _token(client, "/agents")})
    for evil in ("https://evil.example/", "//evil.example/x", "/\\evil.example"):
        token = _token(client)
        resp = client.post("/login", query_string={"next": evil},
                           data={"username": "sup", "password": PASSWORD, "csrf_token": token})
        assert resp.status_code == 302
        assert "evil" not in resp.headers["Location"], evil
        client.post("/logout", data={"csrf_token": _token(client, "/campaigns")})


def test_p14_csrf_refused_without_token(logged_in, db):
    ids = seed(db)
    url = f"/queues/{ids['q1']}/rules"
    form = {"selection_mode": "priority", "lead_minutes": "9"}
    resp = logged_in.post(url, data=form)
    assert resp.status_code == 400
    assert "expired" in resp.get_data(as_text=True)
    resp = logged_in.post(url, data={**form, "csrf_token": "forged"})
    assert resp.status_code == 400
    assert reporting.queue(db, ids["q1"]).lead_minutes == 5  # nothing changed
    # logout needs the token as well
    assert logged_in.post("/logout").status_code == 400
    assert logged_in.get("/campaigns").status_code == 200


def test_p14_login_form_needs_csrf_token(client):
    resp = client.post("/login", data={"username": "sup", "password": PASSWORD})
    assert resp.status_code == 400
    assert client.get("/campaigns").status_code == 302


def test_p14_session_cookie_flags(app, client):
    resp = login(client)
    cookie = resp.headers.get("Set-Cookie")
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert "Secure" not in cookie
    app.config["SESSION_COOKIE_SECURE"] = True
    other = app.test_client()
    cookie = login(other).headers.get("Set-Cookie")
    assert "Secure" in cookie


def test_p14_session_rotates_csrf_token_at_login(client):
    before = _token(client)
    login(client)
    after = _token(client, "/campaigns")
    assert before != after


def test_p14_security_headers(logged_in):
    resp = logged_in.get("/campaigns")
    assert resp.headers["X-Frame-Options"] == "DENY"
    assert "script-src 'self'" in resp.headers["Content-Security-Policy"]


# --- P14: pages render with data --------------------------------------------

def test_p14_pages_render_empty(logged_in):
    for path in ["/campaigns", "/pools", "/agents", "/attempts"]:
        resp = logged_in.get(path)
        assert resp.status_code == 200, path
    assert "No campaigns yet" in logged_in.get("/campaigns").get_data(as_text=True)
    assert logged_in.get("/queues/999/rules").status_code == 404
    assert "no call record" in logged_in.get("/records/999").get_data(as_text=True).lower()


def test_p14_campaigns_page_counts_and_abandonment(logged_in, db):
    seed(db)
    html = logged_in.get("/campaigns").get_data(as_text=True)
    assert "Spring renewals" in html and "Winback" in html
    row = html[html.index("Spring renewals"):html.index("Winback")]
    cells = re.findall(r'data-count="(\w+)">(\d+)<', row)
    assert dict(cells) == {"ready": "50", "queued": "4", "leased": "2", "done": "3", "exhausted": "1", "dnc": "0"}
    # 20 answered (19 + the timeline's 1) and 1 abandoned: 1/21 = 4.8 % > 3 % target
    assert "4.8&nbsp;%" in row
    assert 'class="num bad"' in row


def test_p14_campaign_summary_numbers(db):
    seed(db)
    camp = {c.name: c for c in reporting.campaigns(db)}["Spring renewals"]
    assert camp.total == 60 and camp.attempts == 23
    assert (camp.answered, camp.abandoned) == (20, 1)
    assert camp.abandonment_rate == pytest.approx(1 / 21)
    assert camp.over_target
    assert {c.name: c for c in reporting.campaigns(db)}["Winback"].abandonment_rate is None


def test_p3_pools_and_queues_page_shows_remaining_and_rate(logged_in, db):
    ids = seed(db)
    pools = {p.name: p for p in reporting.pools(db)}
    assert pools["Hot leads"].remaining == 20 - 2 - 1 - 1  # 4 queued/2 leased/3 done/1 exhausted spread
    assert pools["Hot leads"].total == 20
    # 23 attempts received in the window, all on Spring renewals records
    total_rate = sum(p.rate_per_minute for p in pools.values())
    assert total_rate == pytest.approx(23 / reporting.DEFAULT_WINDOW_MINUTES)
    q1 = reporting.queue(db, ids["q1"])
    assert (q1.queued, q1.leased, q1.remaining) == (4, 2, 6)
    assert [f.pool_name for f in q1.feeds] == ["Hot leads", "Main list"]
    assert q1.rate_per_minute == pytest.approx(13 / reporting.QUEUE_RATE_WINDOW_MINUTES)  # 3 + 10 by pc-alice
    html = logged_in.get("/pools").get_data(as_text=True)
    for text in ("Hot leads", "Main list", "Old customers", "alice-queue", "bob-queue", "percentage",
                 "Edit rules", "shared", "Lapsed"):
        assert text in html, text


def test_d8_agents_page_shows_live_state(logged_in, db, app):
    seed(db)
    html = logged_in.get("/agents").get_data(as_text=True)
    assert re.search(r'data-agent="\d+">\s*<th scope="row">alice</th>', html)
    assert "state-talking" in html and "state-paused" in html and "wrap-up" in html
    assert 'data-stream="/stream"' in html
    assert "live.js" in html


def test_d8_agent_with_missed_heartbeats_shown_offline(db):
    seed(db)
    later = utcnow() + dt.timedelta(seconds=60)
    agents = {a.name: a for a in reporting.agents(db, heartbeat_timeout_s=15, now=later)}
    assert agents["alice"].state == "offline" and agents["alice"].stale
    assert agents["alice"].reported_state == "talking"
    agents = {a.name: a for a in reporting.agents(db, heartbeat_timeout_s=15)}
    assert agents["alice"].state == "talking" and not agents["alice"].stale
    assert agents["dave"].seconds_in_state >= 7 * 60


def test_x3_attempts_page_and_record_timeline(logged_in, db):
    ids = seed(db)
    html = logged_in.get("/attempts").get_data(as_text=True)
    assert html.count("result-answered") >= 20 and "result-abandoned" in html
    html = logged_in.get(f"/attempts?campaign={ids['campaign_id']}&number=5550006").get_data(as_text=True)
    assert f'/records/{ids["timeline_record"]}' in html
    html = logged_in.get(f"/records/{ids['timeline_record']}").get_data(as_text=True)
    order = [html.index(f"result-{r}") for r in ("no_answer", "busy", "answered")]
    assert order == sorted(order)  # oldest first
    assert "sale" in html and "NORMAL_CLEARING" in html
    tl = reporting.record_timeline(db, ids["timeline_record"])
    assert [a.result for a in tl.attempt_rows] == ["no_answer", "busy", "answered"]
    assert tl.attempt_rows[-1].talk_s == 131


def test_x3_attempts_page_survives_odd_filters(logged_in, db):
    seed(db)
    for qs in ("campaign=abc", "campaign=99999", "number=%25%27--", "number=" + "9" * 500):
        assert logged_in.get(f"/attempts?{qs}").status_code == 200, qs


# --- P8: rules edited in the form apply at once ----------------------------

def _rules_form(client, queue_id) -> dict:
    html = client.get(f"/queues/{queue_id}/rules").get_data(as_text=True)
    return {"csrf_token": re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)}


def test_p8_rule_edit_changes_queue_feed(logged_in, db):
    ids = seed(db)
    q1, p = ids["q1"], ids["pools"]
    form = _rules_form(logged_in, q1)
    form.update({
        "selection_mode": "priority", "lead_minutes": "7.5",
        "feed_pool": [str(p["hot"]), str(p["main"])],
        f"feed-{p['hot']}-position": "5", f"feed-{p['hot']}-weight": "0",
        f"feed-{p['main']}-position": "0", f"feed-{p['main']}-weight": "0",
        f"feed-{p['main']}-remove": "1",
        "new_pool": str(p["old"]), "new_position": "1", "new_weight": "0", "new_shareable": "1",
    })
    resp = logged_in.post(f"/queues/{q1}/rules", data=form)
    assert resp.status_code == 302, resp.get_data(as_text=True)
    q = reporting.queue(db, q1)
    assert q.selection_mode == "priority" and q.lead_minutes == 7.5
    assert [(f.pool_name, f.position, f.shareable) for f in q.feeds] == [
        ("Old customers", 1, True), ("Hot leads", 5, False)]
    # P8: records queued under the old rule went back to their pools, leased ones stay
    assert (q.queued, q.leased) == (0, 2)
    page = logged_in.get(resp.headers["Location"]).get_data(as_text=True)
    assert "applied" in page


def test_p8_rule_edit_bad_input_changes_nothing(logged_in, db):
    ids = seed(db)
    q1, p = ids["q1"], ids["pools"]
    base = {
        "selection_mode": "percentage", "lead_minutes": "5",
        "feed_pool": [str(p["hot"]), str(p["main"])],
        f"feed-{p['hot']}-position": "0", f"feed-{p['hot']}-weight": "70",
        f"feed-{p['main']}-position": "1", f"feed-{p['main']}-weight": "30",
    }
    bad = [
        ({"selection_mode": "random"}, "selection mode"),
        ({"lead_minutes": "soon"}, "Lead minutes must be a number"),
        ({"lead_minutes": "nan"}, "Lead minutes must be between"),
        ({f"feed-{p['hot']}-weight": "80"}, "add up to 100"),
        ({f"feed-{p['hot']}-position": "-1"}, "Position of pool Hot leads"),
        ({"feed_pool": [str(p["hot"]), str(p["lapsed"])]}, "not in this campaign"),
        ({"new_pool": str(p["hot"])}, "already feeds"),
    ]
    for change, message in bad:
        form = {**_rules_form(logged_in, q1), **base, **change}
        resp = logged_in.post(f"/queues/{q1}/rules", data=form)
        assert resp.status_code == 400, change
        assert message in resp.get_data(as_text=True), change
    q = reporting.queue(db, q1)
    assert q.queued == 4 and [(f.pool_name, f.weight) for f in q.feeds] == [("Hot leads", 70), ("Main list", 30)]


def test_p8_parse_rules_is_pure():
    class Form(dict):
        def getlist(self, key):
            v = self.get(key)
            return v if isinstance(v, list) else ([] if v is None else [v])
    edit = parse_rules(Form({"selection_mode": "combined", "lead_minutes": "2,5",
                             "feed_pool": ["1", "2"], "feed-1-position": "0", "feed-1-weight": "40",
                             "feed-2-position": "0", "feed-2-weight": "60", "feed-2-shareable": "1"}),
                       {1: "a", 2: "b"})
    assert edit.selection_mode is SelectionMode.COMBINED and edit.lead_minutes == 2.5
    assert [(f.pool_id, f.weight, f.shareable) for f in edit.feeds] == [(1, 40, False), (2, 60, True)]
    with pytest.raises(InvalidInput) as err:
        parse_rules(Form({"selection_mode": "priority", "lead_minutes": "5", "feed_pool": "x"}), {})
    assert err.value.field == "feed_pool"


# --- X3: server-sent events --------------------------------------------------

def test_x3_stream_sends_snapshot_of_agents_and_counts(logged_in, db, app):
    ids = seed(db)
    resp = logged_in.get("/stream", buffered=False)
    assert resp.mimetype == "text/event-stream"
    assert resp.headers["Cache-Control"] == "no-cache"
    chunks = iter(resp.response)
    assert next(chunks).startswith(b"retry:")
    frame = next(chunks).decode()
    resp.close()
    assert frame.startswith("event: snapshot\ndata: ")
    data = json.loads(frame.split("data: ", 1)[1])
    states = {a["name"]: a["state"] for a in data["agents"]}
    assert states == {"alice": "talking", "bob": "idle", "carol": "wrapup", "dave": "paused"}
    assert data["agent_counts"]["talking"] == 1
    camp = {c["id"]: c for c in data["campaigns"]}[ids["campaign_id"]]
    assert camp["counts"]["ready"] == 50


def test_x3_stream_pushes_changes_and_ends_in_bounded_time(db):
    ids = seed(db)
    clock = [0.0]

    def sleep(s):
        clock[0] += s
        if clock[0] == 2.0:  # between the first and second poll an agent changes state
            with db.session() as s_:
                s_.get(Agent, ids["agents"]["bob"]).state = AgentState.DIALING
    frames = list(stream_mod.snapshots(db, heartbeat_timeout_s=3600, interval_s=2.0, max_s=40.0,
                                       clock=lambda: clock[0], sleep=sleep))
    snaps = [json.loads(f.split("data: ", 1)[1]) for f in frames if f.startswith("event: snapshot")]
    assert len(snaps) == 2  # initial + the change; unchanged polls send no snapshot
    assert {a["name"]: a["state"] for a in snaps[1]["agents"]}["bob"] == "dialing"
    assert any(f.startswith(": keep-alive") for f in frames)
    assert clock[0] <= 40.0


# --- users service and CLI ---------------------------------------------------

def test_p14_users_hash_passwords_and_validate(db):
    info = users.add_user(db, "ann", "longenough")
    from controller.models import User
    with db.session() as s:
        stored = s.get(User, info.id).password_hash
    assert "longenough" not in stored and stored.startswith("scrypt:")
    assert users.authenticate(db, "ann", "longenough").username == "ann"
    assert users.authenticate(db, "ann", "wrong") is None
    with pytest.raises(Conflict):
        users.add_user(db, "ann", "longenough")
    with pytest.raises(InvalidInput, match="at least 8"):
        users.add_user(db, "bea", "short")
    with pytest.raises(InvalidInput, match="user name"):
        users.add_user(db, "bad name!", "longenough")
    users.set_password(db, "ann", "another-secret")
    assert users.authenticate(db, "ann", "longenough") is None
    assert users.authenticate(db, "ann", "another-secret") is not None


def test_p14_cli_user_add_and_list(db_url):
    runner = CliRunner()
    r = runner.invoke(cli, ["user", "list", "--database", db_url])
    assert r.exit_code == 0 and "no users yet" in r.output
    r = runner.invoke(cli, ["user", "add", "boss", "--password", "s3cret-pass", "--database", db_url])
    assert r.exit_code == 0, r.output
    assert r.output == "user boss added (supervisor)\n"
    r = runner.invoke(cli, ["user", "add", "boss2", "--prompt", "--database", db_url],
                      input="pw-typed-twice\npw-typed-twice\n")
    assert r.exit_code == 0, r.output
    r = runner.invoke(cli, ["user", "add", "boss", "--password", "s3cret-pass", "--database", db_url])
    assert r.exit_code == 1 and "already exists" in r.output
    r = runner.invoke(cli, ["user", "add", "x", "--password", "short", "--database", db_url])
    assert r.exit_code == 1 and "at least 8 characters" in r.output
    r = runner.invoke(cli, ["user", "list", "--database", db_url])
    assert [line.split("\t")[0] for line in r.output.splitlines()] == ["boss", "boss2"]
    for sub in ("add", "list", "password"):
        assert runner.invoke(cli, ["user", sub, "--help"]).exit_code == 0


def test_d8_worker_heartbeat_state_reaches_dashboard_stream(logged_in, db):
    """End to end: a worker reports a state change over the API; the SSE snapshot shows it."""
    from controller.services import workers

    camp_id = seed(db)["campaign_id"]
    new = workers.add_worker(db, "pc-erin", agent="erin", campaign_id=camp_id, extension="1005")
    resp = logged_in.post("/api/v1/worker/heartbeat", json={"agent_state": "dialing", "active_calls": 1},
                          headers={"Authorization": f"Bearer {new.token}"})
    assert resp.status_code == 200, resp.get_json()
    stream = logged_in.get("/stream", buffered=False)
    chunks = iter(stream.response)
    next(chunks)
    data = json.loads(next(chunks).decode().split("data: ", 1)[1])
    stream.close()
    assert {a["name"]: a["state"] for a in data["agents"]}["erin"] == "dialing"
    assert data["agent_counts"]["dialing"] == 1


def test_p8_pool_order_changed_from_pools_page(logged_in, db):
    ids = seed(db)
    p = ids["pools"]
    token = _token(logged_in, "/pools")
    assert logged_in.post(f"/pools/{p['old']}/move", data={"direction": "up"}).status_code == 400  # no token
    resp = logged_in.post(f"/pools/{p['old']}/move", data={"direction": "up", "csrf_token": token})
    assert resp.status_code == 302
    assert "Pool Old customers moved up" in logged_in.get(resp.headers["Location"]).get_data(as_text=True)
    order = [name for _id, name in reporting.campaign_pools(db, ids["campaign_id"])]
    assert order == ["Hot leads", "Old customers", "Main list"]
    # the top pool cannot move further up; nothing changes, no error
    logged_in.post(f"/pools/{p['hot']}/move", data={"direction": "up", "csrf_token": token})
    assert [n for _i, n in reporting.campaign_pools(db, ids["campaign_id"])] == order
    assert logged_in.post(f"/pools/{p['hot']}/move", data={"direction": "sideways", "csrf_token": token}).status_code == 400
    assert logged_in.post("/pools/99999/move", data={"direction": "up", "csrf_token": token}).status_code == 404
    html = logged_in.get("/pools").get_data(as_text=True)
    assert html.index("Old customers</th>") < html.index("Main list</th>")


GEVENT_SERVER = r"""
from gevent import monkey; monkey.patch_all()
import sys
from gevent.pywsgi import WSGIServer
from controller import create_app
from controller.config import TestConfig
app = create_app(TestConfig(sys.argv[1]))
app.config.update(DASHBOARD_STREAM_INTERVAL_S=0.2, DASHBOARD_STREAM_MAX_S=20)
server = WSGIServer(("127.0.0.1", 0), app, log=None)
server.start()
print(server.server_port, flush=True)
server.serve_forever()
"""


@pytest.mark.slow
def test_x3_open_streams_do_not_block_pages_under_gevent(db, db_url):
    """Under gevent's WSGI server (monkey-patched, in a subprocess) several open
    SSE streams leave the pages responsive: the stream loop yields."""
    import select
    import subprocess
    import sys
    import time

    import requests

    seed(db)
    users.add_user(db, "sup", PASSWORD)
    proc = subprocess.Popen([sys.executable, "-c", GEVENT_SERVER, db_url], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    streams = []
    try:
        ready, _, _ = select.select([proc.stdout], [], [], 30)
        assert ready, "gevent server did not start: " + (proc.stderr.read() if proc.poll() is not None else "")
        base = f"http://127.0.0.1:{int(proc.stdout.readline())}"
        s = requests.Session()
        token = re.search(r'name="csrf_token" value="([^"]+)"', s.get(f"{base}/login", timeout=5).text).group(1)
        assert s.post(f"{base}/login", data={"username": "sup", "password": PASSWORD, "csrf_token": token},
                      timeout=5).status_code == 200
        for _ in range(5):
            r = requests.get(f"{base}/stream", cookies=s.cookies, stream=True, timeout=5)
            lines = r.iter_lines(decode_unicode=True)
            assert next(lines).startswith("retry:")
            next(lines)
            assert next(lines) == "event: snapshot"
            streams.append(r)
        start = time.monotonic()
        for path in ("/campaigns", "/pools", "/agents", "/attempts"):
            assert s.get(f"{base}{path}", timeout=5).status_code == 200, path
        assert time.monotonic() - start < 4.0
    finally:
        for r in streams:
            r.close()
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


def test_p14_login_page_tells_how_to_create_the_first_user(db, db_url):
    app = create_app(config_mod.TestConfig(db_url))
    html = app.test_client().get("/login").get_data(as_text=True)
    assert "dialer user add admin --prompt" in html
    users.add_user(db, "first", PASSWORD)
    assert "dialer user add" not in app.test_client().get("/login").get_data(as_text=True)
    app.extensions["dialer_db"].dispose()


def test_p14_failed_logins_are_throttled(client):
    for _ in range(5):
        assert login(client, password="wrong password!").status_code == 401
    resp = login(client)  # even the right password waits now
    assert resp.status_code == 429
    assert "Too many failed logins. Try again in 5 minutes." in resp.get_data(as_text=True)
    assert int(resp.headers["Retry-After"]) > 0
    assert client.get("/campaigns").status_code == 302
    # another user name from the same address is not locked out by these five
    assert login(client, username="other", password="whatever-pw").status_code == 401


def test_p14_login_throttle_window_slides():
    from controller.dashboard.throttle import LoginThrottle

    now = [0.0]
    t = LoginThrottle(max_failures=3, window_s=60, clock=lambda: now[0])
    for i in range(3):
        assert t.retry_after("u") == 0
        t.failed("u")
        now[0] += 10
    assert t.retry_after("u") == pytest.approx(30)  # first failure at 0 expires at 60
    now[0] = 61
    assert t.retry_after("u") == 0
    t.failed("u")
    t.reset("u")
    assert t.retry_after("u") == 0


def test_p7_recycle_rules_edited_from_the_dashboard(logged_in, db):
    from controller.services import recycling

    cid = seed(db)["campaign_id"]
    url = f"/campaigns/{cid}/recycle"
    assert url in logged_in.get("/campaigns").get_data(as_text=True)
    page = logged_in.get(url).get_data(as_text=True)
    assert 'data-result="busy"' in page and "data-default" in page
    token = _token(logged_in, url)
    resp = logged_in.post(url, data={"csrf_token": token, "result": "busy", "retry_minutes": "10",
                                     "max_attempts": "2", "action": "save"})
    assert resp.status_code == 302
    rule = {r.result: r for r in recycling.rules(db, cid)}["busy"]
    assert (rule.retry_minutes, rule.max_attempts, rule.is_default) == (10.0, 2, False)
    # bad input: 400 naming the problem, nothing changed
    resp = logged_in.post(url, data={"csrf_token": token, "result": "busy", "retry_minutes": "10",
                                     "max_attempts": "0", "action": "save"})
    assert resp.status_code == 400 and "max attempts must be a whole number" in resp.get_data(as_text=True)
    assert {r.result: r for r in recycling.rules(db, cid)}["busy"].max_attempts == 2
    # no CSRF token: refused, nothing changed
    resp = logged_in.post(url, data={"result": "busy", "retry_minutes": "1", "max_attempts": "9", "action": "save"})
    assert resp.status_code in (400, 403)
    assert {r.result: r for r in recycling.rules(db, cid)}["busy"].max_attempts == 2
    # back to the default
    resp = logged_in.post(url, data={"csrf_token": token, "result": "busy", "action": "reset"})
    assert resp.status_code == 302
    assert {r.result: r for r in recycling.rules(db, cid)}["busy"].is_default


def test_d2_x1_campaign_settings_edited_from_the_dashboard(logged_in, db):
    from controller.services import campaigns as campaign_service

    cid = seed(db)["campaign_id"]
    url = f"/campaigns/{cid}/settings"
    assert url in logged_in.get("/campaigns").get_data(as_text=True)
    page = logged_in.get(url).get_data(as_text=True)
    assert 'name="window"' in page and 'name="dial_mode"' in page
    token = _token(logged_in, url)
    form = {"csrf_token": token, "dial_mode": "power", "dial_ratio": "2.5", "abandon_target": "2%",
            "window": "09:00-20:00", "caller_id_number": "", "caller_id_name": "Spring", "abandon_message": ""}
    assert logged_in.post(url, data=form).status_code == 302
    now = campaign_service.worker_settings(db, cid)
    assert (now["dial_mode"], now["dial_ratio"], now["abandon_target"], now["window_start"], now["window_end"],
            now["caller_id_name"]) == ("power", 2.5, 0.02, "09:00", "20:00", "Spring")
    # a bad window: 400 naming the problem, nothing changed (not even the valid fields beside it)
    resp = logged_in.post(url, data={**form, "dial_ratio": "3", "window": "9-5"})
    assert resp.status_code == 400 and "calling window must look like 08:00-21:00" in resp.get_data(as_text=True)
    assert campaign_service.worker_settings(db, cid)["dial_ratio"] == 2.5
    # no CSRF token: refused
    resp = logged_in.post(url, data={k: v for k, v in form.items() if k != "csrf_token"} | {"dial_ratio": "4"})
    assert resp.status_code in (400, 403)
    assert campaign_service.worker_settings(db, cid)["dial_ratio"] == 2.5
