#!/usr/bin/env python3
"""Writes the seed corpus of one fuzz target (tests/fuzz/README.md) into a folder.

    make_corpus.py TARGET FIXTURES_DIR OUT_DIR

Seeds are small valid inputs made from the fixtures (configs, the tokenizer, prompts, the input
image) or built here (safetensors files, a 40-merge tokenizer, LoRA key lists), so the repository
holds no binary seeds. Only the Python standard library is used.
"""
import glob
import json
import os
import shutil
import struct
import sys
import zlib


def write(out, name, data):
    with open(os.path.join(out, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


def safetensors(tensors, metadata=None):
    """A safetensors file of (name, dtype, shape, raw bytes) with consecutive offsets."""
    header, blobs, offset = {}, b"", 0
    if metadata is not None:
        header["__metadata__"] = metadata
    for name, dtype, shape, raw in tensors:
        header[name] = {"dtype": dtype, "shape": shape,
                        "data_offsets": [offset, offset + len(raw)]}
        blobs += raw
        offset += len(raw)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + blobs


def seeds_safetensors(fixtures, out):
    f32 = struct.pack("<4f", 1.0, -2.0, 0.5, 3.0)
    write(out, "floats.safetensors", safetensors(
        [("a.weight", "F32", [2, 2], f32), ("b.bias", "F16", [2], struct.pack("<2H", 0x3c00, 0xc000)),
         ("c.norm", "BF16", [1, 2], struct.pack("<2H", 0x3f80, 0x4000))], {"format": "pt"}))
    write(out, "ints-empty.safetensors", safetensors(
        [("ids", "I64", [3], struct.pack("<3q", 1, 2, 3)), ("mask", "U8", [2, 2], b"\1\0\1\0"),
         ("empty", "F32", [0, 4], b"")]))
    write(out, "rank5.safetensors", safetensors([("conv.weight", "F32", [1, 1, 1, 1, 2], f32[:8])]))
    files = glob.glob(os.path.join(fixtures, "*", "golden", "*.safetensors"))
    small = [f for f in files if os.path.getsize(f) <= 64 << 10]
    if small:  # a real file of the fixtures, the smallest
        shutil.copyfile(min(small, key=os.path.getsize), os.path.join(out, "fixture.safetensors"))


def seeds_json(fixtures, out):
    model = sorted(glob.glob(os.path.join(fixtures, "*", "model")))[0]
    for path in sorted(glob.glob(os.path.join(model, "**", "*.json"), recursive=True)):
        if os.path.getsize(path) < 100000:  # not vocab.json
            write(out, os.path.relpath(path, model).replace("/", "-"), open(path, "rb").read())
    # found by fuzz-json: an integer key written as a float far outside int64 (UB in the cast)
    write(out, "finding-huge-float-int.json", '{"layers_per_block": 7.7e92, "sizes": [1, -1e300]}')
    write(out, "shard-index.json", json.dumps({
        "metadata": {"total_size": 16},
        "weight_map": {"a.weight": "model-00001-of-00002.safetensors",
                       "b.bias": "sub/model-00002-of-00002.safetensors"}}))


def byte_symbols():
    """GPT-2's bytes_to_unicode: the alphabet symbol of each byte."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + \
        list(range(0xAE, 0x100))
    symbols, extra = {}, 0
    for b in range(256):
        if b in printable:
            symbols[b] = chr(b)
        else:
            symbols[b] = chr(256 + extra)
            extra += 1
    return [symbols[b] for b in range(256)]


def seeds_tokenizer_files(fixtures, out):
    tok = sorted(glob.glob(os.path.join(fixtures, "*", "model", "tokenizer")))[0]
    alphabet = byte_symbols()
    vocab = alphabet + [s + "</w>" for s in alphabet]
    merges = []
    known = set(vocab)
    for line in open(os.path.join(tok, "merges.txt"), encoding="utf-8").read().split("\n")[1:]:
        parts = line.split()
        if len(parts) == 2 and parts[0] in known and parts[1] in known and \
                parts[0] + parts[1] not in known:
            merges.append(line)
            vocab.append(parts[0] + parts[1])
            known.add(parts[0] + parts[1])
            if len(merges) == 40:
                break
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    vocab_json = json.dumps({t: i for i, t in enumerate(vocab)}, ensure_ascii=False)
    merges_txt = "#version: 0.2\n" + "\n".join(merges) + "\n"
    config = open(os.path.join(tok, "tokenizer_config.json"), encoding="utf-8").read()
    sep = "\n~~~~\n"
    write(out, "mini", vocab_json + sep + merges_txt + sep + config + sep + "a photo of a cat")
    write(out, "mini-no-prompt", vocab_json + sep + merges_txt + sep + config)


def seeds_tokenize(fixtures, out):
    golden = sorted(glob.glob(os.path.join(fixtures, "*", "golden", "tokenizer.json")))[0]
    for i, case in enumerate(json.load(open(golden, encoding="utf-8"))["cases"]):
        write(out, "prompt-%02d" % i, case["prompt"])
    write(out, "long-word", "x" * 2000)


def seeds_lora(fixtures, out):
    layouts = {
        "peft": ["unet.down_blocks.0.attentions.0.proj_in.lora_A.weight",
                 "unet.down_blocks.0.attentions.0.proj_in.lora_B.weight"],
        "diffusers-old": ["unet.mid_block.attentions.0.transformer_blocks.0.attn1.processor."
                          "to_q_lora.down.weight",
                          "unet.mid_block.attentions.0.transformer_blocks.0.attn1.processor."
                          "to_q_lora.up.weight",
                          "text_encoder.text_model.encoder.layers.0.self_attn.k_proj.lora.down.weight",
                          "text_encoder.text_model.encoder.layers.0.self_attn.k_proj.lora.up.weight"],
        "kohya": ["lora_unet_up_blocks_1_attentions_0_proj_out.lora_down.weight",
                  "lora_unet_up_blocks_1_attentions_0_proj_out.lora_up.weight",
                  "lora_unet_up_blocks_1_attentions_0_proj_out.alpha",
                  "lora_te_text_model_encoder_layers_0_mlp_fc1.lora_down.weight",
                  "lora_te_text_model_encoder_layers_0_mlp_fc1.lora_up.weight"],
        # found by fuzz-lora: one module's down half under two spellings (leaked the first)
        "finding-part-twice": ["unet.down_blocks.0.attentions.0.proj_in.lora_A.weight",
                               "unet.down_blocks.0.attentions.0.proj_in_lora.down.weight",
                               "unet.down_blocks.0.attentions.0.proj_in.lora_B.weight"],
    }
    for name, keys in layouts.items():
        write(out, name, "\n".join(keys) + "\n")


def png(width, height, rows):
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + \
            struct.pack(">I", zlib.crc32(kind + data) & 0xffffffff)
    raw = b"".join(b"\0" + row for row in rows)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)) + \
        chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def seeds_image(fixtures, out):
    image = sorted(glob.glob(os.path.join(fixtures, "*", "golden", "input_image.png")))[0]
    shutil.copyfile(image, os.path.join(out, "fixture.png"))
    write(out, "tiny.png", png(4, 3, [bytes(v for x in range(4) for v in (x * 60, y * 80, 128))
                                      for y in range(3)]))
    # a baseline JPEG of 8 x 8 grey pixels: one block, DC only (standard luminance DC table)
    jpeg = bytes.fromhex(
        "ffd8ffe000104a46494600010100000100010000"
        "ffdb004300" + "01" * 64 +
        "ffc0000b080008000801011100"
        "ffc4001f0000010501010101010100000000000000000102030405060708090a0b"
        "ffc400b5100002010303020403050504040000017d01020300041105122131410613516107227114328191a1"
        "082342b1c11552d1f02433627282090a161718191a25262728292a3435363738393a434445464748494a5354"
        "55565758595a636465666768696a737475767778797a838485868788898a92939495969798999aa2a3a4a5a6"
        "a7a8a9aab2b3b4b5b6b7b8b9bac2c3c4c5c6c7c8c9cad2d3d4d5d6d7d8d9dae1e2e3e4e5e6e7e8e9eaf1f2f3"
        "f4f5f6f7f8f9fa"
        "ffda0008010100003f00" "2b" "ffd9")
    write(out, "grey8x8.jpg", jpeg)


SEEDS = {
    "safetensors": seeds_safetensors,
    "json": seeds_json,
    "tokenizer_files": seeds_tokenizer_files,
    "tokenize": seeds_tokenize,
    "lora": seeds_lora,
    "image": seeds_image,
}

if __name__ == "__main__":
    if len(sys.argv) != 4 or sys.argv[1] not in SEEDS:
        sys.exit("usage: make_corpus.py {%s} FIXTURES_DIR OUT_DIR" % ",".join(SEEDS))
    os.makedirs(sys.argv[3], exist_ok=True)
    SEEDS[sys.argv[1]](sys.argv[2], sys.argv[3])
