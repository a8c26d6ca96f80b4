#!/usr/bin/env python3
"""Benchmarks of the cluster (`i2vgen serve --queue` + `i2vgen worker`) on the tiny model on
the CPU (figures for docs/service.md, "Scaling out"; not a test):

  1. throughput with 1, 2 and 3 workers: videos per second for a burst of tiny videos;
  2. the queueing overhead per video: the client's time (POST to the completed event) minus the
     run's own time in the worker's log, through Redis and through the embedded queue;
  3. the time to reclaim a dead worker's video: from SIGKILL of the worker running it to another
     worker starting it (--claim-after 2).

Run from the source tree with the build's environment, e.g.
  meson devenv -C build env I2V_DEFAULT_FIXTURES=../shared/fixtures \\
      I2VGEN_TOOL=build/tools/i2vgen python3 tools/serve/bench_redis.py
"""
import concurrent.futures
import os
import re
import shutil
import signal
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests"))
from service_lib import Server, png, temp_dir  # noqa: E402
from redis_lib import Redis, Worker, redis_missing  # noqa: E402

TINY = {"prompt": "a test", "size": "16x16", "num_frames": 2, "fps": 8, "steps": 1}
SLOW = dict(TINY, size="32x32", num_frames=4, steps=200)
IMAGE = png(24, 16)
BURST = 30
RUNS = 10


def throughput(a, n):
    """Videos per second for BURST tiny videos submitted at once."""
    t0 = time.time()
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        ids = list(pool.map(lambda i: a.create(dict(TINY, seed=i), IMAGE).json()["id"],
                            range(BURST)))
    for vid in ids:
        assert a.wait_status(vid, ["completed"], timeout=600, interval=0.1)["status"] == "completed"
    return BURST / (time.time() - t0)


def overhead(server, log_text):
    """Median of (client time - the run's time in the log) over RUNS sequential videos, in ms."""
    out = []
    for _ in range(RUNS):
        t0 = time.time()
        vid = server.create(TINY, IMAGE).json()["id"]
        events = server.events(vid)
        client = time.time() - t0
        assert events[-1][1] == "completed", events
        m = None
        while m is None:
            m = re.search(re.escape(vid) + r" completed in ([\d.]+) s", log_text())
        out.append(client - float(m.group(1)))
    return statistics.median(out) * 1000


def reclaim(a, redis, workers):
    """Seconds from SIGKILL of the worker running a video to another worker starting it."""
    vid = a.create(SLOW, IMAGE).json()["id"]
    key = f"i2vgen:job:{vid}"
    while redis.cli("HGET", key, "consumer") not in [w.name for w in workers]:
        time.sleep(0.01)
    victim = next(w for w in workers if w.name == redis.cli("HGET", key, "consumer"))
    t0 = time.time()
    victim.signal(signal.SIGKILL)
    victim.proc.wait()
    while redis.cli("HGET", key, "consumer") == victim.name:
        time.sleep(0.01)
    took = time.time() - t0
    a.request("DELETE", f"/v1/videos/{vid}")
    return took, victim


def main():
    why = redis_missing()
    if why:
        sys.exit(why)
    tmp = temp_dir()
    store = os.path.join(tmp, "store")
    os.makedirs(store)
    redis = Redis(os.path.join(tmp, "redis"))
    a = Server(os.path.join(tmp, "a"), "--queue", redis.url, "--results", store, "--max-size", "64",
               "--max-steps", "400")
    workers = []
    try:
        for n in (1, 2, 3):
            w = Worker(redis, store, f"w{n}", "--claim-after", "2")
            assert w.wait_ready(), w.log_text()
            workers.append(w)
            print(f"throughput, {n} worker(s): {throughput(a, n):.1f} videos/s", flush=True)
        for w in workers[1:]:
            w.stop()
        ms = overhead(a, workers[0].log_text)
        print(f"queueing overhead per video, Redis (1 API node, 1 worker): {ms:.0f} ms", flush=True)
        workers = workers[:1] + [Worker(redis, store, f"r{i}", "--claim-after", "2")
                                 for i in range(2)]
        assert all(w.wait_ready() for w in workers)
        times = []
        for _ in range(3):
            took, victim = reclaim(a, redis, workers)
            times.append(took)
            workers.remove(victim)
            workers.append(Worker(redis, store, f"r{len(times) + 2}", "--claim-after", "2"))
            assert workers[-1].wait_ready()
        print(f"reclaim of a SIGKILLed worker's video (--claim-after 2): "
              f"{min(times):.2f}-{max(times):.2f} s over {len(times)} kills", flush=True)
    finally:
        for w in Worker.started:
            if w.proc.poll() is None:
                w.proc.kill()
        a.stop()
        redis.stop()
    e = Server(os.path.join(tmp, "embedded"), "--max-size", "64")
    try:
        ms = overhead(e, e.log_text)
        print(f"queueing overhead per video, embedded queue (SQLite): {ms:.0f} ms", flush=True)
    finally:
        e.stop()
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
