"""Dashboard pages (P14): thin views over services.reporting and the queue service."""
from __future__ import annotations

import logging

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for

from esl_dialer.messages import AgentState, DialMode, RecordStatus, SelectionMode

from .. import get_db
from ..errors import DialerError, NotFound
from ..services import queues as queue_service
from ..services import reporting
from . import forms

logger = logging.getLogger(__name__)


def register(bp: Blueprint) -> None:
    bp.add_url_rule("/", "index", index)
    bp.add_url_rule("/campaigns", "campaigns", campaigns_page)
    bp.add_url_rule("/pools", "pools", pools_page)
    bp.add_url_rule("/queues/<int:queue_id>/rules", "queue_rules", queue_rules, methods=["GET", "POST"])
    bp.add_url_rule("/pools/<int:pool_id>/move", "move_pool", move_pool, methods=["POST"])
    bp.add_url_rule("/campaigns/<int:campaign_id>/control", "campaign_control", campaign_control, methods=["POST"])
    bp.add_url_rule("/campaigns/<int:campaign_id>/recycle", "recycle_rules", recycle_rules,
                    methods=["GET", "POST"])
    bp.add_url_rule("/campaigns/<int:campaign_id>/settings", "campaign_settings", campaign_settings,
                    methods=["GET", "POST"])
    bp.add_url_rule("/agents", "agents", agents_page)
    bp.add_url_rule("/attempts", "attempts", attempts_page)
    bp.add_url_rule("/records/<int:record_id>", "record", record_page)
    bp.add_url_rule("/proxies", "proxies", proxies_page)


def index():
    return redirect(url_for("dashboard.campaigns"))


def campaigns_page():
    db = get_db()
    agent_list = reporting.agents(db, heartbeat_timeout_s=current_app.config["HEARTBEAT_TIMEOUT_S"])
    return render_template(
        "campaigns.html",
        campaigns=reporting.campaigns(db),
        statuses=[s.value for s in RecordStatus],
        agent_counts=reporting.agent_state_counts(agent_list),
        agent_states=[s.value for s in AgentState],
        campaign_actions=CAMPAIGN_ACTIONS,
    )


#: buttons shown on the campaigns page for each status (P14)
CAMPAIGN_ACTIONS = {"draft": ("start", "finish"), "active": ("pause", "finish"), "paused": ("resume", "finish"),
                    "finished": ()}


def campaign_control(campaign_id: int):
    """Start / pause / resume / finish a campaign; its workers follow within seconds (P14)."""
    from ..services import campaigns as campaign_service

    action = request.form.get("action")
    if action not in campaign_service.TRANSITIONS:
        abort(400, description="Choose start, pause, resume or finish.")
    try:
        change = campaign_service.change_status(get_db(), campaign_id, action)
    except NotFound:
        abort(404, description=f"There is no campaign {campaign_id}.")
    except DialerError as err:
        flash(err.message, "error")
    else:
        logger.info("campaign %s: %s from the dashboard", change.campaign, action)
        flash(f"Campaign {change.campaign} is {change.new.value} ({change.workers_notified} worker(s) notified).",
              "ok")
    return redirect(url_for("dashboard.campaigns"))


#: the settings form's fields, in the order ``campaigns.update_settings`` takes them
SETTINGS_FIELDS = ("dial_mode", "dial_ratio", "abandon_target", "window", "caller_id_number", "caller_id_name",
                   "abandon_message")


def campaign_settings(campaign_id: int):
    """A campaign's dialing settings (D2, X1): mode, ratio, abandonment target,
    calling window, caller id; its workers apply a change within seconds."""
    from ..services import campaigns as campaign_service

    db = get_db()
    try:
        current = campaign_service.worker_settings(db, campaign_id)
    except NotFound:
        abort(404, description=f"There is no campaign {campaign_id}.")
    error = error_field = None
    status = 200
    if request.method == "POST":
        given = {k: request.form.get(k, "") for k in SETTINGS_FIELDS}
        try:
            settings = campaign_service.update_settings(db, campaign_id, **given)
        except DialerError as err:
            error, error_field, status = err.message, err.field, 400
        else:
            logger.info("campaign %s settings changed from the dashboard", settings["name"])
            flash(f"Settings of {settings['name']} saved; its workers apply them within seconds.", "ok")
            return redirect(url_for("dashboard.campaign_settings", campaign_id=campaign_id))
    return render_template("campaign_settings.html", campaign_id=campaign_id, s=current,
                           modes=[m.value for m in DialMode], error=error, error_field=error_field,
                           form=request.form if error else None), status


def recycle_rules(campaign_id: int):
    """A campaign's recycle rules (P7), one form per result; a change applies to the next result (P8)."""
    from ..services import campaigns as campaign_service
    from ..services import recycling

    db = get_db()
    try:
        campaign = campaign_service.get_campaign(db, campaign_id)
    except NotFound:
        abort(404, description=f"There is no campaign {campaign_id}.")
    error = error_field = error_result = None
    status = 200
    if request.method == "POST":
        result = request.form.get("result", "")
        try:
            if request.form.get("action") == "reset":
                recycling.reset_rule(db, campaign_id, result)
                message = f"{result}: back to the default rule."
            else:
                rule = recycling.set_rule(db, campaign_id, result, request.form.get("retry_minutes", ""),
                                          request.form.get("max_attempts", "").strip())
                message = f"{result}: retried after {rule.retry_minutes:g} min, at most {rule.max_attempts} attempts."
        except DialerError as err:
            error, error_field, error_result, status = err.message, err.field, result, 400
        else:
            logger.info("campaign %s recycle rules changed from the dashboard: %s", campaign.name, message)
            flash(message + " The next result follows it.", "ok")
            return redirect(url_for("dashboard.recycle_rules", campaign_id=campaign_id))
    return render_template("recycle.html", campaign=campaign, rules=recycling.rules(db, campaign_id),
                           error=error, error_field=error_field, error_result=error_result,
                           form=request.form if error else None), status


def pools_page():
    db = get_db()
    camps = reporting.campaigns(db)
    pools = reporting.pools(db)
    queues = reporting.queues(db)
    by_campaign = [
        (c, [p for p in pools if p.campaign_id == c.id], [q for q in queues if q.campaign_id == c.id])
        for c in camps
    ]
    return render_template("pools.html", by_campaign=by_campaign)


def move_pool(pool_id: int):
    """Move a pool one place up or down in its campaign's order (P8, live)."""
    direction = request.form.get("direction")
    if direction not in ("up", "down"):
        abort(400, description="Choose to move the pool up or down.")
    db = get_db()
    pool = next((p for p in reporting.pools(db) if p.id == pool_id), None)
    if pool is None:
        abort(404, description=f"There is no pool {pool_id}.")
    order = [pid for pid, _name in reporting.campaign_pools(db, pool.campaign_id)]
    i = order.index(pool_id)
    j = i - 1 if direction == "up" else i + 1
    if 0 <= j < len(order):
        order[i], order[j] = order[j], order[i]
        queue_service.reorder_pools(db, pool.campaign_id, order)
        logger.info("campaign %s: pool %s moved %s from the dashboard", pool.campaign_id, pool_id, direction)
        flash(f"Pool {pool.name} moved {direction}. Queues that drain the campaign's pools in order follow at once.",
              "ok")
    return redirect(url_for("dashboard.pools") + f"#campaign-{pool.campaign_id}")


def queue_rules(queue_id: int):
    db = get_db()
    try:
        q = reporting.queue(db, queue_id)
    except NotFound:
        abort(404, description=f"There is no queue {queue_id}.")
    pool_choices = reporting.campaign_pools(db, q.campaign_id)
    error = None
    error_field = None
    status = 200
    if request.method == "POST":
        try:
            edit = forms.parse_rules(request.form, dict(pool_choices))
            apply_rules(db, queue_id, edit)
        except DialerError as err:
            error, error_field, status = err.message, err.field, 400
        else:
            logger.info("queue %s rules changed from the dashboard: mode=%s lead=%s feeds=%s",
                        queue_id, edit.selection_mode.value, edit.lead_minutes,
                        [(f.pool_id, f.position, f.weight, f.shareable) for f in edit.feeds])
            flash(f"Rules of queue {q.name} applied. The next lease follows them.", "ok")
            return redirect(url_for("dashboard.queue_rules", queue_id=queue_id))
    feeding = {f.pool_id for f in q.feeds}
    return render_template(
        "queue_rules.html", q=q, modes=[m.value for m in SelectionMode],
        other_pools=[(pid, name) for pid, name in pool_choices if pid not in feeding],
        error=error, error_field=error_field, form=request.form if error else None,
    ), status


def apply_rules(db, queue_id: int, edit: forms.RulesEdit) -> None:
    """Apply a rules edit at once through the queue service (P8).

    ``set_feeds`` replaces the feeds and mode in one transaction and returns
    the queue's not-yet-leased records to their pools, so the very next lease
    follows the new rule; the lead time is a separate, independent field.
    """
    queue_service.set_feeds(
        db, queue_id,
        [queue_service.FeedSpec(f.pool_id, f.position, f.weight, f.shareable) for f in edit.feeds],
        selection_mode=edit.selection_mode,
    )
    queue_service.update_queue(db, queue_id, lead_minutes=edit.lead_minutes)


def agents_page():
    db = get_db()
    agent_list = reporting.agents(db, heartbeat_timeout_s=current_app.config["HEARTBEAT_TIMEOUT_S"])
    return render_template("agents.html", agents=agent_list,
                           agent_counts=reporting.agent_state_counts(agent_list),
                           agent_states=[s.value for s in AgentState])


def attempts_page():
    db = get_db()
    camps = reporting.campaigns(db)
    campaign_id = request.args.get("campaign", type=int)
    number = (request.args.get("number") or "").strip()[:32]
    matches = reporting.find_records(db, number) if number else []
    return render_template(
        "attempts.html", campaigns=camps, campaign_id=campaign_id, number=number, matches=matches,
        attempts=reporting.recent_attempts(db, limit=100, campaign_id=campaign_id),
    )


def record_page(record_id: int):
    try:
        timeline = reporting.record_timeline(get_db(), record_id)
    except NotFound:
        abort(404, description=f"There is no call record {record_id}.")
    return render_template("record.html", r=timeline)


#: the remote-queue page reloads itself this often (seconds)
PROXIES_REFRESH_S = 5


def proxies_page():
    """Read-only view of the remote center's ACD queue (R1-R9): proxies waiting, bridged, ended."""
    from ..services import acd

    db = get_db()
    live = acd.list_proxies(db, live_only=True)
    recent = acd.list_proxies(db, live_only=False, limit=200)
    counts: dict[str, int] = {}
    for p in recent:
        counts[p.state] = counts.get(p.state, 0) + 1
    live_ids = {p.id for p in live}
    ended = [p for p in recent if p.id not in live_ids][:50]
    return render_template("proxies.html", live=live, ended=ended, counts=counts, refresh_s=PROXIES_REFRESH_S)
