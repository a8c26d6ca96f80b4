#!/usr/bin/env python3
"""Benchmarks of `i2vgen serve` on the tiny model (figures for docs/service.md; not a test):

  1. the server's overhead per video: the same tiny job through gst-launch-1.0 (a process that
     loads the model and runs the element's pipeline) and through the server (POST, wait for the
     completed event, GET the MP4), and the server's own pipeline time for it;
  2. the time from a job's start to its first denoising step, first and later jobs (the model
     stays loaded between jobs);
  3. status requests per second (GET /v1/videos/{id}) with wrk when installed, else a Python
     keep-alive loop;
  4. Server-Sent Events latency: from the worker receiving an i2vgen-progress message (the
     "time" of the event) to the client reading the event.

Run from the build tree's environment, e.g.
  meson devenv -C build env I2V_DEFAULT_FIXTURES=../shared/fixtures \\
      I2VGEN_TOOL=build/tools/i2vgen python3 tools/serve/bench.py
"""
import os
import re
import shutil
import statistics
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests"))
from service_lib import Server, png, temp_dir, tiny_model  # noqa: E402

JOB = {"prompt": "a test", "size": "32x32", "num_frames": 4, "fps": 8, "steps": 2}
RUNS = 10


def median_ms(values, decimals=0):
    return f"{statistics.median(values) * 1000:.{decimals}f} ms"


def direct_runs(image, tmp):
    """Wall time of gst-launch-1.0 running the same pipeline as a server job."""
    times = []
    for i in range(RUNS):
        out = os.path.join(tmp, f"direct{i}.mp4")
        t0 = time.time()
        subprocess.run(["gst-launch-1.0", "-q", "-e", "filesrc", f"location={image}", "!",
                        "pngdec", "!", "videoconvert", "!", "i2vgen", f"model-path={tiny_model()}",
                        "prompt=a test", "width=32", "height=32", "num-frames=4", "fps=8",
                        "steps=2", "!", "videoconvert", "!", "video/x-raw,format=I420", "!",
                        "x264enc", "!", "mp4mux", "faststart=true", "!", "filesink",
                        f"location={out}"], check=True)
        times.append(time.time() - t0)
    return times


def server_runs(s, image_bytes):
    """Client-side time per video (POST to completed event to the MP4 downloaded)."""
    times = []
    for _ in range(RUNS):
        t0 = time.time()
        vid = s.create(JOB, image_bytes).json()["id"]
        s.events(vid)
        body = s.get(f"/v1/videos/{vid}/content").body
        times.append(time.time() - t0)
        assert body[4:8] == b"ftyp"
    return times


def status_rate(s, vid):
    path = f"/v1/videos/{vid}"
    if shutil.which("wrk"):
        results = {}
        for conns in (1, 8):
            r = subprocess.run(["wrk", "-t", "1" if conns == 1 else "2", "-c", str(conns), "-d",
                                "5s", s.url.rstrip("/") + path], capture_output=True, text=True)
            m = re.search(r"Requests/sec:\s+([\d.]+)", r.stdout)
            results[f"wrk, {conns} connection(s)"] = float(m.group(1)) if m else r.stdout
        return results
    import http.client
    c = http.client.HTTPConnection("127.0.0.1", s.port)
    n, t0 = 0, time.time()
    while time.time() - t0 < 5:
        c.request("GET", path)
        c.getresponse().read()
        n += 1
    return {"python keep-alive loop, 1 connection": n / (time.time() - t0)}


def sse_latency(s, image_bytes):
    """Event 'time' (worker got the progress message) to the client reading it, for a job of 40
    steps and 4 frames, while the client only reads."""
    vid = s.create(dict(JOB, steps=40), image_bytes).json()["id"]
    events = s.events(vid)
    return [e[3] - e[2]["time"] for e in events if e[1] == "progress"]


def main():
    tmp = temp_dir()
    image_bytes = png(40, 30)
    image = os.path.join(tmp, "in.png")
    with open(image, "wb") as f:
        f.write(image_bytes)
    print(f"machine: {os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}; "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}")
    direct = direct_runs(image, tmp)
    s = Server(os.path.join(tmp, "data"), "--max-size", "64", "--max-steps", "100")
    try:
        server = server_runs(s, image_bytes)
        with open(s.data + ".log") as f:
            log = f.read()
        pipeline = [float(x) for x in re.findall(r"completed in ([\d.]+) s", log)]
        first = [float(x) for x in re.findall(r"first step after ([\d.]+) s", log)]
        print(f"1. same tiny job (32x32, 4 frames, 2 steps), median of {RUNS}:")
        print(f"   gst-launch-1.0 (process start, model load, pipeline): {median_ms(direct)}")
        print(f"   server, client view (POST, events, GET content):    {median_ms(server)}")
        print(f"   server, its pipeline run (job start to file moved): {median_ms(pipeline)}")
        print(f"   server overhead per video (client view - pipeline): "
              f"{median_ms([a - b for a, b in zip(server, pipeline)])}")
        print(f"2. job start to first step: first job {first[0] * 1000:.0f} ms, later jobs "
              f"median {median_ms(first[1:])}")
        print("3. status requests per second:", status_rate(s, s.create(JOB, image_bytes)
                                                             .json()["id"]))
        lat = sse_latency(s, image_bytes)
        print(f"4. SSE latency over {len(lat)} events: median {median_ms(lat, 1)}, "
              f"max {max(lat) * 1000:.1f} ms")
    finally:
        s.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
