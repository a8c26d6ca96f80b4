#!/usr/bin/env python3
"""The cluster of `i2vgen serve --queue` and `i2vgen worker` end to end: a redis-server of the
test's own on a unix socket (AOF on), API nodes on 127.0.0.1 port 0, workers with the tiny
model. Every job parameter reaches the worker (the sampler), N videos over 3 workers each
complete exactly once, a worker SIGKILLed mid-video has it taken over, a paused (then resumed)
worker's duplicate result is discarded, SIGTERM gives the running video back, videos wait while
no worker runs, a worker finishing while Redis refuses writes records its video once it can,
redis-server restarted mid-run loses no accepted video, two API nodes
answer for the same videos, DELETE on one node cancels the run, an expired record's files leave
the store, retries run out into a dead letter, /metrics shows the workers. TAP; skipped only without redis-server."""
import concurrent.futures
import json
import os
import re
import shutil
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from service_lib import Server, Tap, log, png, temp_dir, wait_until  # noqa: E402
from redis_lib import Redis, Worker, redis_missing  # noqa: E402

TAP = Tap()
check = TAP.check
SANITIZED = bool(os.environ.get("I2V_SANITIZED"))  # an ASan/UBSan build: slower
TINY = {"prompt": "a test", "size": "16x16", "num_frames": 2, "fps": 8, "steps": 1}
SLOW = dict(TINY, size="32x32", num_frames=4, steps=15 if SANITIZED else 60)
IMAGE = png(24, 16)
# seconds a silent worker's video waits before another takes it: room for a heartbeat delayed by
# a loaded machine (Redis fsyncs every write; the sanitizers slow every thread)
CLAIM_AFTER = "6" if SANITIZED else "3"
TMP = temp_dir()
STORE = os.path.join(TMP, "store")


def api(redis, name, *extra):
    return Server(os.path.join(TMP, name), "--queue", redis.url, "--results", STORE, "--name",
                  name, "--max-size", "64", "--max-steps", "400", *extra)


def workers_named(redis, *names, claim_after=CLAIM_AFTER):
    """Workers started together (a model load each, in parallel), once all are ready."""
    ws = [Worker(redis, STORE, n, "--claim-after", claim_after, "--retries", "1") for n in names]
    for w in ws:
        if not w.wait_ready():
            raise RuntimeError(f"worker {w.name} not ready: {w.log_text()}")
    return ws


def events_of(redis, vid):
    """The types of the events of vid in the events stream, in order."""
    out = redis.cli("--no-raw", "XRANGE", "i2vgen:events", "-", "+")
    types, lines = [], out.splitlines()
    for i, line in enumerate(lines):
        if f'"{vid}"' in line and i + 2 < len(lines):
            types.append(lines[i + 2].split('"')[1])
    return types


def running_on(redis, vid, workers, timeout=60):
    """The worker of workers running vid once it has progress, or None after timeout."""
    end = time.time() + timeout
    while time.time() < end:
        # one field a call: redis-cli prints a missing field as an empty line, which the
        # stripped output of HMGET would lose
        name = redis.cli("HGET", f"i2vgen:job:{vid}", "consumer")
        progress = redis.cli("HGET", f"i2vgen:job:{vid}", "progress")
        w = next((w for w in workers if w.name == name), None)
        if w is not None and progress.isdigit() and int(progress) > 0:
            return w
        time.sleep(0.05)
    return None


def metric(text, pattern):
    m = re.search("^" + pattern + r" (\S+)$", text, re.M)
    return float(m.group(1)) if m else None


def test_parameters(a):
    """The sampler travels through Redis to the worker: same seed, other sampler, other video."""
    runs = {}
    for sampler in ("dpmpp-2m", "ddim"):
        v = a.create(dict(TINY, size="32x32", steps=6, seed=7, sampler=sampler,
                          motion_strength=0.5, negative_prompt="blur"), IMAGE).json()
        runs[sampler] = a.wait_status(v["id"], ["completed"])
    d = runs["dpmpp-2m"]
    check("a video sent with sampler dpmpp-2m, motion_strength 0.5, a negative prompt and a seed "
          "completes with them", d["status"] == "completed" and d["sampler"] == "dpmpp-2m" and
          d["motion_strength"] == 0.5 and d["negative_prompt"] == "blur" and d["seed"] == "7",
          repr(d))
    thumbs = {s: a.get(f"/v1/videos/{v['id']}/content?variant=thumbnail").body
              for s, v in runs.items()}
    check("the worker ran it with dpmpp-2m: the first frame differs from DDIM's with the same seed",
          thumbs["ddim"][:8] == b"\x89PNG\r\n\x1a\n" and thumbs["ddim"] != thumbs["dpmpp-2m"])


def test_many(a, redis, workers, total):
    t0 = time.time()
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        created = list(pool.map(lambda i: a.create(dict(TINY, seed=i), IMAGE), range(total)))
    ids = [r.json()["id"] for r in created if r.status == 200]
    check(f"{total} videos accepted by the API node", len(ids) == total,
          repr([r for r in created if r.status != 200][:3]))
    done = [a.wait_status(v, ["completed"], timeout=300, interval=0.2) for v in ids]
    elapsed = time.time() - t0
    check(f"all {total} completed (attempt 1 each)",
          all(d and d["status"] == "completed" and d["attempts"] == 1 for d in done),
          repr([d for d in done if not d or d["status"] != "completed"][:2]))
    Worker.wait_logged(workers, ids)
    counts = {}
    for w in workers:
        for vid in w.completed():
            counts[vid] = counts.get(vid, 0) + 1
    check("each completed exactly once over the 3 workers, each worker ran some",
          all(counts.get(v) == 1 for v in ids) and all(
              any(v in ids for v in w.completed()) for w in workers),
          repr({w.name: len(w.completed()) for w in workers}) +
          repr({v: counts.get(v) for v in ids if counts.get(v) != 1}))
    once = [events_of(redis, v).count("completed") == 1 for v in ids[:10]]
    check("one 'completed' event per video on the events stream", all(once), repr(once))
    files = [os.path.join(STORE, "videos", v + ".mp4") for v in ids]
    check("every result is in the store; no upload or temporary file is left",
          all(os.path.getsize(f) > 0 for f in files) and
          os.listdir(os.path.join(STORE, "uploads")) == [] and
          all(os.listdir(os.path.join(STORE, "tmp", d)) == []
              for d in os.listdir(os.path.join(STORE, "tmp"))))
    check("the queue stream is empty and nothing is pending",
          redis.cli("XLEN", "i2vgen:queue") == "0" and
          redis.cli("XPENDING", "i2vgen:queue", "workers").splitlines()[0] == "0")
    log(f"{total} videos on 3 workers: {elapsed:.1f} s, {total / elapsed:.1f} videos/s")


def test_metrics(a):
    time.sleep(1)  # one heartbeat: the workers publish their metrics with it
    text = a.get("/metrics").body.decode()
    check("/metrics: 3 workers alive, each up, queue depth 0, no dead letter",
          metric(text, "i2vgen_workers_alive") == 3 and
          len(re.findall(r'^i2vgen_worker_up\{worker="w\d"\} 1$', text, re.M)) == 3 and
          metric(text, "i2vgen_queue_depth") == 0 and metric(text, "i2vgen_dead_letters") == 0,
          text[-1500:])
    check("/metrics: the workers' step times summed (the web page's seconds per step)",
          (metric(text, r'i2vgen_step_seconds_count\{size="32x32",frames="2"\}') or 0) >= 4 and
          (metric(text, r'i2vgen_videos_finished_total\{result="completed"\}') or 0) >= 3,
          text[:1500])


def test_sigkill(a, redis, workers):
    vid = a.create(SLOW, IMAGE).json()["id"]
    victim = running_on(redis, vid, workers)
    text = a.get("/metrics").body.decode()
    check("/metrics shows the running video pending on its worker",
          victim is not None and
          metric(text, f'i2vgen_queue_pending{{consumer="{victim.name}"}}') == 1, text[-800:])
    t0 = time.time()
    victim.signal(signal.SIGKILL)
    victim.proc.wait()
    others = [w for w in workers if w is not victim]
    running_on(redis, vid, others)
    taken = time.time() - t0
    d = a.wait_status(vid, ["completed"], timeout=120)
    Worker.wait_logged(others, [vid])
    check("SIGKILL of the worker mid-video: another takes it over and completes it (attempt 2)",
          d["status"] == "completed" and d["attempts"] == 2 and
          any(vid in w.completed() for w in others), repr(d))
    log(f"SIGKILLed worker's video running again after {taken:.2f} s "
        f"(--claim-after {CLAIM_AFTER})")
    return others


def test_duplicate(a, redis, workers):
    """A worker paused past --claim-after looks dead: its video is taken over and completed; when
    it resumes and finishes, its result is discarded."""
    vid = a.create(SLOW, IMAGE).json()["id"]
    paused = running_on(redis, vid, workers)
    paused.signal(signal.SIGSTOP)
    t0 = time.time()
    other = running_on(redis, vid, [w for w in workers if w is not paused])
    log(f"paused {paused.name}: {other and other.name} took its video over after "
        f"{time.time() - t0:.2f} s")
    paused.signal(signal.SIGCONT)
    d = a.wait_status(vid, ["completed"], timeout=120)
    Worker.wait_logged(workers, [vid])
    wait_until(lambda: "result is discarded" in paused.log_text(), 120)
    check("a paused worker's video is taken over and completed once; the resumed run's result "
          "is discarded", other is not None and d["status"] == "completed" and
          d["attempts"] == 2 and vid in other.completed() and vid not in paused.completed() and
          f"{vid} ran to the end but is no longer this run's" in paused.log_text() and
          events_of(redis, vid).count("completed") == 1, f"{d}\n{paused.log_text()[-800:]}")


def test_no_workers(a, redis, workers):
    vid = a.create(SLOW, IMAGE).json()["id"]
    running_on(redis, vid, workers)
    t0 = time.time()
    codes = [w.stop() for w in workers]
    stop_s = time.time() - t0
    d = a.video(vid)
    check("SIGTERM on every worker: each exits 0, the running video goes back to the queue "
          "(attempts 0)", codes == [0] * len(workers) and d["status"] == "queued" and
          d["attempts"] == 0, f"{codes} {d}")
    log(f"SIGTERM to exit for {len(workers)} workers: {stop_s:.2f} s")
    waiting = [a.create(TINY, IMAGE).json()["id"] for _ in range(3)]
    time.sleep(1)
    check("with no worker, videos wait queued",
          all(a.video(v)["status"] == "queued" for v in waiting + [vid]))
    # a --claim-after far above the bound: only the give-back explains a take-over within it
    w, = workers_named(redis, "w4", claim_after="30")
    t0 = time.time()
    d = a.wait_status(vid, ["in_progress"], timeout=60)
    took = time.time() - t0
    check("a worker that comes back takes the given-back video at once (not after "
          "--claim-after)", d["status"] in ("in_progress", "completed") and
          took < (10 if SANITIZED else 5), f"{took:.1f} s, {d}")
    done = [a.wait_status(v, ["completed"]) for v in [vid] + waiting]
    check("... and runs every waiting video", all(x["status"] == "completed" for x in done))
    return w


def test_writes_refused(a, redis, w):
    """Redis refuses writes (min-replicas-to-write with no replica: as in a failover, or at
    maxmemory) while the worker finishes a video: it keeps trying to record it, and does once
    writes are back: completed in its first attempt, not failed and not run twice."""
    vid = a.create(dict(SLOW, steps=8), IMAGE).json()["id"]
    on = running_on(redis, vid, [w])
    redis.cli("CONFIG", "SET", "min-replicas-to-write", "1")

    def tried_or_ended():
        text = w.log_text()
        return any(f"{vid}{said}" in text for said in (": redis", " failed", " completed"))
    wait_until(tried_or_ended, 120)
    time.sleep(2)  # a few tries
    redis.cli("CONFIG", "SET", "min-replicas-to-write", "0")
    d = a.wait_status(vid, ["completed", "failed"], timeout=60)
    tries = w.log_text().count(f"{vid}: redis")
    check("redis refusing writes as a worker finishes: it keeps trying to record the video and "
          "does once writes are back (completed, first attempt)", on is w and tries >= 2 and
          d["status"] == "completed" and d["attempts"] == 1, f"{tries} tries, {d}\n"
          f"{w.log_text()[-800:]}")


def test_redis_restart(a, redis, w):
    ids = [a.create(TINY, IMAGE).json()["id"] for _ in range(8)]
    redis.stop()
    r = a.create(TINY, IMAGE)
    check("while redis-server is down the API answers 500 naming Redis (no crash)",
          r.status == 500 and "redis" in r.error().get("message", ""), repr(r))
    redis.start()
    done = [a.wait_status(v, ["completed"], timeout=120) for v in ids]
    check("redis-server stopped mid-run and started again (AOF): every accepted video completes",
          all(d and d["status"] == "completed" for d in done),
          repr([d and d["status"] for d in done]))
    check("the worker and the API node said they reconnected",
          "connected again" in w.log_text() and "connected again" in a.log_text(),
          w.log_text()[-600:])


def test_two_nodes(a, b):
    a.create(dict(SLOW, steps=20), IMAGE)  # ahead: the video below is queued when a follows it
    vid = b.create(TINY, IMAGE).json()["id"]
    events = a.events(vid)
    types = [e[1] for e in events]
    check("two API nodes: a video created on one streams its events on the other to completion",
          types and types[0] == "video" and types[-1] == "completed", repr(types))
    listed = [v["id"] for v in a.get("/v1/videos?limit=5").json()["data"]]
    check("... is listed, read and served by both",
          vid in listed and b.video(vid) == a.video(vid) and
          a.get(f"/v1/videos/{vid}/content").body == b.get(f"/v1/videos/{vid}/content").body)


def test_cancel(a, b, redis, w):
    vid = a.create(SLOW, IMAGE).json()["id"]
    running_on(redis, vid, [w])
    t0 = time.time()
    r = b.request("DELETE", f"/v1/videos/{vid}")
    wait_until(lambda: f"{vid} deleted after" in w.log_text(), 30, interval=0.02)
    took = time.time() - t0
    check("DELETE on the other API node cancels the run on the worker within a second "
          "(within a step under the sanitizers)",
          r.status == 200 and f"{vid} deleted after" in w.log_text() and
          took < (10 if SANITIZED else 1.5) and
          a.get(f"/v1/videos/{vid}").status == 404, f"{r!r}, {took:.2f} s")
    log(f"DELETE to the worker's cancellation: {took:.2f} s")
    nxt = a.create(TINY, IMAGE).json()["id"]
    check("the worker goes on with the next video", a.wait_status(nxt, ["completed"])["status"] ==
          "completed")


def test_expiry(redis, nodes):
    """A finished video's record expires after --job-ttl; an API node then removes its files from
    the store (the expired id is handed to one node, any of them), and counts it no more."""
    c = api(redis, "c", "--job-ttl", "3")
    try:
        vid = c.create(TINY, IMAGE).json()["id"]
        files = [os.path.join(STORE, "videos", vid + ext) for ext in (".mp4", ".png")]
        # The files are looked at before the status: once the record still says "completed"
        # afterwards, they were there before it expired, so before any sweep could take them
        # (however long this process is held up between the two).
        done, kept, end = None, None, time.time() + 120
        while time.time() < end:
            seen = [os.path.exists(f) for f in files]
            done = c.video(vid)
            if done.get("status") not in ("queued", "in_progress"):
                kept = seen
                break
            time.sleep(0.05)
        # the sweeping node logs just after it removed the files
        wait_until(lambda: not any(os.path.exists(f) for f in files) and any(
            "expired video(s)" in s.log_text() for s in nodes + [c]), 20, interval=0.1)
        left = [f for f in files if os.path.exists(f)]
        status = c.get(f"/v1/videos/{vid}").status
        listed = [v["id"] for v in c.get("/v1/videos?limit=100").json()["data"]]
        swept = [s for s in nodes + [c] if "expired video(s)" in s.log_text()]
        check("--job-ttl 3: the finished video's record expires and an API node removes its "
              "video and thumbnail from the store",
              done.get("status") == "completed" and kept == [True, True] and
              not left and status == 404 and vid not in listed and len(swept) == 1,
              f"{done}, kept {kept}, left {left}, GET {status}, swept by {len(swept)} node(s)\n"
              f"{c.log_text()[-600:]}")
    finally:
        code = c.stop()
        check("API node c: SIGTERM, exit 0", code == 0, c.log_text())


def test_dead_letter(a, redis):
    """Retries run out: two workers SIGKILLed in turn on the same video (--retries 1)."""
    ws = workers_named(redis, "d0", "d1", "d2")
    vid = a.create(SLOW, IMAGE).json()["id"]
    for _ in range(2):
        victim = running_on(redis, vid, ws)
        victim.signal(signal.SIGKILL)
        victim.proc.wait()
        ws.remove(victim)
        wait_until(lambda: redis.cli("HGET", f"i2vgen:job:{vid}", "consumer") != victim.name or
                   a.video(vid)["status"] != "in_progress", 30)  # a live worker took it over
    d = a.wait_status(vid, ["failed"], timeout=60)
    dead = redis.cli("XRANGE", "i2vgen:dead", "-", "+")
    text = a.get("/metrics").body.decode()
    check("interrupted twice with --retries 1: failed 'interrupted', saying why, kept as a dead "
          "letter", d["status"] == "failed" and d["error"]["code"] == "interrupted" and
          "each of its 2 attempts" in d["error"]["message"] and vid in dead and
          metric(text, "i2vgen_dead_letters") == 1, f"{d}\n{dead}")
    # the event goes out just after the status is set
    last = wait_until(lambda: events_of(redis, vid)[-1:] == ["failed"], 10, interval=0.1)
    check("... and its event stream ended with 'failed'", last)
    for w in ws:
        w.stop()


def main():
    why = redis_missing()
    if why:
        TAP.skip("the cluster over Redis", why)
        return TAP.done()
    t0 = time.time()
    redis = Redis(os.path.join(TMP, "redis"))
    os.makedirs(STORE)
    a = api(redis, "a")
    workers = workers_named(redis, "w1", "w2", "w3")
    b = None
    try:
        test_parameters(a)
        test_many(a, redis, workers, 12 if SANITIZED else 60)
        test_metrics(a)
        log(f"load done after {time.time() - t0:.1f} s")
        workers = test_sigkill(a, redis, workers)
        test_duplicate(a, redis, workers)
        w = test_no_workers(a, redis, workers)
        test_writes_refused(a, redis, w)
        log(f"workers done after {time.time() - t0:.1f} s")
        test_redis_restart(a, redis, w)
        b = api(redis, "b")
        test_two_nodes(a, b)
        test_cancel(a, b, redis, w)
        test_expiry(redis, [a, b])
        code = w.stop()
        check("worker: SIGTERM while idle, exit 0", code == 0, w.log_text()[-800:])
        test_dead_letter(a, redis)
    finally:
        for w in Worker.started:
            if w.proc.poll() is None:
                w.proc.kill()
        for s in (a, b):
            if s is not None:
                code = s.stop()
                check(f"API node {os.path.basename(s.data)}: SIGTERM, exit 0", code == 0,
                      s.log_text())
        redis.stop()
    log(f"total {time.time() - t0:.1f} s")
    shutil.rmtree(TMP, ignore_errors=True)
    return TAP.done()


if __name__ == "__main__":
    sys.exit(main())
