#!/usr/bin/python3
"""A client of `i2vgen serve` with the Python standard library only: submits an image, prints
the progress the server streams (Server-Sent Events), downloads the finished MP4.

    serve_client.py [--url URL] [--api-key KEY] [--set FIELD=VALUE]... IMAGE OUT.mp4 PROMPT

The URL defaults to I2VGEN_URL or http://127.0.0.1:8000, the key to I2VGEN_API_KEY. --set adds
request fields (docs/service.md): --set preset=fast --set steps=30 --set size=512x512 ...
"""
import argparse
import json
import mimetypes
import os
import sys
import urllib.error
import urllib.request
import uuid


def multipart(fields, image_path):
    """A multipart/form-data body with the text fields and the image as input_reference."""
    boundary = uuid.uuid4().hex
    out = []
    for name, value in fields.items():
        out.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'
                   f"{value}\r\n".encode())
    ctype = mimetypes.guess_type(image_path)[0] or "application/octet-stream"
    with open(image_path, "rb") as f:
        data = f.read()
    out.append(f'--{boundary}\r\nContent-Disposition: form-data; name="input_reference"; '
               f'filename="{os.path.basename(image_path)}"\r\nContent-Type: {ctype}\r\n\r\n'
               .encode() + data + b"\r\n")
    out.append(f"--{boundary}--\r\n".encode())
    return b"".join(out), f"multipart/form-data; boundary={boundary}"


class Client:
    def __init__(self, url, key):
        self.url = url.rstrip("/")
        self.headers = {"Authorization": f"Bearer {key}"} if key else {}

    def open(self, path, body=None, content_type=None):
        headers = dict(self.headers)
        if content_type:
            headers["Content-Type"] = content_type
        return urllib.request.urlopen(
            urllib.request.Request(self.url + path, data=body, headers=headers), timeout=3600)

    def json(self, path, body=None, content_type=None):
        with self.open(path, body, content_type) as r:
            return json.load(r)

    def events(self, video_id):
        """Yields (type, data) of the video's Server-Sent Events until the stream ends."""
        event = None
        with self.open(f"/v1/videos/{video_id}/events") as r:
            for raw in r:
                line = raw.decode().rstrip("\n")
                if line.startswith("event: "):
                    event = line[len("event: "):]
                elif line.startswith("data: "):
                    yield event, json.loads(line[len("data: "):])


def main():
    ap = argparse.ArgumentParser(description="generate a video with an i2vgen server")
    ap.add_argument("image")
    ap.add_argument("output")
    ap.add_argument("prompt")
    ap.add_argument("--url", default=os.environ.get("I2VGEN_URL", "http://127.0.0.1:8000"))
    ap.add_argument("--api-key", default=os.environ.get("I2VGEN_API_KEY"))
    ap.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE")
    args = ap.parse_args()
    fields = {"prompt": args.prompt}
    for setting in args.set:
        name, sep, value = setting.partition("=")
        if not sep:
            ap.error(f"--set {setting}: expected FIELD=VALUE")
        fields[name] = value
    client = Client(args.url, args.api_key)
    try:
        video = client.json("/v1/videos", *multipart(fields, args.image))
        print(f"{video['id']} {video['status']}: {video['size']}, {video['seconds']} s")
        for event, data in client.events(video["id"]):
            if event == "progress":
                print(f"{data['progress']}% (step {data['step']}/{data['steps']}, "
                      f"frame {data['frame']}/{data['frames']}, about {data['eta_seconds']:.0f} s "
                      "left)", flush=True)
            elif event != "video":
                video = data
                print(event)
        if video.get("status") != "completed":
            print(f"{video['id']}: {video.get('error') or video.get('status')}", file=sys.stderr)
            return 1
        with client.open(f"/v1/videos/{video['id']}/content") as r, open(args.output, "wb") as f:
            f.write(r.read())
    except urllib.error.HTTPError as e:
        print(f"HTTP {e.code}: {json.load(e).get('error', {}).get('message')}", file=sys.stderr)
        return 1
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
