"""Helpers for the cluster tests (tests/test_redis.py) and benchmark (tools/serve/bench_redis.py):
a redis-server of their own on a unix socket in a temporary folder (no TCP port, AOF on),
`i2vgen worker` processes with the tiny model, and reading Redis with redis-cli. Python 3
standard library."""
import os
import re
import shutil
import signal
import subprocess
import time

from service_lib import TOOL, tiny_model


def redis_missing():
    """Why the cluster cannot be tested here (redis-server or redis-cli missing), or None."""
    for tool in ("redis-server", "redis-cli"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (Debian: apt-get install redis-server)"
    return None


class Redis:
    """A redis-server on DIR/redis.sock with its AOF in DIR: restartable without losing data. The
    AOF is fsynced every second (appendfsync always, what docs/service.md advises against power
    loss, makes every write wait for the disk: on a loaded test machine that can delay heartbeats
    past --claim-after)."""

    def __init__(self, folder):
        self.dir = folder
        os.makedirs(folder, exist_ok=True)
        self.sock = os.path.join(folder, "redis.sock")
        self.url = "unix://" + self.sock
        self.proc = None
        self.start()

    def start(self):
        self.log = open(os.path.join(self.dir, "redis.log"), "ab")
        self.proc = subprocess.Popen(
            ["redis-server", "--port", "0", "--unixsocket", self.sock, "--unixsocketperm", "700",
             "--dir", self.dir, "--appendonly", "yes", "--appendfsync", "everysec",
             "--save", "", "--daemonize", "no"], stdout=self.log, stderr=self.log)
        end = time.time() + 20
        while time.time() < end:
            if self.cli("PING", check=False) == "PONG":
                return
            time.sleep(0.02)
        raise RuntimeError("redis-server did not answer within 20 s")

    def cli(self, *args, check=True):
        """One command through redis-cli; its output, stripped."""
        r = subprocess.run(["redis-cli", "-s", self.sock, *map(str, args)], capture_output=True,
                           text=True, timeout=30)
        if check and r.returncode != 0:
            raise RuntimeError(f"redis-cli {args}: {r.stderr}")
        return r.stdout.strip()

    def restart(self):
        """SIGTERM (the AOF is flushed and fsynced), then start again from it."""
        self.stop()
        self.start()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(30)
        self.log.close()


class Worker:
    """An `i2vgen worker` with the tiny model on the store, named name. Every worker started is
    in Worker.started, for a test to stop what is left when it fails."""
    started = []

    def __init__(self, redis, store, name, *options):
        Worker.started.append(self)
        self.name = name
        self.logpath = os.path.join(store + "-" + name + ".log")
        self.log = open(self.logpath, "ab")
        cmd = [TOOL, "worker", "--queue", redis.url, "--results", store, "--model", tiny_model(),
               "--name", name, *options]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=self.log)

    def log_text(self):
        with open(self.logpath, "rb") as f:
            return f.read().decode(errors="replace")

    def wait_ready(self, timeout=60):
        end = time.time() + timeout
        while time.time() < end and self.proc.poll() is None:
            if " ready: " in self.log_text():
                return True
            time.sleep(0.05)
        return False

    def completed(self):
        """The ids this worker completed, from its log."""
        return re.findall(r"i2vgen worker: (video_[0-9a-f]{32}) completed in ", self.log_text())

    @staticmethod
    def wait_logged(workers, ids, timeout=15):
        """Waits until every id is in some worker's completed() log lines: a worker logs a
        completion (and removes the upload) just after the API already reports it."""
        end = time.time() + timeout
        while time.time() < end:
            logged = set(v for w in workers for v in w.completed())
            if all(v in logged for v in ids):
                return
            time.sleep(0.1)

    def signal(self, sig):
        self.proc.send_signal(sig)

    def stop(self, timeout=60):
        """SIGTERM unless it has exited; its exit status (None: killed after timeout)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            code = None
        self.log.close()
        return code
