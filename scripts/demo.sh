#!/usr/bin/env bash
# The main job end to end: installs what is missing and builds (scripts/setup.sh), turns the
# example image examples/sunset.png into an MP4 with the i2vgen GStreamer element, and reads the
# file back with gst-discoverer-1.0 and a full decode.
#
#   scripts/demo.sh                                   # no weights needed: a tiny random model
#   I2VGEN_MODEL=~/models/i2vgen-xl scripts/demo.sh   # the real model, preset "standard"
#
# DEMO_OUT (default build/demo.mp4), DEMO_IMAGE and DEMO_PROMPT change the output, image and prompt.
# I2VGEN_VARIANT=fp16 loads the *.fp16.safetensors files of the real model.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh

# the plugin and presets from the build tree, as `meson devenv` would set them
export GST_PLUGIN_PATH="$PWD/build/gst${GST_PLUGIN_PATH:+:$GST_PLUGIN_PATH}"
export GST_PRESET_PATH="$PWD/presets${GST_PRESET_PATH:+:$GST_PRESET_PATH}"

out=${DEMO_OUT:-build/demo.mp4}
image=${DEMO_IMAGE:-examples/sunset.png}
prompt=${DEMO_PROMPT:-clouds drifting over green hills at sunset, the sun slowly going down}

if [ -z "${I2VGEN_MODEL:-}" ]; then
  model=build/demo-model
  if [ ! -f "$model/model_index.json" ]; then
    build/tools/i2vgen mkmodel --config tiny --out "$model"
  fi
  # the tiny model is small and fast at any size: 64×64, 8 frames, 4 steps take seconds on a CPU
  settings=(width=64 height=64 num-frames=8 steps=4 fps=8)
  cat <<MSG

demo: I2VGEN_MODEL is not set, so this runs the tiny test configuration of I2VGen-XL with RANDOM
      weights ($model, made by 'i2vgen mkmodel --config tiny'). It exercises the whole pipeline
      (encoders, 3D UNet, DDIM, VAE, the element, the encoder and muxer) but the video is NOISE.
      For real videos download the diffusers weights of ali-vilab/i2vgen-xl (fp16 variant: 5 GB):

        pip install -U "huggingface_hub[cli]"
        huggingface-cli download ali-vilab/i2vgen-xl --local-dir ~/models/i2vgen-xl \\
            --include "model_index.json" "*/config.json" "*_config.json" "tokenizer/*" \\
                      "*.fp16.safetensors"
        I2VGEN_MODEL=~/models/i2vgen-xl I2VGEN_VARIANT=fp16 scripts/demo.sh

      (drop '*.fp16.safetensors' and I2VGEN_VARIANT for the float32 files, 10 GB; see
      docs/user-guide.md; timings in docs/PERFORMANCE.md).

MSG
else
  model=$I2VGEN_MODEL
  settings=(preset=standard)
  [ -z "${I2VGEN_VARIANT:-}" ] || settings+=("variant=$I2VGEN_VARIANT")
fi

echo "demo: $image -> $out with the model in $model (${settings[*]})"
start=$(date +%s)
examples/image-to-mp4.sh "$image" "$out" model-path="$model" "prompt=$prompt" "${settings[@]}"
echo "demo: generated in $(($(date +%s) - start)) s"

echo
echo "demo: $out as gst-discoverer-1.0 reads it:"
gst-discoverer-1.0 "$out" | grep -E '^  Duration:|^    video #|Width:|Height:|Frame rate:'
frames=$(gst-launch-1.0 filesrc location="$out" ! decodebin ! video/x-raw ! \
  fakesink silent=false -v 2>&1 | grep -c 'last-message = chain' || true)
echo "  Decoded frames: $frames"
ls -l "$out"
