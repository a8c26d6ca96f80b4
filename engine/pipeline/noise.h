/* The engine's documented Gaussian generator: the initial latents and the VAE posterior noise of
 * a generation derive from the user's 64-bit seed through it, so a seed gives the same clip on
 * every machine and backend (it does not replay PyTorch's RNG; parity tests pass the reference
 * noise explicitly instead).
 *
 * Algorithm (normative):
 *   state = seed XOR (stream · 0xD1B54A32D192ED03)                      (mod 2^64)
 *   next() = SplitMix64: state += 0x9E3779B97F4A7C15; z = state;
 *            z = (z XOR z>>30)·0xBF58476D1CE4E5B9; z = (z XOR z>>27)·0x94D049BB133111EB;
 *            return z XOR z>>31
 *   values are made in pairs (Box–Muller in double): a = next(), b = next(),
 *            u1 = ((a>>11) + 1)·2^-53 ∈ (0, 1], u2 = (b>>11)·2^-53 ∈ [0, 1),
 *            r = √(−2·ln u1), out[2k] = (float)(r·cos 2πu2), out[2k+1] = (float)(r·sin 2πu2)
 *            (an odd count drops the last sine).
 * Values fill the tensor in row-major order of its PyTorch layout. */
#pragma once

#include <glib.h>
#include <stdint.h>

G_BEGIN_DECLS

/* Streams of one generation. */
#define I2V_NOISE_STREAM_LATENTS 0   /* init_latents [1, C, F, h, w] */
#define I2V_NOISE_STREAM_POSTERIOR 1 /* vae_posterior_noise [1, C, h, w] */

/* Fills out[n] with N(0, 1) float32 values of (seed, stream) as described above. */
void i2v_noise_normal(guint64 seed, guint64 stream, float *out, int64_t n);

G_END_DECLS
