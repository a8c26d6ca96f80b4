#!/usr/bin/env python3
"""The web page of `i2vgen serve` in a real browser: Debian's chromium, headless, driven through
chromedriver by python3-selenium, against a server on 127.0.0.1 (port 0) with the tiny fixture
model and an API key. It loads the page (which asks for the key once), chooses
examples/sunset.png and checks the crop drawn is the server's, picks a preset and moves a slider
with the keyboard, submits, watches the progress bar advance from the event stream, plays the
finished clip (readyState >= 2, duration = frames / fps of the video object), reloads and finds
the job again, sees a refused seed shown at the seed field, cancels a running job, drops an
image on the drop zone, and checks
that every control has a label and the page fits 360 px. Screenshots of the page before and
after a job go to WEB_SCREENSHOT_DIR (build/). TAP; skipped when chromium, chromedriver or
selenium are missing."""
import base64
import importlib.util
import os
import shutil
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from service_lib import Server, Tap, log, png, temp_dir, tiny_lora, tiny_model  # noqa: E402

TAP = Tap()
check = TAP.check
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
SOURCE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
IMAGE = os.path.join(SOURCE, "examples", "sunset.png")
SHOTS = os.environ.get("WEB_SCREENSHOT_DIR", os.path.join(SOURCE, "build"))
KEY = "web-key-" + os.urandom(6).hex()
TIMEOUT = 30  # seconds any one wait may take


def missing():
    """Why the test cannot run here, or None."""
    if importlib.util.find_spec("selenium") is None:
        return f"python3-selenium is not installed for {sys.executable}"
    if not CHROMIUM or not CHROMEDRIVER:
        return "chromium and chromium-driver are not installed (scripts/packages.txt)"
    return None


def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1280,1000", "--autoplay-policy=no-user-gesture-required",
                "--disable-background-networking", "--no-first-run"]:
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)


def wait_for(driver, script, timeout=TIMEOUT, *args):
    """Runs a JavaScript expression until it is truthy; returns its value (None on timeout)."""
    end = time.time() + timeout
    while time.time() < end:
        value = driver.execute_script("return " + script, *args)
        if value:
            return value
        time.sleep(0.05)
    return None


# Records every value the progress bars of the job list take, and every text beside them: the
# old values of the mutations too, so that events the browser handled in one batch all count.
RECORD_PROGRESS = """
window.progressSeen = [];
const record = (job, value, text) => window.progressSeen.push({id: job.dataset.id, value, text});
new MutationObserver((mutations) => {
  for (const m of mutations) {
    const job = m.target.closest ? m.target.closest('#jobs li') : null;
    if (!job) continue;
    if (m.type === 'attributes' && m.target.tagName === 'PROGRESS')
      record(job, Number(m.oldValue || 0), null);
    if (m.type === 'childList' && m.target.classList.contains('progress-text'))
      for (const n of m.removedNodes) record(job, null, n.textContent);
  }
  for (const job of document.querySelectorAll('#jobs li'))
    record(job, job.querySelector('progress').value,
           job.querySelector('.progress-text').textContent);
}).observe(document.getElementById('jobs'), {subtree: true, childList: true,
  attributes: true, attributeFilter: ['value'], attributeOldValue: true});
"""


def load(driver, server, first):
    driver.get(server.url)
    if first:
        dialog = wait_for(driver, "document.getElementById('key-dialog').open")
        check("page: asks for the API key", dialog is True)
        driver.find_element("id", "api-key").send_keys(KEY)
        driver.find_element("id", "key-save").click()
    ready = wait_for(driver, "document.body.dataset.jobsLoaded === 'true'")
    check("page: capabilities and jobs loaded" + ("" if first else " without asking the key again"),
          ready and not driver.execute_script(
              "return document.getElementById('key-dialog').open"),
          driver.execute_script("return document.getElementById('server-info').textContent"))


def check_labels(driver):
    unlabeled = driver.execute_script("""
      return [...document.querySelectorAll('input, select, textarea, button')]
        .filter((e) => !(e.labels && e.labels.length) && !e.getAttribute('aria-label') &&
                       !(e.tagName === 'BUTTON' && e.textContent.trim()))
        .map((e) => e.id || e.outerHTML.slice(0, 60));""")
    check("page: every control has a label", not unlabeled, f"unlabeled: {unlabeled}")


def choose_image(driver, server):
    """Chooses examples/sunset.png (square) at the widest size offered, where the crop shows."""
    from selenium.webdriver.support.ui import Select
    driver.find_element("id", "input_reference").send_keys(IMAGE)
    sizes = driver.execute_script(
        "return [...document.getElementById('size').options].map((o) => o.value)")
    # sides below 16 pass the server's checks but fail in its pipeline (negotiation): not used
    usable = [v for v in sizes if min(map(int, v.split("x"))) >= 16]
    size = max(usable, key=lambda v: int(v.split("x")[0]) / int(v.split("x")[1]))
    Select(driver.find_element("id", "size")).select_by_value(size)
    info = wait_for(driver, "document.getElementById('crop').hidden === false && "
                    "document.getElementById('crop-info').textContent.includes(arguments[0]) && "
                    "document.getElementById('crop-info').textContent", TIMEOUT,
                    size.replace("x", "×"))
    crop = server.get(f"/v1/crop?image=512x512&size={size}").json()
    drawn = driver.execute_script("""
      const c = document.getElementById('crop'), img = document.getElementById('preview');
      return [c.offsetLeft, c.offsetTop, c.offsetWidth, c.offsetHeight, img.offsetWidth,
              img.offsetHeight];""")
    r = crop["image_crop"]
    scale = drawn[4] / 512
    want = [r["x"] * scale, r["y"] * scale, r["width"] * scale, r["height"] * scale]
    check(f"image: preview with the server's crop at {size} drawn on it",
          info and crop["resized"] in info.replace("×", "x") and r["height"] < 512 and
          all(abs(a - b) <= 1.5 for a, b in zip(drawn[:4], want)),
          f"info {info!r}, drawn {drawn}, crop {crop}")


def drop_image(driver, server):
    """Drops a 48x24 PNG on the drop zone as a file manager's drag delivers it (dragover, then a
    drop event carrying the file in its DataTransfer): the zone shows the drag, and the preview,
    the server's crop and the file a submission sends all become the dropped image's."""
    dragging = driver.execute_script("""
      const bytes = Uint8Array.from(atob(arguments[0]), (c) => c.charCodeAt(0));
      const dt = new DataTransfer();
      dt.items.add(new File([bytes], 'dropped.png', {type: 'image/png'}));
      const zone = document.getElementById('drop');
      const event = (type) => new DragEvent(type, {dataTransfer: dt, bubbles: true,
                                                  cancelable: true});
      zone.dispatchEvent(event('dragover'));
      const during = zone.classList.contains('dragging');
      zone.dispatchEvent(event('drop'));
      return [during, zone.classList.contains('dragging')];""",
                                     base64.b64encode(png(48, 24)).decode())
    size = driver.execute_script("return document.getElementById('size').value")
    crop = server.get(f"/v1/crop?image=48x24&size={size}").json()
    info = wait_for(driver, """(() => {
      const p = document.getElementById('preview'), info = document.getElementById('crop-info');
      return p.naturalWidth === 48 && p.naturalHeight === 24 && image.file.name === 'dropped.png'
             && info.textContent.replace(/×/g, 'x').includes(arguments[0]) && info.textContent;
      })()""", TIMEOUT, crop.get("resized", "?"))
    check("drag and drop: the zone shows the drag; the dropped image becomes the preview, its "
          "crop the server's, and the file a submission sends",
          dragging == [True, False] and bool(info), f"dragging {dragging}, info {info!r}, {crop}")


def screenshot(driver, name):
    """The whole page (the window made as tall as it) at the top, into SHOTS."""
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(1280, min(max(height, 700), 2400) + 120)
    driver.execute_script("window.scrollTo(0, 0); document.activeElement.blur()")
    time.sleep(0.2)
    driver.save_screenshot(os.path.join(SHOTS, name))


def set_controls(driver, caps, preset_name):
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import Select
    preset = next(p for p in caps["presets"] if p["name"] == preset_name)
    Select(driver.find_element("id", "preset")).select_by_value(preset_name)
    steps = driver.find_element("id", "steps")
    limits = caps["limits"]
    want_steps = min(preset["steps"], limits["steps"]["max"])
    frames = min(preset["num_frames"], limits["num_frames"]["max"])
    values = driver.execute_script(
        "return ['steps', 'num_frames', 'fps'].map((n) => Number(document.getElementById(n).value))")
    check(f"preset {preset_name}: fills steps, frames, fps from /v1/capabilities (within limits)",
          values == [want_steps, frames, preset["fps"]], f"{values}")
    samplers = driver.execute_script(
        "const s = document.getElementById('sampler');"
        "return [[...s.options].map((o) => o.value), s.value]")
    check(f"sampler selector: the server's samplers, set to the preset's {preset['sampler']}",
          samplers == [caps["samplers"], preset["sampler"]], f"{samplers}")
    for _ in range(20):
        steps.send_keys(Keys.ARROW_LEFT)  # the slider, by keyboard
    shown = driver.find_element("id", "steps-value").text
    estimate = driver.find_element("id", "estimate").text
    check("slider: keyboard moves steps, its value and the estimate follow",
          shown == str(want_steps - 20) and f"{frames * (want_steps - 20)} frame-steps" in estimate,
          f"shown {shown!r}, estimate {estimate!r}")
    Select(driver.find_element("id", "interpolate")).select_by_value("2")
    loras = driver.execute_script(
        "return [...document.getElementById('lora').options].map((o) => o.value)")
    check("LoRA selector: none and the server's allow-list", loras == [""] + caps["loras"] and
          len(caps["loras"]) == 1, f"{loras} vs {caps['loras']}")
    driver.find_element("id", "prompt").send_keys("clouds drifting at sunset")


def submit_and_finish(driver, server):
    driver.execute_script(RECORD_PROGRESS)
    # a video ahead (through the API: not this browser's) keeps the page's queued until the page
    # follows its events, however slowly the browser gets there
    server.create({"prompt": "ahead", "size": "32x32", "num_frames": 4, "steps": 30}, png(32, 32))
    driver.find_element("id", "submit").click()
    job_id = wait_for(driver, "document.querySelector('#jobs li') && "
                      "document.querySelector('#jobs li').dataset.id")
    check("submit: the job is listed", bool(job_id))
    ready = wait_for(driver, """(() => {
      const v = document.querySelector(`#jobs li[data-id="${arguments[0]}"] video`);
      return v && v.readyState >= 2 && isFinite(v.duration) && v.duration > 0;})()""",
                     TIMEOUT, job_id)
    seen = driver.execute_script("return window.progressSeen.filter((p) => p.id === arguments[0])",
                                 job_id)
    middle = [p["value"] for p in seen if p["value"] is not None and 0 < p["value"] < 100]
    texts = [p["text"] for p in seen if p["text"]]
    steps_text = [t for t in texts if t.startswith("step ")]
    frames_text = [t for t in texts if t.startswith("decoding frame ")]
    check("progress: the bar advanced through the events (step i/n, frame j/m, time left)",
          len(set(middle)) >= 2 and middle == sorted(middle) and steps_text and frames_text and
          any("s left" in t for t in steps_text), f"seen {seen[:40]}")
    video = server.get(f"/v1/videos/{job_id}").json()
    duration = driver.execute_script(
        "return document.querySelector(`#jobs li[data-id=\"${arguments[0]}\"] video`).duration",
        job_id)
    want = video["num_frames"] / video["fps"]
    check(f"clip: <video> ready to play, {duration} s = {video['num_frames']} frames / "
          f"{video['fps']} fps (interpolated ×{video['interpolate']})",
          ready and video["interpolate"] == 2 and abs(duration - want) <= 1.0 / video["fps"],
          f"ready {ready}, duration {duration}, video {video}")
    estimate = wait_for(driver, "document.getElementById('estimate').textContent.includes("
                        "'s per step') && document.getElementById('estimate').textContent")
    check("estimate: the server's measured seconds per step once a job ran at this size",
          estimate and f"at {video['size'].replace('x', '×')}" in estimate, f"{estimate!r}")
    link = driver.execute_script(
        "return document.querySelector(`#jobs li[data-id=\"${arguments[0]}\"] .download`)"
        ".getAttribute('download')", job_id)
    params = driver.execute_script(
        "return document.querySelector(`#jobs li[data-id=\"${arguments[0]}\"] dl`).textContent",
        job_id)
    check("clip: download link and the parameters used", link == f"{job_id}.mp4" and
          video["seed"] in params and video["prompt"] in params, f"{link!r} {params!r}")
    return job_id, video


def reuse_settings(driver, video):
    from selenium.webdriver.support.ui import Select
    Select(driver.find_element("id", "preset")).select_by_value("high")
    driver.find_element("css selector", f'#jobs li[data-id="{video["id"]}"] .reuse').click()
    values = driver.execute_script(
        "return ['steps', 'num_frames', 'fps', 'seed'].map((n) => document.getElementById(n).value)")
    check("reuse these settings: the video's values back in the form",
          values == [str(video["steps"]), str(video["num_frames"]), str(video["fps"]),
                     video["seed"]], f"{values} vs {video}")


def validation_error(driver):
    seed = driver.find_element("id", "seed")
    seed.clear()
    seed.send_keys("not-a-number")
    driver.find_element("id", "submit").click()
    message = wait_for(driver, "document.getElementById('error-seed').textContent")
    invalid = driver.execute_script(
        "return document.getElementById('seed').getAttribute('aria-invalid')")
    check("error: a refused seed is shown at the seed field", message and "seed" in message and
          invalid == "true" and not driver.find_element("id", "error-form").text,
          f"{message!r} {invalid!r}")
    seed.clear()


def cancel_running(driver, server):
    from selenium.webdriver.common.keys import Keys
    driver.find_element("id", "steps").send_keys(Keys.END)  # the server's most steps
    before = set(driver.execute_script(
        "return [...document.querySelectorAll('#jobs li')].map((e) => e.dataset.id)"))
    driver.find_element("id", "submit").click()
    job_id = wait_for(driver, """[...document.querySelectorAll('#jobs li')]
        .map((e) => e.dataset.id).find((id) => !arguments[0].includes(id))""",
                      TIMEOUT, list(before))
    running = wait_for(driver, """(() => {
      const e = document.querySelector(`#jobs li[data-id="${arguments[0]}"]`);
      return e && e.dataset.status === 'in_progress' &&
             e.querySelector('.progress-text').textContent.startsWith('step ');})()""",
                       TIMEOUT, job_id)
    button = driver.find_element("css selector", f'#jobs li[data-id="{job_id}"] .cancel')
    label = button.text
    button.click()
    gone = wait_for(driver, "!document.querySelector(`#jobs li[data-id=\"${arguments[0]}\"]`)",
                    TIMEOUT, job_id)
    status = server.get(f"/v1/videos/{job_id}").status
    check("cancel: a running job's Cancel deletes it (404 after) and it leaves the list",
          running and label == "Cancel" and gone and status == 404,
          f"running {running}, label {label!r}, gone {gone}, status {status}")


def narrow(driver):
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                           {"width": 360, "height": 800, "deviceScaleFactor": 1, "mobile": True})
    time.sleep(0.2)
    widths = driver.execute_script(
        "return [document.documentElement.scrollWidth, window.innerWidth]")
    driver.save_screenshot(os.path.join(SHOTS, "web-page-360.png"))
    check("layout: fits 360 px without horizontal scrolling", widths[0] <= widths[1],
          f"scrollWidth {widths[0]}, innerWidth {widths[1]}")
    driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})


def page_without_key(server):
    page = server.get("/", key=False)
    script = server.get("/app.js", key=False)
    crop = server.get("/v1/crop?image=512x512&size=32x18", key=False)
    check("page files need no key, the API does", page.status == 200 and b"app.js" in page.body and
          script.status == 200 and crop.status == 401 and "Content-Security-Policy" in page.headers,
          f"{page!r} {script!r} {crop!r}")
    bad = server.get("/v1/crop?image=512&size=32x18")
    check("/v1/crop: a malformed size is a 400 naming it", bad.status == 400 and
          bad.error().get("param") == "image" and "WIDTHxHEIGHT" in bad.error().get("message", ""),
          f"{bad!r}")
    top = server.get("/v1/crop?image=1x1").error().get("message", "")
    side = int(top.split(" to ")[-1]) if " to " in top else 0
    extreme = [server.get(f"/v1/crop?image=1x{side}&size={side}x1"),
               server.get(f"/v1/crop?image={side}x1&size=1x{side}"),
               server.get(f"/v1/crop?image=1x1&size={side}x{side}")]
    too_big = server.get(f"/v1/crop?image={side + 1}x1&size=1x1")
    check(f"/v1/crop: extreme aspect ratios up to sides of {side} answer, {side + 1} is refused",
          side > 0 and all(r.status == 200 and r.json() for r in extreme) and
          too_big.status == 400 and too_big.error().get("param") == "image",
          f"{top!r} {extreme} {too_big!r}")


def main():
    why = missing()
    if why:
        TAP.skip("web page in a browser", why)
        return TAP.done()
    start = time.time()
    tmp = temp_dir()
    data, loras = os.path.join(tmp, "data"), os.path.join(tmp, "loras")
    os.makedirs(loras)
    tiny_lora(tiny_model(), os.path.join(loras, "sunset-style.safetensors"))
    # a small job (a second or two on 2 cores): the presets are reduced to these limits
    server = Server(data, "--max-size", "32", "--max-frames", "4", "--max-steps", "400",
                    "--lora-dir", loras, key=KEY)
    driver = None
    try:
        caps = server.get("/v1/capabilities").json()
        page_without_key(server)
        driver = browser()
        load(driver, server, first=True)
        check_labels(driver)
        set_controls(driver, caps, "fast")
        choose_image(driver, server)
        os.makedirs(SHOTS, exist_ok=True)
        screenshot(driver, "web-page-before.png")
        job_id, video = submit_and_finish(driver, server)
        driver.execute_script("document.querySelector('#jobs li details').open = true")
        screenshot(driver, "web-page-after.png")
        load(driver, server, first=False)
        listed = wait_for(driver, """(() => {
          const v = document.querySelector(`#jobs li[data-id="${arguments[0]}"] video`);
          return v && v.readyState >= 2;})()""", TIMEOUT, job_id)
        check("reload: the finished job is listed again from the API, its clip playable",
              listed is True)
        choose_image(driver, server)
        reuse_settings(driver, video)
        validation_error(driver)
        cancel_running(driver, server)
        drop_image(driver, server)
        narrow(driver)
    except Exception as e:  # a broken page must fail the test, not hang or crash it unreported
        check("web page test ran to its end", False, repr(e))
        if driver is not None:
            log("browser console:", driver.get_log("browser"))
    finally:
        if driver is not None:
            driver.quit()
        code = server.stop()
        check("server: SIGTERM, exit 0", code == 0, server.log_text())
        shutil.rmtree(tmp, ignore_errors=True)
    log(f"took {time.time() - start:.1f} s")
    return TAP.done()


if __name__ == "__main__":
    sys.exit(main())
