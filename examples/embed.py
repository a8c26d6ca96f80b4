#!/usr/bin/python3
"""Embedding the i2vgen element from Python (PyGObject): image -> i2vgen -> MP4 (or a window),
printing the generation progress the element posts on the bus (i2vgen-progress messages).

    embed.py [--model DIR] [--prompt TEXT] [--output OUT.mp4] [--headless] [--set PROP=VALUE]... IMAGE

Without --output the frames go to a window (to fakesink with --headless). The model defaults to
the I2VGEN_MODEL environment variable, as for the element itself. Needs python3-gi and
gir1.2-gstreamer-1.0 (Debian), and the plugin in GST_PLUGIN_PATH (or installed).
"""
import argparse
import signal
import sys

import gi

gi.require_version("Gst", "1.0")
from gi.repository import GLib, Gst  # noqa: E402


def print_generation_progress(s):
    """Prints one i2vgen-progress message: a denoising step, or a decoded frame."""
    job, step, steps = s.get_value("job"), s.get_value("step"), s.get_value("steps")
    frame, frames = s.get_value("frame"), s.get_value("frames")
    elapsed, eta = s.get_value("elapsed-ms") / 1000, s.get_value("eta-ms") / 1000
    if frame == 0:
        print(f"job {job}: step {step}/{steps}, {elapsed:.1f} s elapsed, about {eta:.1f} s left")
    else:
        print(f"job {job}: frame {frame}/{frames} decoded, {elapsed:.1f} s elapsed")
    sys.stdout.flush()


def main():
    ap = argparse.ArgumentParser(description="generate a video clip from an image with i2vgen")
    ap.add_argument("image")
    ap.add_argument("-m", "--model", help="diffusers model directory (default: $I2VGEN_MODEL)")
    ap.add_argument("-p", "--prompt", help="what the video should show")
    ap.add_argument("-o", "--output", help="write an MP4 file instead of showing a window")
    ap.add_argument("--headless", action="store_true",
                    help="without --output: discard the frames instead of showing them")
    ap.add_argument("-s", "--set", action="append", default=[], metavar="PROP=VALUE",
                    help="any i2vgen property, e.g. --set steps=30 --set preset=fast")
    args = ap.parse_args()

    Gst.init(None)
    if args.output:
        sink = "videoconvert ! video/x-raw,format=I420 ! x264enc ! mp4mux ! filesink name=sink"
    elif args.headless:
        sink = "fakesink name=sink"
    else:
        sink = "videoconvert ! autovideosink name=sink sync=false"
    try:
        pipeline = Gst.parse_launch(
            f"filesrc name=src ! decodebin ! videoconvert ! i2vgen name=gen ! {sink}")
    except GLib.Error as e:
        sys.exit(f"cannot build the pipeline: {e.message} "
                 "(is the i2vgen plugin in GST_PLUGIN_PATH?)")
    gen = pipeline.get_by_name("gen")
    pipeline.get_by_name("src").set_property("location", args.image)
    if args.output:
        pipeline.get_by_name("sink").set_property("location", args.output)
    if args.model:
        gen.set_property("model-path", args.model)
    if args.prompt:
        gen.set_property("prompt", args.prompt)
    for setting in args.set:
        prop, sep, value = setting.partition("=")
        if not sep or gen.find_property(prop) is None:
            print(f"--set {setting}: expected PROP=VALUE with an i2vgen property "
                  "(gst-inspect-1.0 i2vgen)", file=sys.stderr)
            return 2
        Gst.util_set_object_arg(gen, prop, value)

    frames = 0

    def count_frame(pad, info):
        nonlocal frames
        frames += 1
        return Gst.PadProbeReturn.OK

    gen.get_static_pad("src").add_probe(Gst.PadProbeType.BUFFER, count_frame)

    loop = GLib.MainLoop()
    status = 0

    def on_message(bus, msg):
        nonlocal status
        if msg.type == Gst.MessageType.ELEMENT and msg.get_structure().has_name("i2vgen-progress"):
            print_generation_progress(msg.get_structure())
        elif msg.type == Gst.MessageType.PROGRESS:  # the element loading its model
            _, code, text = msg.parse_progress()
            print(f"{code}: {text}")
        elif msg.type == Gst.MessageType.ERROR:
            err, debug = msg.parse_error()
            print(f"error from {msg.src.get_name()}: {err.message}", file=sys.stderr)
            status = 1
            loop.quit()
        elif msg.type == Gst.MessageType.EOS:
            loop.quit()

    bus = pipeline.get_bus()
    bus.add_signal_watch()
    bus.connect("message", on_message)

    def on_sigint():  # Ctrl-C: EOS lets mp4mux finish the file
        print("interrupted: finishing the output", file=sys.stderr)
        pipeline.send_event(Gst.Event.new_eos())
        return GLib.SOURCE_REMOVE

    GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signal.SIGINT, on_sigint)
    if pipeline.set_state(Gst.State.PLAYING) == Gst.StateChangeReturn.FAILURE:
        msg = bus.pop_filtered(Gst.MessageType.ERROR)  # the element posted why (no model, ...)
        if msg:
            on_message(bus, msg)
        else:
            print("the pipeline did not start", file=sys.stderr)
        status = 1
    else:
        loop.run()
    pipeline.set_state(Gst.State.NULL)
    bus.remove_signal_watch()
    if status == 0:
        print(f"{frames} frames generated" + (f", written to {args.output}" if args.output else ""))
    return status


if __name__ == "__main__":
    sys.exit(main())
