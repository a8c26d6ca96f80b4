"""Helpers for the tests of `i2vgen serve` (tests/test_service.py) and its benchmark
(tools/serve/bench.py): TAP output, starting a server on 127.0.0.1 with port 0, HTTP requests
with the standard library, multipart bodies, Server-Sent Events, test images, and reading MP4
files back with gst-discoverer-1.0 and a full decode. Python 3 standard library only."""
import http.client
import json
import os
import re
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
import zlib

TOOL = os.environ.get("I2VGEN_TOOL", "build/tools/i2vgen")


def tools_env():
    """The environment for gst-launch-1.0 and gst-discoverer-1.0: system plugins only and a
    registry of their own (in a sanitizer build they cannot load the project's plugin, and must
    not mark it unloadable in the server's registry)."""
    env = {k: v for k, v in os.environ.items() if k != "GST_PLUGIN_PATH"}
    if "GST_REGISTRY" in env:
        env["GST_REGISTRY"] += ".tools"
    return env


class Tap:
    """TAP output: ok/not ok lines with the reason of a failure as comments."""

    def __init__(self):
        self.n = 0
        self.failed = 0
        self.lock = threading.Lock()

    def check(self, name, condition, why=""):
        with self.lock:
            self.n += 1
            if condition:
                print(f"ok {self.n} - {name}", flush=True)
            else:
                self.failed += 1
                print(f"not ok {self.n} - {name}", flush=True)
                for line in str(why).splitlines() or [""]:
                    print(f"# {line}", flush=True)
        return condition

    def skip(self, name, reason):
        with self.lock:
            self.n += 1
            print(f"ok {self.n} - {name} # SKIP {reason}", flush=True)

    def done(self):
        print(f"1..{self.n}", flush=True)
        return 1 if self.failed else 0


def tiny_model():
    """The model folder of the first tiny fixture set (one whose golden/ has tokenizer.json)."""
    root = os.environ.get("I2V_FIXTURES") or os.environ.get("I2V_DEFAULT_FIXTURES")
    for name in sorted(os.listdir(root)):
        s = os.path.join(root, name)
        if os.path.isfile(os.path.join(s, "golden", "tokenizer.json")) and os.path.isdir(
                os.path.join(s, "model")):
            return os.path.join(s, "model")
    raise SystemExit(f"Bail out! no tiny fixture set under {root}")


# ---- images ----

def png(width, height, seed=0):
    """An RGB PNG of width x height with a gradient (zlib, no other library)."""
    rows = b"".join(
        b"\0" + bytes(((x * 7 + y * 3 + seed) % 256 if c == 0 else (x + y * 5 + c * seed) % 256)
                      for x in range(width) for c in range(3))
        for y in range(height))

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(
            ">I", zlib.crc32(kind + data) & 0xffffffff)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(rows)) +
            chunk(b"IEND", b""))


def png_size(data):
    """(width, height) from a PNG's IHDR, or None."""
    if data[:8] != b"\x89PNG\r\n\x1a\n" or data[12:16] != b"IHDR":
        return None
    return struct.unpack(">II", data[16:24])


def convert_image(png_bytes, tmp, kind):
    """The PNG as JPEG (gst-launch jpegenc) or WebP (cwebp)."""
    src = os.path.join(tmp, "convert.png")
    out = os.path.join(tmp, "convert." + kind)
    with open(src, "wb") as f:
        f.write(png_bytes)
    if kind == "jpg":
        cmd = ["gst-launch-1.0", "-q", "filesrc", f"location={src}", "!", "pngdec", "!",
               "videoconvert", "!", "jpegenc", "!", "filesink", f"location={out}"]
    else:
        cmd = ["cwebp", "-quiet", src, "-o", out]
    subprocess.run(cmd, check=True, timeout=60, env=tools_env())
    with open(out, "rb") as f:
        return f.read()


# ---- HTTP ----

def multipart(fields, files):
    """A multipart/form-data body: fields {name: text}, files {name: (filename, bytes, type)}."""
    boundary = "i2vgen-test-" + os.urandom(8).hex()
    parts = []
    for name, value in fields.items():
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'
                     .encode() + str(value).encode() + b"\r\n")
    for name, (filename, data, ctype) in files.items():
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; '
                     f'filename="{filename}"\r\nContent-Type: {ctype}\r\n\r\n'.encode() + data +
                     b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body

    def json(self):
        try:
            return json.loads(self.body)
        except ValueError:
            return None

    def error(self):
        """The OpenAI error object of an error response, or {}."""
        doc = self.json()
        return doc.get("error", {}) if isinstance(doc, dict) else {}

    def __repr__(self):
        return f"HTTP {self.status}: {self.body[:400]!r}"


class Server:
    """An `i2vgen serve` process on 127.0.0.1, port 0, with the tiny model."""

    def __init__(self, data, *options, key=None, env=None):
        self.data = data
        self.key = key
        e = dict(os.environ, **(env or {}))
        if key is not None:
            e["I2VGEN_API_KEY"] = key
        cmd = [TOOL, "serve", "--model", tiny_model(), "--data", data, "--listen", "127.0.0.1:0",
               *options]
        self.log = open(os.path.join(data + ".log"), "ab")
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=self.log, env=e)
        line = self._read_line(60)
        m = re.search(r"listening on http://127\.0\.0\.1:(\d+)/", line)
        if not m:
            self.proc.kill()
            raise RuntimeError(f"no URL from the server: {line!r}; log: {self.log_text()}")
        self.port = int(m.group(1))
        self.url = f"http://127.0.0.1:{self.port}/"
        self.wait_healthy()

    def _read_line(self, timeout):
        result = []
        t = threading.Thread(target=lambda: result.append(self.proc.stdout.readline()))
        t.daemon = True
        t.start()
        t.join(timeout)
        return result[0].decode(errors="replace") if result else ""

    def log_text(self):
        with open(self.data + ".log", "rb") as f:
            return f.read().decode(errors="replace")[-6000:]

    def wait_healthy(self, timeout=60):
        end = time.time() + timeout
        while time.time() < end:
            try:
                if self.request("GET", "/healthz").status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"server not healthy; log: {self.log_text()}")

    def request(self, method, path, body=None, headers=None, key=True, timeout=60):
        h = dict(headers or {})
        if key and self.key is not None:
            h["Authorization"] = f"Bearer {self.key}"
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            c.request(method, path, body=body, headers=h)
            r = c.getresponse()
            return Response(r.status, r.headers, r.read())
        finally:
            c.close()

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def create(self, fields, image=None, filename="in.png", ctype="image/png", **kw):
        files = {"input_reference": (filename, image, ctype)} if image is not None else {}
        body, content_type = multipart(fields, files)
        return self.request("POST", "/v1/videos", body, {"Content-Type": content_type}, **kw)

    def create_json(self, doc, **kw):
        return self.request("POST", "/v1/videos", json.dumps(doc).encode(),
                            {"Content-Type": "application/json"}, **kw)

    def video(self, vid):
        return self.get(f"/v1/videos/{vid}").json()

    def wait_status(self, vid, statuses, timeout=120, progress_above=-1, interval=0.05):
        """Polls until the video has one of statuses (and progress above the given value), or
        has ended otherwise; returns the last video object."""
        end = time.time() + timeout
        v = None
        while time.time() < end:
            v = self.video(vid)
            if v and v.get("status") in statuses and v.get("progress", 0) > progress_above:
                return v
            if v and v.get("status") in ("completed", "failed") and v["status"] not in statuses:
                return v
            time.sleep(interval)
        return v

    def events(self, vid, timeout=120):
        """The Server-Sent Events of a video until the stream ends: [(id, type, data)]."""
        h = {"Authorization": f"Bearer {self.key}"} if self.key else {}
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        c.request("GET", f"/v1/videos/{vid}/events", headers=h)
        r = c.getresponse()
        out, fields = [], {}
        for raw in r:
            line = raw.decode().rstrip("\n")
            if line == "":
                if "event" in fields:
                    out.append((fields.get("id"), fields["event"], json.loads(fields["data"]),
                                time.time()))
                fields = {}
            elif not line.startswith(":"):
                k, _, v = line.partition(": ")
                fields[k] = v
        c.close()
        return out

    def rss_kib(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def signal(self, sig):
        self.proc.send_signal(sig)

    def wait_exit(self, timeout=60):
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return None

    def stop(self):
        """SIGTERM unless it has exited; returns its exit status (None: killed after 60 s)."""
        if self.proc.poll() is None:
            self.signal(signal.SIGTERM)
            self.wait_exit(60)
        self.proc.stdout.close()
        self.log.close()
        return self.proc.returncode


# ---- reading videos back ----

def discover(path):
    """gst-discoverer-1.0's view of a file: (duration in s, width, height, fps) or None."""
    r = subprocess.run(["gst-discoverer-1.0", "-v", path], capture_output=True, text=True,
                       timeout=60, env=tools_env())
    m = re.search(r"Duration: (\d+):(\d+):([\d.]+)", r.stdout)
    v = re.search(r"video #\d+: video/x-h264.*?width=\(int\)(\d+), height=\(int\)(\d+).*?"
                  r"framerate=\(fraction\)(\d+)/1", r.stdout, re.S)
    if r.returncode != 0 or not m or not v:
        return None
    secs = int(m.group(1)) * 3600 + int(m.group(2)) * 60 + float(m.group(3))
    return secs, int(v.group(1)), int(v.group(2)), int(v.group(3))


def decoded_frames(paths, batch=20):
    """{path: frames a full decode yields}, several files per gst-launch-1.0 run, each file's raw
    frames written one file per frame (multifilesink) and counted."""
    counts = {}
    out = tempfile.mkdtemp(prefix="i2vgen-frames-")
    for start in range(0, len(paths), batch):
        group = paths[start:start + batch]
        cmd = ["gst-launch-1.0", "-q"]
        for i, p in enumerate(group):
            os.makedirs(os.path.join(out, str(start + i)))
            cmd += ["filesrc", f"location={p}", "!", "decodebin", "!", "video/x-raw", "!",
                    "multifilesink", f"location={out}/{start + i}/%05d"]
        subprocess.run(cmd, capture_output=True, timeout=300, env=tools_env())
        for i, p in enumerate(group):
            counts[p] = len(os.listdir(os.path.join(out, str(start + i))))
    shutil.rmtree(out, ignore_errors=True)
    return counts


def tiny_lora(model, path):
    """A rank-2 PEFT LoRA file for the first self-attention query of the model's UNet, with the
    shapes read from the model's own safetensors header."""
    with open(os.path.join(model, "unet", "diffusion_pytorch_model.safetensors"), "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
    name = next(k for k in sorted(header) if k.endswith("attn1.to_q.weight"))
    out_f, in_f = header[name]["shape"]
    module = "unet." + name[:-len(".weight")]
    tensors = [(module + ".lora_A.weight", [2, in_f]), (module + ".lora_B.weight", [out_f, 2])]
    meta, blobs, offset = {}, [], 0
    for key, shape in tensors:
        count = shape[0] * shape[1]
        data = struct.pack(f"<{count}f", *[((i * 37) % 17 - 8) / 40 for i in range(count)])
        meta[key] = {"dtype": "F32", "shape": shape, "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    head = json.dumps(meta).encode()
    head += b" " * (-len(head) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(head)) + head + b"".join(blobs))


def temp_dir():
    return tempfile.mkdtemp(prefix="i2vgen-serve-")


def wait_until(condition, timeout, interval=0.05):
    """Calls condition until it returns a true value or timeout seconds have passed; returns its
    last value (for what another process does a moment after what the test saw)."""
    end = time.time() + timeout
    while True:
        value = condition()
        if value or time.time() >= end:
            return value
        time.sleep(interval)


def log(*args):
    print("#", *args, file=sys.stdout, flush=True)
