#!/usr/bin/env python3
"""`i2vgen serve` end to end on 127.0.0.1 (port 0) with the tiny fixture model: every endpoint,
every refused request with its status, code, field and message, Server-Sent Events in order,
cancellation through DELETE, the queue limit, LoRA allow-list and fetching, SIGKILL restarts
(nothing lost, retries then "interrupted"), the SIGTERM drain, the port-in-use error, and 100
videos from 8 concurrent clients (all complete, every MP4 decodes with its frame count, the
server's memory flat). TAP; Python 3 standard library, gst-launch-1.0, gst-discoverer-1.0,
cwebp."""
import configparser
import http.client
import http.server
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from service_lib import (Response, Server, Tap, convert_image, decoded_frames,  # noqa: E402
                         discover, log, multipart, png, png_size, temp_dir, tiny_lora,
                         tiny_model, wait_until)

TAP = Tap()
check = TAP.check
KEY = "test-key-" + os.urandom(6).hex()
SANITIZED = bool(os.environ.get("I2V_SANITIZED"))  # an ASan/UBSan build: slower, more memory
# a tiny job (a fraction of a second), one that takes a few seconds (fewer, slower steps under
# the sanitizers), and one that is cancelled or killed long before its end
TINY = {"prompt": "a test", "size": "32x32", "num_frames": 4, "fps": 8, "steps": 2}
SLOW = dict(TINY, steps=12 if SANITIZED else 30)
ENDLESS = dict(TINY, steps=400)
IMAGE = png(40, 30)
TMP = temp_dir()


def stopped(server):
    """Stops a server with SIGTERM and checks that it exits 0 (under ASan: without leaks)."""
    code = server.stop()
    check(f"server {os.path.basename(server.data)}: SIGTERM, exit 0", code == 0,
          f"exit {code}: {server.log_text()}")


def expect_error(name, r, status, code, param, words):
    """A refused request: its HTTP status, the OpenAI error shape, the field, the message."""
    e = r.error()
    ok = (r.status == status and e.get("code") == code and e.get("param") == param and
          e.get("type") and all(w in e.get("message", "") for w in words))
    return check(f"{name}: {status} {code} naming {param}", ok,
                 f"got {r!r}; expected {status} {code} param={param} with {words}")


def mp4_ok(server, vid, frames, fps, size=(32, 32)):
    """The content of a completed video: H.264 MP4 of the size, rate and duration (discoverer)
    and exactly `frames` frames when fully decoded."""
    r = server.get(f"/v1/videos/{vid}/content")
    if r.status != 200 or r.headers.get("Content-Type") != "video/mp4":
        return False, f"content: {r!r}"
    path = os.path.join(TMP, vid + ".mp4")
    with open(path, "wb") as f:
        f.write(r.body)
    d = discover(path)
    n = decoded_frames([path])[path]
    good = (d is not None and d[1:] == (*size, fps) and abs(d[0] - frames / fps) < 0.5 / fps and
            n == frames)
    return good, f"discoverer {d}, decoded {n} frames; expected {size} @ {fps} fps, {frames}"


# ---- one server with an API key: endpoints, errors, events, cancellation ----

def test_startup_and_auth(a):
    check("the server prints its URL with the port it got", a.port > 0)
    r = a.get("/healthz", key=False)
    h = r.json() or {}
    check("GET /healthz needs no key: model loaded, queue empty",
          r.status == 200 and h.get("status") == "ok" and h["model"]["loaded"] is True and
          h.get("queue_depth") == 0, repr(r))
    r = a.get("/v1/videos", key=False)
    check("no key: 401 with WWW-Authenticate: Bearer",
          r.status == 401 and r.error().get("code") == "invalid_api_key" and
          r.headers.get("WWW-Authenticate") == "Bearer", repr(r))
    r = a.request("GET", "/v1/videos", key=False, headers={"Authorization": "Bearer wrong"})
    expect_error("wrong key", r, 401, "invalid_api_key", None, ["not this server's"])
    r = a.request("GET", "/v1/videos", key=False, headers={"Authorization": "Bearer " + KEY[:-1]})
    check("a key one character short is refused", r.status == 401, repr(r))
    check("the right key: 200", a.get("/v1/videos").status == 200)


def test_capabilities(a):
    r = a.get("/v1/capabilities")
    doc = r.json() or {}
    prs = configparser.ConfigParser()
    prs.read(os.path.join(os.environ["GST_PRESET_PATH"], "GstI2vgen.prs"))
    want = {s: prs[s] for s in prs.sections() if not s.startswith("_")}
    got = {p["name"]: p for p in doc.get("presets", [])}
    same = set(want) == set(got) and all(
        got[n]["size"] == f'{want[n]["width"]}x{want[n]["height"]}' and
        got[n]["steps"] == int(want[n]["steps"]) and
        got[n]["sampler"] == want[n].get("sampler", "ddim") and
        got[n]["num_frames"] == int(want[n]["num-frames"]) and
        abs(got[n]["guidance_scale"] - float(want[n]["guidance-scale"])) < 1e-9 and
        abs(got[n]["motion_strength"] - float(want[n]["motion-strength"])) < 1e-9 for n in want)
    check("GET /v1/capabilities lists the element's presets with presets/GstI2vgen.prs' values",
          r.status == 200 and same, f"{sorted(got)} vs {sorted(want)}")
    check("capabilities: the samplers a request may name",
          doc.get("samplers") == ["ddim", "dpmpp-2m"], repr(doc.get("samplers")))
    lim = doc.get("limits", {})
    check("capabilities: the server's limits (--max-size 64, --max-steps 400, --max-frames 16)",
          lim.get("size", {}).get("max") == 64 and lim.get("steps", {}).get("max") == 400 and
          lim.get("num_frames", {}).get("max") == 16 and lim.get("size_multiple", 0) >= 1,
          repr(lim))


def test_create_and_content(a):
    """Videos from PNG, JPEG and WebP files and a data: URL, seconds reconciliation and
    interpolation; their content read back."""
    import base64
    jpeg = convert_image(IMAGE, TMP, "jpg")
    webp = convert_image(IMAGE, TMP, "webp")
    r = a.create(TINY, IMAGE)
    v = r.json() or {}
    check("POST /v1/videos (multipart PNG): 200 with the video object",
          r.status == 200 and v.get("object") == "video" and v.get("status") == "queued" and
          re.fullmatch(r"video_[0-9a-f]{32}", v.get("id", "")) is not None and
          v.get("size") == "32x32" and v.get("seconds") == "0.5" and v.get("steps") == 2 and
          v.get("prompt") == "a test" and v.get("model") == "i2vgen-xl" and
          re.fullmatch(r"\d+", v.get("seed", "")) is not None, repr(r))
    ids = {"png": v.get("id")}
    ids["jpeg"] = a.create(TINY, jpeg, "in.jpg", "image/jpeg").json().get("id")
    ids["webp"] = a.create(TINY, webp, "in.webp", "image/webp").json().get("id")
    url = "data:image/png;base64," + base64.b64encode(IMAGE).decode()
    r = a.create_json(dict(TINY, input_reference={"image_url": url}, seed=7))
    ids["data-url"] = (r.json() or {}).get("id")
    check("POST /v1/videos as JSON with a data: URL: 200, seed echoed",
          r.status == 200 and r.json().get("seed") == "7", repr(r))
    r = a.create({k: v for k, v in dict(TINY, seconds=0.75).items() if k != "num_frames"}, IMAGE)
    check("seconds 0.75 at fps 8 gives num_frames 6", r.json().get("num_frames") == 6, repr(r))
    ids["seconds"] = r.json().get("id")
    r = a.create(dict(TINY, num_frames=3, interpolate=2), IMAGE)
    ids["interp"] = r.json().get("id")
    r = a.create(dict(TINY, sampler="dpmpp-2m"), IMAGE)
    check("sampler dpmpp-2m is taken and echoed (ddim by default)",
          r.json().get("sampler") == "dpmpp-2m" and v.get("sampler") == "ddim", repr(r))
    ids["dpmpp"] = r.json().get("id")
    done = {k: a.wait_status(i, ["completed"]) for k, i in ids.items()}
    check("every video completes (PNG, JPEG, WebP, data: URL, seconds, interpolation, dpmpp-2m)",
          all(d and d["status"] == "completed" and d["progress"] == 100 for d in done.values()),
          repr(done))
    for kind in ("png", "jpeg", "webp"):
        good, why = mp4_ok(a, ids[kind], 4, 8)
        check(f"{kind} input: the MP4 decodes: 32x32, 8 fps, 4 frames", good, why)
    good, why = mp4_ok(a, ids["seconds"], 6, 8)
    check("seconds input: 6 frames", good, why)
    good, why = mp4_ok(a, ids["interp"], 6, 16)
    check("interpolate 2: 3 frames at 8 fps become 6 at 16 fps, same duration", good, why)
    vid = ids["png"]
    full = a.get(f"/v1/videos/{vid}/content").body
    r = a.get(f"/v1/videos/{vid}/content", headers={"Range": "bytes=10-99"})
    check("Range request: 206, Content-Range, the bytes asked for",
          r.status == 206 and r.headers.get("Content-Range") == f"bytes 10-99/{len(full)}" and
          r.body == full[10:100], repr(r))
    r = a.get(f"/v1/videos/{vid}/content?variant=thumbnail")
    check("?variant=thumbnail: a 32x32 PNG of the first frame",
          r.status == 200 and r.headers.get("Content-Type") == "image/png" and
          png_size(r.body) == (32, 32), repr(r))
    return ids


def test_list(a, count):
    r = a.get("/v1/videos?limit=100")
    doc = r.json() or {}
    data = doc.get("data", [])
    check("GET /v1/videos: a list, newest first",
          r.status == 200 and doc.get("object") == "list" and len(data) == count and
          [d["created_at"] for d in data] == sorted([d["created_at"] for d in data],
                                                    reverse=True), repr(r)[:300])
    order = [d["id"] for d in data]
    pages, after = [], None
    while True:
        q = "/v1/videos?limit=2" + (f"&after={after}" if after else "")
        p = a.get(q).json()
        pages += [d["id"] for d in p["data"]]
        if not p["has_more"]:
            break
        after = p["last_id"]
    check("cursor pagination (limit=2, after=last_id) walks every video once, in order",
          pages == order, f"{pages} vs {order}")
    asc = [d["id"] for d in a.get("/v1/videos?limit=100&order=asc").json()["data"]]
    check("order=asc reverses the list", asc == order[::-1])


def test_events(a):
    """A queued video's events: the state first, steps and frames in order, then completed."""
    blocker = a.create(SLOW, IMAGE).json()["id"]
    vid = a.create(dict(TINY, steps=5), IMAGE).json()["id"]
    events = a.events(vid)
    types = [e[1] for e in events]
    progress = [e[2] for e in events if e[1] == "progress"]
    ids = [int(e[0]) for e in events if e[0] is not None]
    check("SSE: first the current state (video, queued)",
          events and events[0][1] == "video" and events[0][2]["status"] == "queued", types)
    check("SSE: a progress event per step (5) and per frame (4)",
          [p["step"] for p in progress if p["frame"] == 0] == [1, 2, 3, 4, 5] and
          [p["frame"] for p in progress if p["frame"] > 0] == [1, 2, 3, 4], repr(progress))
    check("SSE: events in order (ids and progress increase)",
          ids == sorted(ids) and len(set(ids)) == len(ids) and
          [p["progress"] for p in progress] == sorted(p["progress"] for p in progress), ids)
    check("SSE: the stream ends with the terminal event (completed)",
          types[-1] == "completed" and events[-1][2]["status"] == "completed", types)
    again = a.events(vid)
    check("SSE on a finished video: just the terminal event",
          [e[1] for e in again] == ["completed"], [e[1] for e in again])
    # a client connecting mid-run gets the running state, then the last progress event
    vid = a.create(dict(TINY, steps=20 if SANITIZED else 40), IMAGE).json()["id"]
    a.wait_status(vid, ["in_progress"], progress_above=10)
    events = a.events(vid)
    check("SSE mid-run: state in_progress first, then the last progress, then the rest",
          events[0][1] == "video" and events[0][2]["status"] == "in_progress" and
          events[1][1] == "progress" and events[1][2]["step"] > 1 and
          events[-1][1] == "completed", [(e[1], e[2].get("step")) for e in events[:3]])
    a.wait_status(blocker, ["completed"])


def test_delete(a):
    vid = a.create(ENDLESS, IMAGE).json()["id"]
    queued = a.create(TINY, IMAGE).json()["id"]
    v = a.wait_status(vid, ["in_progress"], progress_above=0)
    t0 = time.time()
    r = a.request("DELETE", f"/v1/videos/{vid}")
    check("DELETE a running video: 200 video.deleted",
          r.status == 200 and r.json() == {"id": vid, "object": "video.deleted", "deleted": True},
          repr(r))
    # the queued video runs as soon as the worker is free: the cancelled one stopped
    q = a.wait_status(queued, ["in_progress", "completed"], timeout=30)
    elapsed = time.time() - t0
    check("the running video stops within a step: the next one starts",
          q["status"] in ("in_progress", "completed") and v["status"] == "in_progress",
          f"{q}, {elapsed:.2f} s")
    log(f"DELETE to the next video's start: {elapsed:.2f} s")
    check("a deleted video is gone: GET 404", a.get(f"/v1/videos/{vid}").status == 404)
    leftovers = [f for d in ("uploads", "videos", "tmp") for f in os.listdir(os.path.join(a.data, d))
                 if vid in f]
    check("a deleted video leaves no files", leftovers == [], leftovers)
    last = a.create(TINY, IMAGE).json()["id"]
    waiting = a.create(TINY, IMAGE).json()["id"]
    r = a.request("DELETE", f"/v1/videos/{waiting}")
    check("DELETE a queued video: 200, it never runs",
          r.status == 200 and a.wait_status(last, ["completed"])["status"] == "completed" and
          a.get(f"/v1/videos/{waiting}").status == 404)


def test_bad_requests(a):
    c = a.create
    expect_error("no prompt", c({"size": "32x32"}, IMAGE), 400, "missing_field", "prompt",
                 ["prompt is required"])
    expect_error("no image", c(TINY), 400, "missing_field", "input_reference",
                 ["input_reference is required"])
    # the element's own ranges, as the server publishes them
    lim = a.get("/v1/capabilities").json()["limits"]
    fps, size = lim["fps"], lim["size"]
    for field, value, words in [
        ("steps", 0, ["from 1 to 400"]), ("steps", 401, ["from 1 to 400"]),
        ("steps", "two", ["integer"]), ("num_frames", 17, ["from 1 to 16"]),
        ("fps", 0, [f"from {fps['min']} to {fps['max']}"]), ("guidance_scale", -1, ["from 0 to 100"]),
        ("motion_strength", 2, ["from 0.01 to 1"]), ("interpolate", 99, ["from 1 to 16"]),
        ("size", "100x100", [f"from {size['min']} to 64"]), ("size", "32", ["WIDTHxHEIGHT"]),
        # what the H.264/MP4 encoding cannot take is refused up front, not after the run
        ("size", "8x8", ["from 16 to 64"]), ("size", "33x32", ["multiple of 2"]),
        ("seed", "-1", ["0 to 18446744073709551615"]), ("preset", "nope", ["fast", "standard"]),
        ("model", "sora-2", ["i2vgen-xl"]), ("lora", "../../etc/passwd", ["LoRA folder"]),
        ("sampler", "euler", ["'euler'", "one of ddim, dpmpp-2m"]),
    ]:
        expect_error(f"{field}={value}", c(dict(TINY, **{field: value}), IMAGE), 400,
                     "invalid_value", field, [f"{field}", *words])
    expect_error("a preset above the limits", c({"prompt": "x", "preset": "fast"}, IMAGE), 400,
                 "invalid_value", "size", ["512x512 (from preset fast)"])
    expect_error("seconds disagreeing with num_frames", c(dict(TINY, seconds=3), IMAGE), 400,
                 "invalid_value", "seconds", ["disagrees with num_frames 4"])
    expect_error("seconds too long", c({k: v for k, v in dict(TINY, seconds=9).items()
                                        if k != "num_frames"}, IMAGE), 400, "invalid_value",
                 "seconds", ["at fps 8"])
    expect_error("an unknown field", c(dict(TINY, colour="red"), IMAGE), 400, "unknown_field",
                 "colour", ["unknown field 'colour'"])
    body = (b'--b\r\nContent-Disposition: form-data; name="prompt"\r\n\r\nx\r\n'
            b'--b\r\nContent-Disposition: form-data; name="prompt"\r\n\r\ny\r\n--b--\r\n')
    r = a.request("POST", "/v1/videos", body, {"Content-Type": "multipart/form-data; boundary=b"})
    expect_error("a field given twice", r, 400, "invalid_value", "prompt", ["more than once"])
    expect_error("a remote URL without --allow-fetch",
                 a.create_json(dict(TINY, input_reference={"image_url": "http://127.0.0.1/x.png"})),
                 400, "invalid_value", "input_reference", ["--allow-fetch"])
    expect_error("a malformed data: URL",
                 a.create_json(dict(TINY, input_reference={"image_url": "data:image/png,abc"})),
                 400, "invalid_value", "input_reference", ["base64 data URL"])
    expect_error("not an image", c(TINY, b"hello, world" * 10, "x.png"), 415,
                 "unsupported_image", "input_reference", ["not a PNG, JPEG or WebP"])
    expect_error("a truncated PNG", c(TINY, IMAGE[:60]), 415, "unsupported_image",
                 "input_reference", ["PNG file", "truncated"])
    jpeg = convert_image(IMAGE, TMP, "jpg")
    expect_error("a truncated JPEG", c(TINY, jpeg[:len(jpeg) * 2 // 3], "x.jpg"), 415,
                 "unsupported_image", "input_reference", ["JPEG file", "truncated"])
    broken = bytearray(IMAGE)
    broken[41:60] = bytes(19)  # the compressed pixels zeroed: the decoder must fail
    expect_error("a PNG whose pixels cannot be decoded", c(TINY, bytes(broken)), 415,
                 "unsupported_image", "input_reference", ["cannot decode the image/png"])
    bomb = IMAGE[:16] + (100000).to_bytes(4, "big") * 2 + IMAGE[24:]
    t0 = time.time()
    r = c(TINY, bomb)
    expect_error("a decompression bomb (PNG header 100000x100000)", r, 413, "image_too_large",
                 "input_reference", ["100000x100000", "at most 16777216 pixels"])
    log(f"bomb refused in {time.time() - t0:.3f} s")
    r = a.request("POST", "/v1/videos", b"[1, 2]", {"Content-Type": "application/json"})
    expect_error("a JSON body that is not an object", r, 400, "invalid_body", None, ["object"])
    # json-glib recurses once per level: 200000 '[' used to overflow the server's stack
    deep = b'{"prompt": ' + b"[" * 200000 + b"]" * 200000 + b"}"
    r = a.request("POST", "/v1/videos", deep, {"Content-Type": "application/json"})
    expect_error("a JSON body nested 200000 deep", r, 400, "invalid_body", None,
                 ["nested deeper"])
    r = a.request("POST", "/v1/videos", b'{"prompt": "a", "prompt": "b"}',
                  {"Content-Type": "application/json"})
    expect_error("a JSON body with a key twice", r, 400, "invalid_body", None, ["twice"])
    r = a.request("POST", "/v1/videos", b"prompt=x", {"Content-Type": "text/plain"})
    expect_error("another content type", r, 415, "unsupported_content_type", None,
                 ["multipart/form-data"])
    running = a.create(ENDLESS, IMAGE).json()["id"]  # cannot be done by the time it is asked
    expect_error("content of a video not completed yet", a.get(f"/v1/videos/{running}/content"),
                 409, "video_not_ready", "id", ["its content exists once it is completed"])
    a.request("DELETE", f"/v1/videos/{running}")
    vid = a.create(TINY, IMAGE).json()["id"]
    a.wait_status(vid, ["completed"])
    expect_error("an unknown content variant", a.get(f"/v1/videos/{vid}/content?variant=gif"),
                 400, "invalid_value", "variant", ["'thumbnail'"])
    expect_error("a malformed id", a.get("/v1/videos/video_12"), 404, "not_found", "id",
                 ["32 hexadecimal digits"])
    r = a.get("/v1/videos/video_%2e%2e%2f%2e%2e%2fi2vgen.db")
    check("a path-traversal id is refused before any file access (400 or 404)",
          r.status in (400, 404) and b"SQLite" not in r.body, repr(r))
    expect_error("an unknown id", a.get("/v1/videos/video_" + "0" * 32), 404, "not_found", "id",
                 ["no video with id"])
    expect_error("DELETE an unknown id", a.request("DELETE", "/v1/videos/video_" + "1" * 32), 404,
                 "not_found", "id", ["no video"])
    expect_error("list limit=0", a.get("/v1/videos?limit=0"), 400, "invalid_value", "limit",
                 ["from 1 to 100"])
    expect_error("list order=up", a.get("/v1/videos?order=up"), 400, "invalid_value", "order",
                 ["'asc' or 'desc'"])
    expect_error("list after an unknown id", a.get("/v1/videos?after=video_" + "2" * 32), 400,
                 "not_found", "after", ["no video"])
    expect_error("an unknown endpoint", a.get("/v2/things"), 404, "not_found", None,
                 ["no endpoint /v2/things"])
    r = a.request("PUT", "/v1/videos", b"")
    expect_error("PUT /v1/videos", r, 405, "method_not_allowed", None, ["GET, POST"])
    check("405 carries Allow", r.headers.get("Allow") == "GET, POST", repr(r.headers))


def test_metrics(a):
    r = a.get("/metrics")
    text = r.body.decode()
    done = len([v for v in a.get("/v1/videos?limit=100").json()["data"]
                if v["status"] == "completed"])

    def value(pattern):
        m = re.search(pattern + r" ([0-9.e+]+)\n", text)
        return float(m.group(1)) if m else None

    check("GET /metrics: Prometheus text with the jobs by status",
          r.status == 200 and r.headers.get("Content-Type", "").startswith("text/plain") and
          value(r'i2vgen_videos\{status="completed"\}') == done, text[:400])
    check("metrics: seconds per step at 32x32, 4 frames",
          (value(r'i2vgen_step_seconds_count\{size="32x32",frames="4"\}') or 0) > 0 and
          (value(r'i2vgen_step_seconds_sum\{size="32x32",frames="4"\}') or 0) > 0)
    check("metrics: the generation-time histogram counts the completed videos",
          value(r'i2vgen_generation_seconds_bucket\{le="\+Inf"\}') ==
          value("i2vgen_generation_seconds_count") and
          (value("i2vgen_generation_seconds_count") or 0) >= done)
    check("metrics: the model's memory and the process's",
          (value(r'i2vgen_model_memory_bytes\{kind="persistent"\}') or 0) > 0 and
          (value("process_resident_memory_bytes") or 0) > 0 and
          value("i2vgen_queue_depth") is not None)


def test_examples(a):
    """examples/serve-client.sh (curl) and examples/serve_client.py against the server."""
    examples = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "examples")
    env = dict(os.environ, I2VGEN_URL=a.url, I2VGEN_API_KEY=KEY)
    image = os.path.join(TMP, "example.png")
    with open(image, "wb") as f:
        f.write(IMAGE)
    extra = [f"{k}={v}" for k, v in TINY.items() if k != "prompt"]
    runs = {"serve-client.sh": [os.path.join(examples, "serve-client.sh"), image, "", "a test",
                                *extra],
            "serve_client.py": [sys.executable, os.path.join(examples, "serve_client.py"), image,
                                "", "a test", *[a for e in extra for a in ("--set", e)]]}
    for name, cmd in runs.items():
        out = os.path.join(TMP, name + ".mp4")
        cmd[cmd.index("")] = out
        # a video ahead keeps the example's queued until its event stream is open, so that every
        # progress event reaches it
        a.create(SLOW, IMAGE)
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env)
        d = discover(out) if os.path.exists(out) else None
        check(f"examples/{name}: progress printed, the MP4 written (32x32, 8 fps, 0.5 s)",
              r.returncode == 0 and "step 2/2" in r.stdout and d is not None and
              d[1:] == (32, 32, 8), f"exit {r.returncode}: {r.stdout[-300:]} {r.stderr[-300:]}")
    r = subprocess.run(runs["serve_client.py"] + ["--set", "steps=0"], capture_output=True,
                       text=True, timeout=60, env=env)
    check("examples/serve_client.py shows the server's error and exits non-zero",
          r.returncode == 1 and "HTTP 400: steps '0'" in r.stderr, r.stderr)


def test_port_in_use(a):
    r = subprocess.run([os.environ.get("I2VGEN_TOOL", "build/tools/i2vgen"), "serve", "--model",
                        tiny_model(), "--data", os.path.join(TMP, "other"), "--listen",
                        f"127.0.0.1:{a.port}"], capture_output=True, text=True, timeout=60)
    lines = r.stderr.strip().splitlines()
    check("a port in use: non-zero exit, one line naming the address and port 0",
          r.returncode != 0 and len(lines) == 1 and f"127.0.0.1:{a.port} is already in use" in
          lines[0] and "port 0" in lines[0], f"exit {r.returncode}: {r.stderr}")
    empty = os.path.join(TMP, "empty-model")
    os.makedirs(empty)
    r = subprocess.run([os.environ.get("I2VGEN_TOOL", "build/tools/i2vgen"), "serve", "--model",
                        empty, "--data", os.path.join(TMP, "other"), "--listen", "127.0.0.1:0"],
                       capture_output=True, text=True, timeout=60)
    check("a model that does not load: exit 1, the error names the folder",
          r.returncode == 1 and "cannot load the model" in r.stderr and empty in r.stderr,
          f"exit {r.returncode}: {r.stderr}")
    r = subprocess.run([os.environ.get("I2VGEN_TOOL", "build/tools/i2vgen"), "serve", "--listen",
                        "localhost:80"], capture_output=True, text=True, timeout=60,
                       env={k: v for k, v in os.environ.items() if k != "I2VGEN_MODEL"})
    check("no --model: exit 2 saying what is needed",
          r.returncode == 2 and "--model DIR" in r.stderr, f"exit {r.returncode}: {r.stderr}")


def test_load(a, total, clients=8):
    """total videos from `clients` threads: each submits its share and waits for it."""
    ids, lock, errors = [], threading.Lock(), []
    rss = {}

    def client(k):
        mine = []
        for i in range(k, total, clients):
            r = a.create(dict(TINY, size="16x16", num_frames=2 + i % 3, steps=1, seed=i), IMAGE)
            if r.status != 200:
                errors.append(repr(r))
                continue
            mine.append((r.json()["id"], 2 + i % 3))
        for vid, frames in mine:
            v = a.wait_status(vid, ["completed"], timeout=300)
            if v["status"] != "completed":
                errors.append(repr(v))
            with lock:
                ids.append((vid, frames))
                if len(ids) == 20:
                    rss["after 20"] = a.rss_kib()

    t0 = time.time()
    threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.time() - t0
    rss["after all"] = a.rss_kib()
    log(f"{total} videos from {clients} clients in {elapsed:.1f} s; RSS {rss} KiB")
    check(f"{total} videos from {clients} concurrent clients all complete",
          not errors and len(ids) == total, errors[:3])
    paths = {}
    for vid, frames in ids:
        path = os.path.join(a.data, "videos", vid + ".mp4")
        paths[path] = frames
    counts = decoded_frames(sorted(paths))
    wrong = [(p, counts.get(p), f) for p, f in paths.items() if counts.get(p) != f]
    check(f"each of the {total} MP4 files decodes with its frame count (2 to 4)", not wrong,
          wrong[:5])
    grown = rss["after all"] - rss["after 20"]
    if SANITIZED:
        TAP.skip("server memory flat", "the sanitizers keep freed memory in quarantine")
    else:
        check(f"server memory flat: RSS grows less than 8 MiB from video 20 to video {total}",
              grown < 8 * 1024, f"{rss}")


def test_connections_freed(a, count=300):
    """Clients that keep a connection alive and then close it leave no descriptor behind."""
    def descriptors():
        return len(os.listdir(f"/proc/{a.proc.pid}/fd"))

    before = descriptors()
    for _ in range(count):
        c = http.client.HTTPConnection("127.0.0.1", a.port, timeout=30)
        c.request("GET", "/healthz")
        c.getresponse().read()
        c.close()
    time.sleep(0.5)
    after = descriptors()
    check(f"{count} keep-alive connections closed by the client: open descriptors "
          f"{before} -> {after} (fewer than 20 more)", after - before < 20)


# ---- a server with a small queue, an upload limit, LoRA and fetching ----

class ImageHandler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.send_header("Content-Length", str(len(IMAGE)))
        self.end_headers()
        self.wfile.write(IMAGE)

    def log_message(self, *args):
        pass


def test_limits_lora_fetch():
    loras = os.path.join(TMP, "loras")
    os.makedirs(loras)
    tiny_lora(tiny_model(), os.path.join(loras, "style.safetensors"))
    with open(os.path.join(loras, "broken.safetensors"), "wb") as f:
        f.write(b"not a safetensors file")
    b = Server(os.path.join(TMP, "b"), "--max-queued", "1", "--max-upload-mb", "1",
               "--max-size", "64", "--max-steps", "400", "--lora-dir", loras, "--allow-fetch")
    try:
        check("capabilities list the LoRA allow-list",
              b.get("/v1/capabilities").json().get("loras") == ["broken", "style"])
        vid = b.create(dict(TINY, lora="style:0.5"), IMAGE).json().get("id")
        v = b.wait_status(vid, ["completed"])
        check("a video with lora=style:0.5 completes", v["status"] == "completed" and
              v["lora"] == "style" and v["lora_scale"] == 0.5, repr(v))
        expect_error("an unknown LoRA", b.create(dict(TINY, lora="other"), IMAGE), 400,
                     "invalid_value", "lora", ["(broken, style)"])
        vid = b.create(dict(TINY, lora="broken"), IMAGE).json().get("id")
        events = b.events(vid)
        v = b.video(vid)
        check("a job the element refuses (a LoRA file that is not one) fails with its message",
              v["status"] == "failed" and v["error"]["code"] == "generation_failed" and
              "broken.safetensors" in v["error"]["message"], repr(v))
        check("... and its event stream ends with the failed event",
              events[-1][1] == "failed" and events[-1][2]["error"]["code"] == "generation_failed",
              [e[1] for e in events])
        httpd = http.server.HTTPServer(("127.0.0.1", 0), ImageHandler)
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        url = f"http://127.0.0.1:{httpd.server_address[1]}/in.png"
        r = b.create_json(dict(TINY, input_reference={"image_url": url}))
        v = b.wait_status((r.json() or {}).get("id", "-"), ["completed"])
        check("--allow-fetch: an http:// image_url is fetched and the video completes",
              r.status == 200 and v and v["status"] == "completed", repr(r))
        httpd.shutdown()
        big = os.urandom(1024 * 1024 + 1)
        expect_error("a body above --max-upload-mb (Content-Length)", b.create(TINY, big), 413,
                     "request_too_large", None, ["at most 1048576 bytes"])
        body, ctype = multipart(TINY, {"input_reference": ("x.png", big, "image/png")})
        c = http.client.HTTPConnection("127.0.0.1", b.port, timeout=60)
        c.putrequest("POST", "/v1/videos")
        c.putheader("Content-Type", ctype)
        c.putheader("Transfer-Encoding", "chunked")
        c.endheaders()
        for i in range(0, len(body), 65536):
            part = body[i:i + 65536]
            c.send(f"{len(part):x}\r\n".encode() + part + b"\r\n")
        c.send(b"0\r\n\r\n")
        resp = c.getresponse()
        r = Response(resp.status, resp.headers, resp.read())
        c.close()
        expect_error("a chunked body above the limit, counted while reading", r, 413,
                     "request_too_large", None, ["above this server's limit"])
        check("the refused body is not kept on disk",
              os.listdir(os.path.join(b.data, "tmp")) == [], os.listdir(os.path.join(b.data, "tmp")))
        running = b.create(ENDLESS, IMAGE).json()["id"]
        b.wait_status(running, ["in_progress"])
        waiting = b.create(TINY, IMAGE).json()["id"]
        r = b.create(TINY, IMAGE)
        expect_error("a full queue (--max-queued 1)", r, 429, "queue_full", None,
                     ["--max-queued 1"])
        check("429 carries Retry-After", (r.headers.get("Retry-After") or "").isdigit(),
              repr(r.headers))
        for vid in (waiting, running):
            b.request("DELETE", f"/v1/videos/{vid}")
    finally:
        stopped(b)


# ---- durability: SIGKILL, retries, SIGTERM ----

def db_rows(data):
    """{id: (status, attempts, error_code)} read straight from the job database."""
    con = sqlite3.connect(os.path.join(data, "i2vgen.db"))
    rows = con.execute("SELECT id, status, attempts, error_code FROM videos").fetchall()
    con.close()
    return {r[0]: r[1:] for r in rows}


def test_sigkill():
    data = os.path.join(TMP, "kill")
    s = Server(data, "--max-size", "64", "--retries", "1")
    slow = s.create(SLOW, IMAGE).json()["id"]
    rest = [s.create(TINY, IMAGE).json()["id"] for _ in range(3)]
    s.wait_status(slow, ["in_progress"], progress_above=0)
    s.signal(signal.SIGKILL)
    s.wait_exit()
    s.stop()
    orphan = os.path.join(data, "uploads", "video_" + "3" * 32)
    with open(orphan, "wb") as f:  # as a crash between storing an image and queueing it leaves
        f.write(IMAGE)
    rows = db_rows(data)
    check("after SIGKILL every accepted video is in the database",
          rows.get(slow, ("",))[0] == "in_progress" and
          all(rows.get(v, ("",))[0] == "queued" for v in rest), repr(rows))
    s = Server(data, "--max-size", "64", "--retries", "1")
    done = [s.wait_status(v, ["completed"]) for v in [slow] + rest]
    check("restarted: the interrupted video ran again (attempt 2) and all 4 completed",
          all(d["status"] == "completed" for d in done) and done[0]["attempts"] == 2,
          repr([(d["status"], d["attempts"]) for d in done]))
    files = [os.path.join(data, "videos", v + ".mp4") for v in [slow] + rest]
    found = [discover(f) for f in files]
    check("each output is complete: gst-discoverer reads 32x32 at 8 fps, 0.5 s",
          all(f and f[1:] == (32, 32, 8) and abs(f[0] - 0.5) < 0.07 for f in found), repr(found))
    check("no half-written file is left, and the orphan upload is removed at start",
          os.listdir(os.path.join(data, "tmp")) == [] and
          sorted(os.listdir(os.path.join(data, "uploads"))) == [])
    # out of retries: interrupted once with --retries 0, the video fails with the reason
    vid = s.create(SLOW, IMAGE).json()["id"]
    s.wait_status(vid, ["in_progress"], progress_above=0)
    s.signal(signal.SIGKILL)
    s.wait_exit()
    s.stop()
    s = Server(data, "--max-size", "64", "--retries", "0")
    v = s.video(vid)
    check("--retries 0: a video interrupted once fails as 'interrupted', saying why",
          v["status"] == "failed" and v["error"]["code"] == "interrupted" and
          "each of the 1 attempts" in v["error"]["message"], repr(v))
    stopped(s)


def test_sigterm():
    data = os.path.join(TMP, "term")
    s = Server(data, "--max-size", "64", "--max-steps", "400")
    # long enough to still run while the requests below are answered (the server exits after it)
    vid = s.create(dict(TINY, steps=40 if SANITIZED else 120), IMAGE).json()["id"]
    queued = s.create(TINY, IMAGE).json()["id"]
    s.wait_status(vid, ["in_progress"], progress_above=0)
    s.signal(signal.SIGTERM)
    # the signal reaches the main loop through GLib's signal thread
    wait_until(lambda: s.get("/healthz").status == 503, 10, interval=0.02)
    r = s.create(TINY, IMAGE)
    expect_error("while draining, a new video", r, 503, "server_draining", None,
                 ["shutting down"])
    check("503 carries Retry-After", (r.headers.get("Retry-After") or "").isdigit())
    h = s.get("/healthz")
    check("while draining, /healthz answers 503 draining",
          h.status == 503 and h.json()["status"] == "draining", repr(h))
    check("while draining, reads still work", s.get(f"/v1/videos/{vid}").status == 200)
    code = s.wait_exit(60)
    s.stop()
    rows = db_rows(data)
    check("SIGTERM: the running video finished, the queued one stays queued, exit 0",
          code == 0 and rows[vid][0] == "completed" and rows[queued] == ("queued", 0, None),
          f"exit {code}, {rows}\n{s.log_text()}")
    # --drain-timeout 0: the running video is given back at once, its attempt not counted
    s = Server(data, "--max-size", "64", "--max-steps", "400", "--drain-timeout", "0")
    s.wait_status(queued, ["completed"])
    vid = s.create(ENDLESS, IMAGE).json()["id"]
    s.wait_status(vid, ["in_progress"], progress_above=0)
    t0 = time.time()
    s.signal(signal.SIGTERM)
    code = s.wait_exit(60)
    s.stop()
    rows = db_rows(data)
    check("--drain-timeout 0: the running video is queued again (attempts 0), exit 0",
          code == 0 and rows[vid] == ("queued", 0, None),
          f"exit {code}, {rows[vid]}\n{s.log_text()}")
    log(f"SIGTERM with --drain-timeout 0 to exit: {time.time() - t0:.2f} s")


def main():
    t0 = time.time()
    a = Server(os.path.join(TMP, "a"), "--max-size", "64", "--max-steps", "400",
               "--max-frames", "16", key=KEY)
    try:
        test_startup_and_auth(a)
        test_capabilities(a)
        ids = test_create_and_content(a)
        test_events(a)
        test_delete(a)
        test_bad_requests(a)
        test_list(a, len(a.get("/v1/videos?limit=100").json()["data"]))
        test_metrics(a)
        test_port_in_use(a)
        test_examples(a)
        log(f"endpoints done after {time.time() - t0:.1f} s ({len(ids)} videos checked)")
        test_load(a, 24 if SANITIZED else 100)
        log(f"load done after {time.time() - t0:.1f} s")
        test_connections_freed(a)
    finally:
        stopped(a)
    test_limits_lora_fetch()
    test_sigkill()
    test_sigterm()
    log(f"total {time.time() - t0:.1f} s")
    shutil.rmtree(TMP, ignore_errors=True)
    return TAP.done()


if __name__ == "__main__":
    sys.exit(main())
