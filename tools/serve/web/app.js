// The web page of i2vgen serve: a client of the public API only (docs/service.md). Presets,
// ranges and LoRA names come from GET /v1/capabilities, the crop from GET /v1/crop, the timing
// from GET /metrics, and every check of the values is the server's: its errors are shown at the
// field they name.
"use strict";

const KEY_STORAGE = "i2vgen.apiKey"; // sessionStorage: asked once per tab
const JOBS_STORAGE = "i2vgen.jobs";  // localStorage: the ids of the videos made in this browser
const SLIDERS = ["steps", "guidance_scale", "motion_strength", "num_frames", "fps"];
const TERMINAL = new Set(["completed", "failed"]);

const $ = (id) => document.getElementById(id);
let capabilities = null;
let image = null;            // {file, width, height}
const jobs = new Map();      // id → {video, element, stream (AbortController), clip (blob URL)}

// ---- the API ----

class ApiError extends Error {
  constructor(status, error) {
    super(error.message || `HTTP ${status}`);
    this.status = status;
    this.param = error.param || null;
    this.code = error.code || null;
  }
}

let keyPrompt = null; // the pending request for a key, shared by concurrent 401s

// Asks for the API key in a dialog; resolves once one is entered.
function askKey(why) {
  if (keyPrompt) return keyPrompt;
  keyPrompt = new Promise((resolve) => {
    const dialog = $("key-dialog");
    $("key-why").textContent = why;
    $("key-form").onsubmit = () => sessionStorage.setItem(KEY_STORAGE, $("api-key").value);
    // closed by the form or by Escape: the request is retried, and asks again if still refused
    dialog.onclose = () => {
      keyPrompt = null;
      resolve();
    };
    dialog.showModal();
    $("api-key").focus();
  });
  return keyPrompt;
}

// fetch() with the API key; asks for a key on 401 and retries. Paths are relative to the page, so
// that it also works behind a proxy that serves it under a prefix. Returns the Response; an API
// error (4xx/5xx with the OpenAI error shape) is thrown as ApiError.
async function api(path, options = {}) {
  for (;;) {
    const headers = new Headers(options.headers || {});
    const key = sessionStorage.getItem(KEY_STORAGE);
    if (key) headers.set("Authorization", `Bearer ${key}`);
    const response = await fetch(path, {...options, headers});
    if (response.status === 401) {
      const body = await response.json().catch(() => ({}));
      await askKey((body.error && body.error.message) || "This server needs an API key.");
      continue;
    }
    if (!response.ok) {
      const body = await response.json().catch(() => ({}));
      throw new ApiError(response.status, body.error || {});
    }
    return response;
  }
}

const apiJson = async (path, options) => (await api(path, options)).json();

// ---- the form's choices, from the server ----

function option(value, text) {
  const o = document.createElement("option");
  o.value = value;
  o.textContent = text;
  return o;
}

// The sizes offered: the presets' sizes that fit this server and, for common aspect ratios,
// the largest few sizes within its range in multiples of the model's size factor.
function sizeChoices(limits) {
  const m = limits.size_multiple, min = limits.size.min, max = limits.size.max;
  const fit = (v) => Math.floor(v / m) * m;
  const seen = new Map();
  const add = (w, h) => {
    if (w >= min && h >= min && w <= max && h <= max && w % m === 0 && h % m === 0)
      seen.set(`${w}x${h}`, [w, h]);
  };
  for (const p of capabilities.presets) add(...p.size.split("x").map(Number));
  for (const [a, b] of [[1, 1], [16, 9], [9, 16], [4, 3], [3, 4]])
    for (const scale of [1, 0.75, 0.5]) {
      const long = fit(max * scale);
      if (a >= b) add(long, fit((long * b) / a));
      else add(fit((long * a) / b), long);
    }
  return [...seen.values()].sort((p, q) => q[0] * q[1] - p[0] * p[1] || q[0] - p[0]);
}

function setRange(name, range, step) {
  const input = $(name);
  input.min = range.min;
  input.max = range.max;
  if (step) input.step = step;
}

function fillChoices() {
  const c = capabilities, limits = c.limits;
  $("server-info").textContent =
      `Model ${c.model}; sizes up to ${limits.size.max}×${limits.size.max}, ` +
      `up to ${limits.num_frames.max} frames and ${limits.steps.max} steps.`;
  for (const p of c.presets) {
    const label = p.within_limits ? p.name : `${p.name} (reduced to this server's limits)`;
    $("preset").append(option(p.name, label));
  }
  for (const [w, h] of sizeChoices(limits)) $("size").append(option(`${w}x${h}`, `${w} × ${h}`));
  for (const name of ["steps", "num_frames", "fps"]) setRange(name, limits[name], 1);
  setRange("guidance_scale", limits.guidance_scale);
  setRange("motion_strength", limits.motion_strength);
  setRange("lora_scale", limits.lora_scale);
  for (const o of [...$("interpolate").options])
    if (Number(o.value) > limits.interpolate.max) o.remove();
  $("lora").append(option("", "none"));
  for (const name of c.loras) $("lora").append(option(name, name));
  $("lora_scale").value = 1;
  // optional choices a server may offer (e.g. samplers): shown only when it lists them
  if (Array.isArray(c.samplers) && c.samplers.length) {
    for (const s of c.samplers) $("sampler").append(option(s, s));
    $("sampler-field").hidden = false;
  }
  $("preset").value = c.default_preset;
  applyPreset(c.default_preset);
}

// The size option nearest to w×h: the same one, else the largest of the nearest aspect ratio.
function nearestSize(w, h) {
  const options = [...$("size").options].map((o) => o.value.split("x").map(Number));
  const aspect = (s) => Math.abs(Math.log(s[0] / s[1]) - Math.log(w / h));
  options.sort((p, q) => aspect(p) - aspect(q) || Math.abs(p[0] * p[1] - w * h) - Math.abs(q[0] * q[1] - w * h));
  return options.length ? options[0].join("x") : "";
}

// Sets the controls to a preset's (or a video's) values; sliders clamp to the server's range.
function setControls(values) {
  for (const name of SLIDERS)
    if (values[name] !== undefined && values[name] !== null) $(name).value = values[name];
  if (values.size) {
    const [w, h] = values.size.split("x").map(Number);
    $("size").value = nearestSize(w, h);
  }
  if (values.sampler && !$("sampler-field").hidden) $("sampler").value = values.sampler;
  showValues();
}

function applyPreset(name) {
  const preset = capabilities.presets.find((p) => p.name === name);
  if (!preset) return;
  setControls(preset);
  $("preset-info").textContent = preset.description +
      (preset.within_limits ? "" : " — above this server's limits: reduced to fit.");
}

function showValues() {
  for (const name of [...SLIDERS, "lora_scale"]) $(`${name}-value`).textContent = $(name).value;
  $("lora-scale-field").hidden = $("lora").value === "";
  updateEstimate();
  updateCrop();
}

// ---- the estimate: frames × steps and the server's measured seconds per step ----

let stepSeconds = new Map(); // "WxH" → [{frames, mean}]

async function loadMetrics() {
  try {
    const text = await (await api("metrics")).text();
    const sums = new Map();
    const pattern = /^i2vgen_step_seconds_(sum|count)\{size="([^"]+)",frames="(\d+)"\} (\S+)$/gm;
    for (const m of text.matchAll(pattern)) {
      const key = `${m[2]}/${m[3]}`;
      const entry = sums.get(key) || {size: m[2], frames: Number(m[3])};
      entry[m[1]] = Number(m[4]);
      sums.set(key, entry);
    }
    stepSeconds = new Map();
    for (const e of sums.values())
      if (e.count > 0) {
        if (!stepSeconds.has(e.size)) stepSeconds.set(e.size, []);
        stepSeconds.get(e.size).push({frames: e.frames, mean: e.sum / e.count});
      }
  } catch (e) {
    stepSeconds = new Map(); // no metrics: the estimate says so
  }
  updateEstimate();
}

function updateEstimate() {
  const frames = Number($("num_frames").value), steps = Number($("steps").value);
  const size = $("size").value;
  let text = `${frames} frames × ${steps} steps = ${frames * steps} frame-steps; ` +
      `${(frames / Number($("fps").value)).toFixed(2)} s of video.`;
  const measured = stepSeconds.get(size) || [];
  if (measured.length) {
    // the frame count measured nearest to this one, scaled by frames (a step's work is per frame)
    measured.sort((a, b) => Math.abs(a.frames - frames) - Math.abs(b.frames - frames));
    const m = measured[0];
    const perStep = (m.mean * frames) / m.frames;
    text += ` This server measured ${m.mean.toFixed(3)} s per step at ${size.replace("x", "×")}` +
        ` with ${m.frames} frames: about ${Math.ceil(perStep * steps)} s` +
        (Number($("motion_strength").value) < 1 ? " or less (motion strength below 1 skips steps)." : ".");
  } else {
    text += ` No time measured at ${size.replace("x", "×")} on this server yet.`;
  }
  $("estimate").textContent = text;
}

// ---- the image and the crop the model will apply ----

function chooseImage(file) {
  if (!file) return;
  const preview = $("preview");
  if (preview.src) URL.revokeObjectURL(preview.src);
  preview.onload = () => {
    image = {file, width: preview.naturalWidth, height: preview.naturalHeight};
    $("preview-box").hidden = false;
    updateCrop();
  };
  preview.onerror = () => {
    image = {file, width: 0, height: 0};
    $("preview-box").hidden = true;
    $("crop-info").textContent = `${file.name}: this browser cannot show it; the server will check it.`;
  };
  preview.src = URL.createObjectURL(file);
  clearError("input_reference");
}

let cropRequest = 0;

// Asks the server how the engine resizes and crops the image to the chosen size and draws it.
async function updateCrop() {
  if (!image || !image.width || !$("size").value) return;
  const ticket = ++cropRequest;
  const size = $("size").value;
  try {
    const crop = await apiJson(`v1/crop?image=${image.width}x${image.height}&size=${size}`);
    if (ticket !== cropRequest) return;
    const box = $("crop"), r = crop.image_crop;
    box.style.left = `${(100 * r.x) / image.width}%`;
    box.style.top = `${(100 * r.y) / image.height}%`;
    box.style.width = `${(100 * r.width) / image.width}%`;
    box.style.height = `${(100 * r.height) / image.height}%`;
    box.hidden = false;
    $("crop-info").textContent =
        `${image.file.name}, ${image.width}×${image.height}: the model sees the framed part ` +
        `(resized to ${crop.resized.replace("x", "×")}, then cropped to ${size.replace("x", "×")}).`;
  } catch (e) {
    $("crop-info").textContent = e.message;
  }
}

// ---- errors at their fields ----

function clearError(name) {
  const slot = $(`error-${name}`);
  if (slot) slot.textContent = "";
  const field = $(name);
  if (field) field.removeAttribute("aria-invalid");
}

function clearErrors() {
  for (const slot of document.querySelectorAll("#create .error")) slot.textContent = "";
  for (const f of document.querySelectorAll("#create [aria-invalid]")) f.removeAttribute("aria-invalid");
}

function showError(e) {
  // the fields the API names that this form shows under another control
  const alias = {seconds: "num_frames", lora_scale: "lora", model: "form"};
  const name = alias[e.param] || e.param;
  const slot = (name && $(`error-${name}`)) || $("error-form");
  slot.textContent = e.message;
  const field = name && $(name);
  if (field && field.focus) {
    field.setAttribute("aria-invalid", "true");
    field.focus();
  }
}

// ---- submitting ----

function formFields() {
  const fields = {
    prompt: $("prompt").value,
    preset: $("preset").value,
    size: $("size").value,
    interpolate: $("interpolate").value,
  };
  if ($("negative_prompt").value) fields.negative_prompt = $("negative_prompt").value;
  for (const name of SLIDERS) fields[name] = $(name).value;
  if ($("seed").value.trim() !== "") fields.seed = $("seed").value.trim();
  if ($("lora").value) fields.lora = `${$("lora").value}:${$("lora_scale").value}`;
  if (!$("sampler-field").hidden) fields.sampler = $("sampler").value;
  return fields;
}

async function submit(event) {
  event.preventDefault();
  clearErrors();
  if (!image) {
    showError({param: "input_reference", message: "Choose an image first."});
    return;
  }
  const body = new FormData();
  for (const [name, value] of Object.entries(formFields())) body.append(name, value);
  body.append("input_reference", image.file, image.file.name);
  $("submit").disabled = true;
  try {
    const video = await apiJson("v1/videos", {method: "POST", body});
    rememberJob(video.id);
    addJob(video, true);
  } catch (e) {
    showError(e);
  } finally {
    $("submit").disabled = false;
  }
}

// ---- the videos of this browser ----

function myJobIds() {
  try {
    return JSON.parse(localStorage.getItem(JOBS_STORAGE)) || [];
  } catch (e) {
    return [];
  }
}

function rememberJob(id) {
  localStorage.setItem(JOBS_STORAGE, JSON.stringify([id, ...myJobIds().filter((x) => x !== id)]));
}

function forgetJob(id) {
  localStorage.setItem(JOBS_STORAGE, JSON.stringify(myJobIds().filter((x) => x !== id)));
}

// Lists this browser's videos from the API (newest first); ids the server no longer has are
// forgotten.
async function loadJobs() {
  const mine = new Set(myJobIds());
  const found = [];
  let after = null;
  for (let page = 0; page < 10 && mine.size > found.length; page++) {
    const list = await apiJson(`v1/videos?limit=100${after ? `&after=${after}` : ""}`);
    found.push(...list.data.filter((v) => mine.has(v.id)));
    if (!list.has_more) break;
    after = list.last_id;
  }
  const ids = new Set(found.map((v) => v.id));
  for (const id of mine) if (!ids.has(id)) forgetJob(id);
  for (const video of found.reverse()) addJob(video, true);
}

const PARAMS = [
  ["prompt", "Prompt"], ["negative_prompt", "Negative prompt"], ["preset", "Preset"],
  ["size", "Size"], ["num_frames", "Frames"], ["fps", "Frames per second"], ["seconds", "Seconds"],
  ["steps", "Steps"], ["sampler", "Sampler"], ["guidance_scale", "Guidance scale"],
  ["motion_strength", "Motion strength"], ["seed", "Seed"], ["interpolate", "Interpolation"],
  ["lora", "LoRA"], ["lora_scale", "LoRA scale"],
];

function addJob(video, newest) {
  const element = $("job-template").content.firstElementChild.cloneNode(true);
  element.dataset.id = video.id;
  const job = {video, element, stream: null, clip: null};
  jobs.set(video.id, job);
  element.querySelector(".prompt").textContent = video.prompt;
  const label = `video "${video.prompt.slice(0, 40)}"`;
  element.querySelector(".cancel").onclick = () => removeJob(job);
  element.querySelector(".reuse").onclick = () => reuse(job.video);
  element.querySelector(".reuse").setAttribute("aria-label", `Reuse the settings of ${label}`);
  element.querySelector("progress").setAttribute("aria-label", `Progress of ${label}`);
  element.querySelector("video").setAttribute("aria-label", label);
  if (newest) $("jobs").prepend(element);
  else $("jobs").append(element);
  $("jobs-empty").hidden = true;
  update(job, video);
  if (!TERMINAL.has(video.status)) follow(job);
}

function update(job, video) {
  job.video = video;
  const e = job.element;
  e.dataset.status = video.status;
  e.querySelector(".status").textContent = video.status.replace("_", " ");
  e.querySelector("progress").value = video.progress;
  const cancel = e.querySelector(".cancel");
  cancel.textContent = TERMINAL.has(video.status) ? "Delete" : "Cancel";
  cancel.setAttribute("aria-label", `${cancel.textContent} video "${video.prompt.slice(0, 40)}"`);
  if (video.status === "queued") e.querySelector(".progress-text").textContent = "waiting in the queue";
  if (TERMINAL.has(video.status)) e.querySelector(".progress-text").textContent = "";
  e.querySelector(".job-error").textContent =
      video.error ? `${video.error.code}: ${video.error.message}` : "";
  const dl = e.querySelector("dl");
  dl.replaceChildren();
  for (const [name, title] of PARAMS) {
    const value = video[name];
    if (value === undefined || value === null || value === "" || (name === "lora_scale" && !video.lora))
      continue;
    const dt = document.createElement("dt"), dd = document.createElement("dd");
    dt.textContent = title;
    dd.textContent = String(value);
    dl.append(dt, dd);
  }
  if (video.status === "completed" && !job.clip) showClip(job);
}

function showProgress(job, p) {
  const e = job.element;
  e.querySelector("progress").value = p.progress;
  let text = p.frame > 0 ? `decoding frame ${p.frame}/${p.frames}` : `step ${p.step}/${p.steps}`;
  text += `, ${p.progress}%`;
  if (p.eta_seconds !== undefined && p.eta_seconds !== null) text += `, about ${Math.ceil(p.eta_seconds)} s left`;
  e.querySelector(".progress-text").textContent = text;
}

// Reads the video's Server-Sent Events with fetch() (EventSource cannot send the key) and
// reconnects until a terminal event.
async function follow(job) {
  while (jobs.get(job.video.id) === job && !TERMINAL.has(job.video.status)) {
    job.stream = new AbortController();
    try {
      const response = await api(`v1/videos/${job.video.id}/events`, {signal: job.stream.signal});
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      for (;;) {
        const {value, done} = await reader.read();
        if (done) break;
        buffer += value;
        let end;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          onStreamEvent(job, buffer.slice(0, end));
          buffer = buffer.slice(end + 2);
        }
      }
    } catch (e) {
      if (e.name === "AbortError") return;
      if (e instanceof ApiError && e.status === 404) {
        dropJob(job);
        return;
      }
    }
    if (!TERMINAL.has(job.video.status)) await new Promise((r) => setTimeout(r, 1000));
  }
}

function onStreamEvent(job, block) {
  let type = "message", data = "";
  for (const line of block.split("\n")) {
    if (line.startsWith("event: ")) type = line.slice(7);
    else if (line.startsWith("data: ")) data += line.slice(6);
  }
  if (!data) return;
  const doc = JSON.parse(data);
  if (type === "progress") showProgress(job, doc);
  else if (type === "deleted") dropJob(job);
  else update(job, doc);
  if (type === "completed") loadMetrics();
}

async function showClip(job) {
  job.clip = "loading";
  try {
    const blob = await (await api(`v1/videos/${job.video.id}/content`)).blob();
    job.clip = URL.createObjectURL(blob);
    const e = job.element;
    e.querySelector("video").src = job.clip;
    const link = e.querySelector(".download");
    link.href = job.clip;
    link.download = `${job.video.id}.mp4`;
    e.querySelector(".result").hidden = false;
  } catch (err) {
    job.clip = null;
    job.element.querySelector(".job-error").textContent = err.message;
  }
}

function dropJob(job) {
  if (job.stream) job.stream.abort();
  if (job.clip && job.clip !== "loading") URL.revokeObjectURL(job.clip);
  job.element.remove();
  jobs.delete(job.video.id);
  forgetJob(job.video.id);
  $("jobs-empty").hidden = jobs.size > 0;
}

// Cancel (running or queued) or delete (finished): DELETE on the API, then off the list.
async function removeJob(job) {
  try {
    await api(`v1/videos/${job.video.id}`, {method: "DELETE"});
  } catch (e) {
    if (!(e instanceof ApiError && e.status === 404)) {
      job.element.querySelector(".job-error").textContent = e.message;
      return;
    }
  }
  dropJob(job);
}

function reuse(video) {
  $("prompt").value = video.prompt || "";
  $("negative_prompt").value = video.negative_prompt || "";
  if ([...$("preset").options].some((o) => o.value === video.preset)) $("preset").value = video.preset;
  const size = `${video.width}x${video.height}`;
  if (![...$("size").options].some((o) => o.value === size))
    $("size").append(option(size, `${video.width} × ${video.height}`));
  setControls({...video, size});
  $("seed").value = video.seed || "";
  $("interpolate").value = String(video.interpolate || 1);
  $("lora").value = video.lora || "";
  if (video.lora) $("lora_scale").value = video.lora_scale;
  showValues();
  $("prompt").focus();
}

// ---- start ----

function wire() {
  $("create").addEventListener("submit", submit);
  $("preset").addEventListener("change", () => applyPreset($("preset").value));
  for (const name of [...SLIDERS, "lora_scale"]) $(name).addEventListener("input", showValues);
  for (const name of ["size", "lora"]) $(name).addEventListener("change", showValues);
  $("input_reference").addEventListener("change", (e) => chooseImage(e.target.files[0]));
  $("seed-random").addEventListener("click", () => {
    const words = crypto.getRandomValues(new Uint32Array(2));
    $("seed").value = String((BigInt(words[0]) << 32n) | BigInt(words[1]));
    clearError("seed");
  });
  const drop = $("drop");
  drop.addEventListener("dragover", (e) => {
    e.preventDefault();
    drop.classList.add("dragging");
  });
  drop.addEventListener("dragleave", () => drop.classList.remove("dragging"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    drop.classList.remove("dragging");
    if (e.dataTransfer.files.length) chooseImage(e.dataTransfer.files[0]);
  });
  for (const control of document.querySelectorAll("#create input, #create textarea, #create select"))
    control.addEventListener("input", () => clearError(control.id));
}

async function start() {
  wire();
  try {
    capabilities = await apiJson("v1/capabilities");
  } catch (e) {
    $("server-info").textContent = `The server did not answer: ${e.message}`;
    return;
  }
  fillChoices();
  document.body.dataset.ready = "true";
  await Promise.all([loadMetrics(), loadJobs()]);
  document.body.dataset.jobsLoaded = "true";
}

start();
