"""P11: several controllers on one database hand out disjoint records."""
from __future__ import annotations

import threading

import pytest

from controller import create_app
from controller.services import queues as Q

from distribution_helpers import ALL_DAY, add_numbers, add_worker, make_campaign, reset_caches


@pytest.fixture(autouse=True)
def _fresh_caches():
    reset_caches()
    yield
    reset_caches()


def test_p11_two_controllers_hand_out_disjoint_records(db, db_url):
    cid = make_campaign(db, window=ALL_DAY)
    pools = [Q.create_pool(db, cid, name).id for name in ("A", "B")]
    add_numbers(db, pools[0], 300)
    add_numbers(db, pools[1], 300, start=5000)
    workers = [add_worker(db, cid, f"w{i}", f"10{i:02d}") for i in range(8)]
    # half the queues share pool B so refills of different queues compete for the same rows
    for w in workers[::2]:
        Q.set_feeds(db, w.queue_id, [(pools[0], 0, 1, True), (pools[1], 1, 1, True)])
    apps = [create_app({"DATABASE_URL": db_url, "TESTING": True}) for _ in range(2)]
    handed: list[int] = []
    lock = threading.Lock()
    errors: list[str] = []

    def run(app, w):
        client = app.test_client()
        headers = {"Authorization": f"Bearer {w.token}"}
        n = 0
        while True:
            r = client.post("/api/v1/worker/lease", json={"max": 15}, headers=headers)
            if r.status_code != 200:
                errors.append(f"{r.status_code} {r.json}")
                return
            ids = [x["id"] for x in r.json["records"]]
            if not ids:
                return
            with lock:
                handed.extend(ids)
            results = [{"client_id": f"{w.name}-{rid}", "record_id": rid, "result": "answered"} for rid in ids]
            r = client.post("/api/v1/worker/results", json={"results": results}, headers=headers)
            if r.status_code != 200 or len(r.json["accepted"]) != len(ids):
                errors.append(f"results {r.status_code} {r.json}")
                return
            n += 1

    threads = [threading.Thread(target=run, args=(apps[i % 2], w)) for i, w in enumerate(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    for app in apps:
        app.extensions["dialer_db"].dispose()
    assert not errors, errors[:3]
    assert len(handed) == len(set(handed)), "a record was handed out twice"
    assert len(handed) == 600
