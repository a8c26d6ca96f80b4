/* The I2VGen-XL 3D UNet (diffusers I2VGenXLUNet, docs/model.md "UNet"): configuration, weights,
 * the loop-invariant conditioning and one forward, on channels-last activations. */
#include "unet3d.h"

#include "ops.h"

#include <math.h>
#include <stdarg.h>
#include <string.h>

#include <i2v/error.h>

#include "resnet.h"
#include "temporal_conv.h"
#include "transformer.h"

/* Constants hard-wired inside I2VGenXLUNet (docs/model.md "UNet"). */
#define TRANSFORMER_IN_HEADS 8 /* transformer_in: 8 heads × attention_head_dim */
#define ENCODER_HEADS 2        /* image-latent temporal encoder: 2 heads × in_channels */
#define IMAGE_CONTEXT_POOL 32  /* AdaptiveAvgPool2d((32, 32)) before two stride-2 convs */
#define NORM_OUT_EPS 1e-5f
#define RESNET_EPS 1e-5f
#define ENCODER_LN_EPS 1e-5f

/* One down or up block of the UNet (CrossAttn{Down,Up}Block3D or {Down,Up}Block3D). */
typedef struct {
  gboolean cross; /* spatial + temporal transformers after each resnet/temp_conv */
  int n_layers;
  int64_t channels; /* output channels */
  I2vResnet *resnets;
  I2vTemporalConv *temp_convs;
  I2vTransformer *attentions, *temp_attentions; /* NULL unless cross */
  gboolean has_sampler;
  I2vLinear sampler; /* down: 3×3 stride 2; up: 3×3 after nearest ×2 */
} UnetStage;

struct I2vUnet {
  /* configuration */
  int in_channels, out_channels, ctx_dim, head_dim, temb_dim, sin_dim;
  int groups, levels, layers;
  int *channels; /* block_out_channels[levels] */
  /* embeddings and the image-latent branches */
  I2vLinear time_1, time_2, fps_1, fps_2, ctx_emb_1, ctx_emb_2;
  I2vLinear image_proj_in[3]; /* conv in→4in, 4in→4in, 4in→in */
  I2vLinear image_context[3]; /* conv in→8in, (pool), 8in→16in s2, 16in→D s2 */
  I2vNorm enc_norm;           /* image_latents_temporal_encoder */
  I2vLinear enc_q, enc_k, enc_v, enc_out, enc_ff_1, enc_ff_2;
  /* trunk */
  I2vLinear conv_in, conv_out;
  I2vTransformer transformer_in;
  UnetStage *down, *up, mid; /* mid: resnets[2], temp_convs[2], one of each transformer */
  I2vNorm norm_out;
  /* every spatial transformer, in kv_slot order (their context K/V live in the condition) */
  GPtrArray *spatial;
  GPtrArray *params;               /* every weight */
  gboolean *down_cross, *up_cross; /* per level: cross-attention blocks (config) */
};

/* Tensors in the preparing stream's scratch arena; host buffers sized once, so a denoising step
 * allocates nothing. */
struct I2vUnetCond {
  const I2vUnet *u;
  int64_t batch, frames, h, w, ctx_len;
  I2vTensor fps_emb;      /* [Bc, temb_dim] */
  I2vTensor image_branch; /* [Bc, F, h, w, in_channels]: processed image latents */
  I2vTensor *kv;          /* K, V [Bc, ctx_len, C] per spatial transformer */
  int n_kv;
  float *sinusoids;        /* [Bc, sin_dim] host staging of embed_scalars */
  int64_t *steps;          /* [Bc] the timestep broadcast to the batch */
  I2vTensor *skips;        /* the skip stack of a forward: 1 + levels·(layers + 1) entries */
  int64_t attention_chunk; /* I2vUnetRun.chunk_frames of its forwards */
};

/* ---- configuration ---- */

/* Reads block types for key (one per level): TRUE in cross[i] for cross_name, FALSE for
 * plain_name, an error naming the value otherwise. */
static gboolean parse_block_types(const I2vConfig *c, const char *key, int levels,
                                  const char *cross_name, const char *plain_name, gboolean *cross,
                                  GError **error) {
  char **types = NULL;
  if (!i2v_config_strings(c, key, levels, &types, error)) return FALSE;
  gboolean ok = TRUE;
  for (int i = 0; ok && i < levels; i++) {
    cross[i] = strcmp(types[i], cross_name) == 0;
    ok = cross[i] || strcmp(types[i], plain_name) == 0;
    if (!ok)
      g_set_error(error, I2V_ERROR, I2V_ERROR_CONFIG,
                  "%s: %s[%d] is \"%s\", expected \"%s\" or \"%s\"", c->file, key, i, types[i],
                  cross_name, plain_name);
  }
  g_strfreev(types);
  return ok;
}

/* Attentions over ch channels have ch / attention_head_dim heads, which must divide. */
static gboolean check_heads(const I2vConfig *c, const I2vUnet *u, int ch, GError **error) {
  if (ch % u->head_dim == 0) return TRUE;
  g_set_error(error, I2V_ERROR, I2V_ERROR_CONFIG,
              "%s: attention_head_dim %d does not divide the %d channels of a transformer (heads "
              "= channels / attention_head_dim)",
              c->file, u->head_dim, ch);
  return FALSE;
}

/* Every size of the UNet from its config (ranges: docs/model.md); sizes checked against each
 * other before anything is allocated or loaded. */
static gboolean parse_config(I2vUnet *u, const I2vConfig *c, GError **error) {
  /* attention_head_dim was absent from early config revisions; diffusers defaults it to 64 */
  if (!i2v_config_int(c, "in_channels", 1, 64, &u->in_channels, error) ||
      !i2v_config_int(c, "out_channels", 1, 64, &u->out_channels, error) ||
      !i2v_config_int(c, "cross_attention_dim", 1, 16384, &u->ctx_dim, error) ||
      !i2v_config_int(c, "layers_per_block", 1, 16, &u->layers, error) ||
      !i2v_config_int(c, "norm_num_groups", 1, 1024, &u->groups, error) ||
      !i2v_config_int_or(c, "attention_head_dim", 1, 1024, 64, &u->head_dim, error) ||
      !i2v_config_ints(c, "block_out_channels", 8, 1, 16384, &u->channels, &u->levels, error))
    return FALSE;
  int n = u->levels;
  for (int i = 0; i < n; i++) {
    if (u->channels[i] % u->groups != 0) {
      g_set_error(error, I2V_ERROR, I2V_ERROR_CONFIG,
                  "%s: block_out_channels[%d] is %d, expected a multiple of norm_num_groups %d",
                  c->file, i, u->channels[i], u->groups);
      return FALSE;
    }
  }
  u->temb_dim = 4 * u->channels[0];
  u->sin_dim = u->channels[0];
  u->down_cross = g_new0(gboolean, n);
  u->up_cross = g_new0(gboolean, n);
  if (!parse_block_types(c, "down_block_types", n, "CrossAttnDownBlock3D", "DownBlock3D",
                         u->down_cross, error) ||
      !parse_block_types(c, "up_block_types", n, "CrossAttnUpBlock3D", "UpBlock3D", u->up_cross,
                         error))
    return FALSE;
  /* levels with transformers: cross-attention blocks and the mid block (the last level) */
  for (int i = 0; i < n; i++)
    if ((u->down_cross[i] || u->up_cross[n - 1 - i] || i == n - 1) &&
        !check_heads(c, u, u->channels[i], error))
      return FALSE;
  return TRUE;
}

/* ---- loading ---- */

/* Loads the spatial transformer attentions.j and the temporal one temp_attentions.j of c
 * channels (heads checked by parse_config) and registers the spatial one's K/V slot. */
static void load_cross_pair(I2vUnet *u, I2vLoader *ld, I2vTransformer *spatial,
                            I2vTransformer *temporal, const char *prefix, int j, int64_t c) {
  int heads = (int)(c / u->head_dim);
  char *p = g_strdup_printf("%s.attentions.%d", prefix, j);
  i2v_load_transformer(ld, spatial, p, c, heads, (int)u->head_dim, u->ctx_dim);
  spatial->kv_slot = (int)u->spatial->len;
  g_ptr_array_add(u->spatial, spatial);
  g_free(p);
  p = g_strdup_printf("%s.temp_attentions.%d", prefix, j);
  i2v_load_transformer(ld, temporal, p, c, heads, (int)u->head_dim, 0);
  g_free(p);
}

/* Allocates the per-layer arrays of a stage of n layers. */
static void stage_init(UnetStage *s, int n, gboolean cross, int64_t channels) {
  s->n_layers = n;
  s->cross = cross;
  s->channels = channels;
  s->resnets = g_new0(I2vResnet, n);
  s->temp_convs = g_new0(I2vTemporalConv, n);
  if (cross) {
    s->attentions = g_new0(I2vTransformer, n);
    s->temp_attentions = g_new0(I2vTransformer, n);
  }
}

static void stage_clear(UnetStage *s) {
  g_free(s->resnets);
  g_free(s->temp_convs);
  g_free(s->attentions);
  g_free(s->temp_attentions);
}

/* Loads resnet j (cin → s->channels), temp_conv j and, for cross stages, transformers j. */
static void load_layer(I2vUnet *u, I2vLoader *ld, UnetStage *s, const char *prefix, int j,
                       int64_t cin) {
  char *p = g_strdup_printf("%s.resnets.%d", prefix, j);
  i2v_load_resnet(ld, &s->resnets[j], p, cin, s->channels, u->temb_dim);
  g_free(p);
  p = g_strdup_printf("%s.temp_convs.%d", prefix, j);
  i2v_load_temporal_conv(ld, &s->temp_convs[j], p, s->channels);
  g_free(p);
  if (s->cross)
    load_cross_pair(u, ld, &s->attentions[j], &s->temp_attentions[j], prefix, j, s->channels);
}

static void load_down(I2vUnet *u, I2vLoader *ld, const gboolean *cross) {
  u->down = g_new0(UnetStage, u->levels);
  for (int i = 0; i < u->levels; i++) {
    UnetStage *s = &u->down[i];
    int64_t cin = i == 0 ? u->channels[0] : u->channels[i - 1];
    stage_init(s, u->layers, cross[i], u->channels[i]);
    char *prefix = g_strdup_printf("down_blocks.%d", i);
    for (int j = 0; j < s->n_layers; j++)
      load_layer(u, ld, s, prefix, j, j == 0 ? cin : s->channels);
    s->has_sampler = i < u->levels - 1;
    if (s->has_sampler)
      i2v_load_conv(ld, &s->sampler, prefix, "downsamplers.0.conv", s->channels, s->channels, 3,
                    TRUE);
    g_free(prefix);
  }
}

/* Up block i mirrors level L-1-i: layers_per_block + 1 resnets whose inputs are the previous
 * output concatenated with a skip (diffusers' prev_output_channel / res_skip_channels). */
static void load_up(I2vUnet *u, I2vLoader *ld, const gboolean *cross) {
  int L = u->levels;
  u->up = g_new0(UnetStage, L);
  for (int i = 0; i < L; i++) {
    UnetStage *s = &u->up[i];
    int64_t out = u->channels[L - 1 - i];
    int64_t prev = u->channels[L - 1 - MAX(i - 1, 0)];
    int64_t in = u->channels[L - 1 - MIN(i + 1, L - 1)];
    stage_init(s, u->layers + 1, cross[i], out);
    char *prefix = g_strdup_printf("up_blocks.%d", i);
    for (int j = 0; j < s->n_layers; j++) {
      int64_t skip = j == s->n_layers - 1 ? in : out;
      load_layer(u, ld, s, prefix, j, (j == 0 ? prev : out) + skip);
    }
    s->has_sampler = i < L - 1;
    if (s->has_sampler)
      i2v_load_conv(ld, &s->sampler, prefix, "upsamplers.0.conv", out, out, 3, TRUE);
    g_free(prefix);
  }
}

static void load_mid(I2vUnet *u, I2vLoader *ld) {
  int64_t c = u->channels[u->levels - 1];
  UnetStage *s = &u->mid;
  stage_init(s, 2, TRUE, c);
  for (int j = 0; j < 2; j++) {
    char *p = g_strdup_printf("mid_block.resnets.%d", j);
    i2v_load_resnet(ld, &s->resnets[j], p, c, c, u->temb_dim);
    g_free(p);
    p = g_strdup_printf("mid_block.temp_convs.%d", j);
    i2v_load_temporal_conv(ld, &s->temp_convs[j], p, c);
    g_free(p);
  }
  load_cross_pair(u, ld, &s->attentions[0], &s->temp_attentions[0], "mid_block", 0, c);
}

/* Embeddings, the image-latent branches, conv_in/transformer_in and the output head. */
static void load_stem(I2vUnet *u, I2vLoader *ld) {
  int64_t in = u->in_channels, D = u->ctx_dim, T = u->temb_dim;
  i2v_load_linear(ld, &u->time_1, "time_embedding", "linear_1", T, u->sin_dim, TRUE);
  i2v_load_linear(ld, &u->time_2, "time_embedding", "linear_2", T, T, TRUE);
  i2v_load_linear(ld, &u->fps_1, "fps_embedding", "0", T, u->sin_dim, TRUE);
  i2v_load_linear(ld, &u->fps_2, "fps_embedding", "2", T, T, TRUE);
  i2v_load_linear(ld, &u->ctx_emb_1, "context_embedding", "0", T, D, TRUE);
  i2v_load_linear(ld, &u->ctx_emb_2, "context_embedding", "2", D * in, T, TRUE);
  i2v_load_conv(ld, &u->image_proj_in[0], "image_latents_proj_in", "0", 4 * in, in, 3, TRUE);
  i2v_load_conv(ld, &u->image_proj_in[1], "image_latents_proj_in", "2", 4 * in, 4 * in, 3, TRUE);
  i2v_load_conv(ld, &u->image_proj_in[2], "image_latents_proj_in", "4", in, 4 * in, 3, TRUE);
  i2v_load_conv(ld, &u->image_context[0], "image_latents_context_embedding", "0", 8 * in, in, 3,
                TRUE);
  i2v_load_conv(ld, &u->image_context[1], "image_latents_context_embedding", "3", 16 * in, 8 * in,
                3, TRUE);
  i2v_load_conv(ld, &u->image_context[2], "image_latents_context_embedding", "5", D, 16 * in, 3,
                TRUE);
  const char *enc = "image_latents_temporal_encoder";
  int64_t inner = ENCODER_HEADS * in;
  i2v_load_norm(ld, &u->enc_norm, enc, "norm1", in);
  i2v_load_linear(ld, &u->enc_q, enc, "attn1.to_q", inner, in, FALSE);
  i2v_load_linear(ld, &u->enc_k, enc, "attn1.to_k", inner, in, FALSE);
  i2v_load_linear(ld, &u->enc_v, enc, "attn1.to_v", inner, in, FALSE);
  i2v_load_linear(ld, &u->enc_out, enc, "attn1.to_out.0", in, inner, TRUE);
  i2v_load_linear(ld, &u->enc_ff_1, enc, "ff.net.0.proj", 4 * in, in, TRUE);
  i2v_load_linear(ld, &u->enc_ff_2, enc, "ff.net.2", in, 4 * in, TRUE);
  i2v_load_conv(ld, &u->conv_in, "conv_in", NULL, u->channels[0], 2 * in, 3, TRUE);
  i2v_load_transformer(ld, &u->transformer_in, "transformer_in", u->channels[0],
                       TRANSFORMER_IN_HEADS, (int)u->head_dim, 0);
  i2v_load_norm(ld, &u->norm_out, "conv_norm_out", NULL, u->channels[0]);
  i2v_load_conv(ld, &u->conv_out, "conv_out", NULL, u->out_channels, u->channels[0], 3, TRUE);
}

/* Every weight of the UNet, in diffusers' module order. */
static void load_weights(I2vLoader *ld, void *net) {
  I2vUnet *u = net;
  load_stem(u, ld);
  load_down(u, ld, u->down_cross);
  load_mid(u, ld);
  load_up(u, ld, u->up_cross);
}

I2vUnet *i2v_unet_load(I2vModelDir *md, I2vBackend *be, GError **error) {
  I2vConfig c;
  if (!i2v_model_dir_config(md, "unet", &c, error)) return NULL;
  I2vUnet *u = g_new0(I2vUnet, 1);
  u->spatial = g_ptr_array_new();
  u->params = g_ptr_array_new();
  gboolean ok = parse_config(u, &c, error);
  i2v_config_clear(&c);
  if (!ok || !i2v_load_component(md, "unet", be, u->params, load_weights, u, error)) {
    i2v_unet_free(u);
    return NULL;
  }
  return u;
}

void i2v_unet_free(I2vUnet *u) {
  if (u == NULL) return;
  i2v_params_free(u->params);
  g_ptr_array_unref(u->spatial);
  for (int i = 0; u->down != NULL && i < u->levels; i++) stage_clear(&u->down[i]);
  for (int i = 0; u->up != NULL && i < u->levels; i++) stage_clear(&u->up[i]);
  stage_clear(&u->mid);
  g_free(u->down);
  g_free(u->up);
  g_free(u->channels);
  g_free(u->down_cross);
  g_free(u->up_cross);
  g_free(u);
}

int i2v_unet_in_channels(const I2vUnet *u) {
  return (int)u->in_channels;
}
int i2v_unet_out_channels(const I2vUnet *u) {
  return (int)u->out_channels;
}
int i2v_unet_cross_attention_dim(const I2vUnet *u) {
  return (int)u->ctx_dim;
}
gint64 i2v_unet_num_params(const I2vUnet *u) {
  return i2v_params_count(u->params);
}

/* ---- embeddings ---- */

/* exp as PyTorch's CPU kernel evaluates it for float32 (SLEEF expf_u10 with FMA, the vectorised
 * path the reference ran). The sinusoid multiplies the frequency by timesteps up to 999, so the
 * 1-ulp differences of a correctly rounded exp (a quarter of the 160 frequencies) would grow to
 * 5e-5 in time_proj, above the golden tolerance. */
static float torch_expf(float d) {
  const float r_ln2 = 1.442695040888963407359924681001892137426645954152985934135449406931f;
  const float l2u = 0.693145751953125f, l2l = 1.428606765330187045e-06f;
  float q = nearbyintf(d * r_ln2);
  float s = fmaf(q, -l2u, d);
  s = fmaf(q, -l2l, s);
  float u = 0.000198527617612853646278381f;
  u = fmaf(u, s, 0.00139304355252534151077271f);
  u = fmaf(u, s, 0.00833336077630519866943359f);
  u = fmaf(u, s, 0.0416664853692054748535156f);
  u = fmaf(u, s, 0.166666671633720397949219f);
  u = fmaf(u, s, 0.5f);
  float s2 = s * s;
  u = 1.0f + fmaf(s2, u, s);
  return ldexpf(u, (int)q); /* d is in [-ln(10000), 0]: no overflow/underflow handling needed */
}

/* diffusers Timesteps(dim, flip_sin_to_cos=True, downscale_freq_shift=0) of the integer value p,
 * in float32 as PyTorch evaluates it: ω_k = exp(−ln(10000)·k / half), cosine half first; an
 * odd dim gets a zero last column. */
static void sinusoid(int64_t p, int dim, float *out) {
  int half = dim / 2;
  const float neg_log = (float)-log(10000.0);
  for (int k = 0; k < half; k++) {
    float freq = torch_expf(neg_log * (float)k / (float)half);
    float arg = (float)p * freq;
    out[k] = (float)cos((double)arg);
    out[half + k] = (float)sin((double)arg);
  }
  if (dim % 2) out[dim - 1] = 0.0f;
}

/* y [Bc, temb] = l2(SiLU(l1(sinusoid(p_b)))) for per-row values p; taps the sinusoid. */
static gboolean embed_scalars(const I2vUnet *u, I2vStream *st, const int64_t *p, int64_t rows,
                              const I2vLinear *l1, const I2vLinear *l2, const char *tap_name,
                              float *host, I2vTensor *y, GError **error) {
  for (int64_t r = 0; r < rows; r++) sinusoid(p[r], (int)u->sin_dim, host + r * u->sin_dim);
  size_t mark = i2v_scratch_mark(st);
  int64_t ss[2] = {rows, u->sin_dim}, hs[2] = {rows, u->temb_dim};
  I2vTensor s = i2v_scratch_tensor(st, 2, ss);
  gboolean ok = i2v_tensor_upload_f32(st, &s, host, error);
  if (ok) {
    i2v_tap(st, tap_name, &s);
    I2vTensor h = i2v_scratch_tensor(st, 2, hs);
    i2v_op_linear(st, &h, &s, &l1->w, &l1->b, I2V_ACT_SILU, FALSE);
    i2v_op_linear(st, y, &h, &l2->w, &l2->b, I2V_ACT_NONE, FALSE);
  }
  i2v_scratch_release(st, mark);
  return ok;
}

/* ---- conditioning ---- */

void i2v_unet_cond_set_attention_chunk(I2vUnetCond *c, int64_t frames) {
  c->attention_chunk = frames;
}

void i2v_unet_cond_free(I2vUnetCond *c) {
  if (c == NULL) return;
  g_free(c->kv);
  g_free(c->sinusoids);
  g_free(c->steps);
  g_free(c->skips);
  g_free(c);
}

static void conv_strided(I2vStream *st, I2vTensor *y, const I2vTensor *x, const I2vLinear *c,
                         int stride) {
  const I2vConvParams p = {
      .stride = stride, .pad_top = 1, .pad_left = 1, .pad_bottom = 1, .pad_right = 1};
  i2v_op_conv2d(st, y, x, &c->w, &c->b, &p, FALSE);
}

/* A scratch [n, h, w, c] feature map. */
static I2vTensor scratch_map(I2vStream *st, int64_t n, int64_t h, int64_t w, int64_t c) {
  int64_t s[4] = {n, h, w, c};
  return i2v_scratch_tensor(st, 4, s);
}

/* Image-latent context tokens [Bc, 8, 8, D] from frame 0 of every video (docs/model.md §3). */
static I2vTensor image_context_tokens(const I2vUnet *u, I2vStream *st, const I2vUnetCond *c,
                                      const I2vTensor *latents) {
  int64_t B = c->batch, in = u->in_channels, P = IMAGE_CONTEXT_POOL;
  I2vTensor first = scratch_map(st, B, c->h, c->w, in);
  for (int64_t b = 0; b < B; b++) {
    I2vTensor dst = i2v_tensor_rows(&first, b, 1), src = i2v_tensor_rows(latents, b * c->frames, 1);
    i2v_op_copy(st, &dst, &src);
  }
  I2vTensor c1 = scratch_map(st, B, c->h, c->w, 8 * in);
  conv_strided(st, &c1, &first, &u->image_context[0], 1);
  i2v_op_unary(st, &c1, &c1, I2V_ACT_SILU);
  I2vTensor pooled = scratch_map(st, B, P, P, 8 * in);
  i2v_op_adaptive_avg_pool(st, &pooled, &c1);
  I2vTensor c2 = scratch_map(st, B, (P + 1) / 2, (P + 1) / 2, 16 * in);
  conv_strided(st, &c2, &pooled, &u->image_context[1], 2);
  i2v_op_unary(st, &c2, &c2, I2V_ACT_SILU);
  I2vTensor c3 = scratch_map(st, B, (P + 3) / 4, (P + 3) / 4, u->ctx_dim);
  conv_strided(st, &c3, &c2, &u->image_context[2], 2);
  i2v_tap(st, "image_latents_context_embedding", &c3);
  return c3;
}

/* The image-latent concat branch (docs/model.md §3) into c->image_branch. */
static void image_branch(const I2vUnet *u, I2vStream *st, I2vUnetCond *c,
                         const I2vTensor *latents) {
  int64_t N = c->batch * c->frames, in = u->in_channels, hw = c->h * c->w;
  size_t mark = i2v_scratch_mark(st);
  I2vTensor a = scratch_map(st, N, c->h, c->w, 4 * in), b = scratch_map(st, N, c->h, c->w, 4 * in);
  conv_strided(st, &a, latents, &u->image_proj_in[0], 1);
  i2v_op_unary(st, &a, &a, I2V_ACT_SILU);
  conv_strided(st, &b, &a, &u->image_proj_in[1], 1);
  i2v_op_unary(st, &b, &b, I2V_ACT_SILU);
  int64_t xs[4] = {N, c->h, c->w, in};
  I2vTensor x = i2v_tensor_view(&c->image_branch, 4, xs);
  conv_strided(st, &x, &b, &u->image_proj_in[2], 1);
  i2v_tap(st, "image_latents_proj_in", &x);
  /* Temporal encoder over the F frames of each video pixel: u = x + Attn(LN(x)); y = u + FF(u)
   * with no LayerNorm before the FF. */
  int64_t rows = N * hw, inner = ENCODER_HEADS * in;
  int64_t ns[2] = {rows, in}, qs[2] = {rows, inner}, fs[2] = {rows, 4 * in};
  I2vTensor x2 = i2v_tensor_view(&x, 2, ns);
  I2vTensor n = i2v_scratch_tensor(st, 2, ns);
  i2v_op_layer_norm(st, &n, &x2, &u->enc_norm.gamma, &u->enc_norm.beta, ENCODER_LN_EPS);
  I2vTensor q = i2v_scratch_tensor(st, 2, qs), k = i2v_scratch_tensor(st, 2, qs),
            v = i2v_scratch_tensor(st, 2, qs), o = i2v_scratch_tensor(st, 2, qs);
  i2v_op_linear(st, &q, &n, &u->enc_q.w, NULL, I2V_ACT_NONE, FALSE);
  i2v_op_linear(st, &k, &n, &u->enc_k.w, NULL, I2V_ACT_NONE, FALSE);
  i2v_op_linear(st, &v, &n, &u->enc_v.w, NULL, I2V_ACT_NONE, FALSE);
  I2vSeqs seqs = i2v_seqs_temporal(c->batch, c->frames, hw);
  i2v_attention(st, &o, &q, &k, &v, &seqs, &seqs, 1, ENCODER_HEADS, (int)in);
  i2v_op_linear(st, &x2, &o, &u->enc_out.w, &u->enc_out.b, I2V_ACT_NONE, TRUE);
  I2vTensor h = i2v_scratch_tensor(st, 2, fs);
  i2v_op_linear(st, &h, &x2, &u->enc_ff_1.w, &u->enc_ff_1.b, I2V_ACT_GELU, FALSE);
  i2v_op_linear(st, &x2, &h, &u->enc_ff_2.w, &u->enc_ff_2.b, I2V_ACT_NONE, TRUE);
  int64_t ts[4] = {c->batch, c->frames, hw, in};
  I2vTensor tv = i2v_tensor_view(&x, 4, ts);
  i2v_tap(st, "image_latents_temporal_encoder", &tv);
  i2v_scratch_release(st, mark);
}

/* The 145-token context [Bc·L, D] = [text | image-latent tokens | CLIP image tokens] per video
 * and from it the cross-attention K/V of every spatial transformer (docs/model.md §3). */
static void context_kv(const I2vUnet *u, I2vStream *st, I2vUnetCond *c, const I2vTensor *text,
                       const I2vTensor *image_emb, const I2vTensor *latents) {
  int64_t B = c->batch, D = u->ctx_dim, T = text->shape[1];
  size_t mark = i2v_scratch_mark(st);
  I2vTensor img = image_context_tokens(u, st, c, latents);
  int64_t G = img.shape[1] * img.shape[2], K = u->in_channels;
  int64_t es[2] = {B, u->temb_dim}, cs[2] = {B, K * D};
  I2vTensor e1 = i2v_scratch_tensor(st, 2, es), clip = i2v_scratch_tensor(st, 2, cs);
  i2v_op_linear(st, &e1, image_emb, &u->ctx_emb_1.w, &u->ctx_emb_1.b, I2V_ACT_SILU, FALSE);
  i2v_op_linear(st, &clip, &e1, &u->ctx_emb_2.w, &u->ctx_emb_2.b, I2V_ACT_NONE, FALSE);
  i2v_tap(st, "context_embedding", &clip);
  int64_t xs[2] = {B * c->ctx_len, D}, ts[2] = {B * T, D}, gs[2] = {B * G, D}, ks[2] = {B * K, D};
  I2vTensor ctx = i2v_scratch_tensor(st, 2, xs);
  const I2vTensor parts[3] = {i2v_tensor_view(text, 2, ts), i2v_tensor_view(&img, 2, gs),
                              i2v_tensor_view(&clip, 2, ks)};
  const int64_t lens[3] = {T, G, K};
  for (int64_t b = 0; b < B; b++) {
    int64_t row = b * c->ctx_len;
    for (int p = 0; p < 3; p++) {
      I2vTensor dst = i2v_tensor_rows(&ctx, row, lens[p]);
      I2vTensor src = i2v_tensor_rows(&parts[p], b * lens[p], lens[p]);
      i2v_op_copy(st, &dst, &src);
      row += lens[p];
    }
  }
  for (guint i = 0; i < u->spatial->len; i++) {
    const I2vTransformerBlock *blk = &((I2vTransformer *)g_ptr_array_index(u->spatial, i))->block;
    i2v_op_linear(st, &c->kv[2 * i], &ctx, &blk->k2.w, NULL, I2V_ACT_NONE, FALSE);
    i2v_op_linear(st, &c->kv[2 * i + 1], &ctx, &blk->v2.w, NULL, I2V_ACT_NONE, FALSE);
  }
  i2v_scratch_release(st, mark);
}

static gboolean shape_fail(GError **error, const char *what, const I2vTensor *t,
                           const char *expected) {
  char buf[96];
  g_set_error(error, I2V_ERROR, I2V_ERROR_SHAPE, "unet: %s has shape %s, expected %s", what,
              i2v_shape_format(t->ndim, t->shape, buf, sizeof buf), expected);
  return FALSE;
}

static gboolean check_inputs(const I2vUnet *u, const I2vTensor *text, const I2vTensor *image_emb,
                             const I2vTensor *latents, GError **error) {
  char exp[96];
  g_snprintf(exp, sizeof exp, "[B, F, h, w, %d]", u->in_channels);
  if (latents->ndim != 5 || latents->shape[4] != u->in_channels)
    return shape_fail(error, "image_latents", latents, exp);
  int64_t B = latents->shape[0], D = u->ctx_dim;
  g_snprintf(exp, sizeof exp, "[%" G_GINT64_FORMAT ", T, %" G_GINT64_FORMAT "]", B, D);
  if (text->ndim != 3 || text->shape[0] != B || text->shape[2] != D)
    return shape_fail(error, "text context", text, exp);
  g_snprintf(exp, sizeof exp, "[%" G_GINT64_FORMAT ", 1, %" G_GINT64_FORMAT "]", B, D);
  if (image_emb->shape[0] != B || i2v_tensor_numel(image_emb) != B * D)
    return shape_fail(error, "image embedding", image_emb, exp);
  return TRUE;
}

/* Tokens of the image-latent context: the pool, then two stride-2 convs (image_context_tokens). */
static int64_t image_context_len(void) {
  int64_t side = (IMAGE_CONTEXT_POOL + 3) / 4;
  return side * side;
}

I2vUnetCond *i2v_unet_prepare(const I2vUnet *u, I2vStream *st, const I2vTensor *text_ctx,
                              const I2vTensor *image_emb, const I2vTensor *image_latents,
                              const int64_t *fps, GError **error) {
  if (!check_inputs(u, text_ctx, image_emb, image_latents, error) || !i2v_stream_check(st, error))
    return NULL;
  I2vUnetCond *c = g_new0(I2vUnetCond, 1);
  c->u = u;
  c->batch = image_latents->shape[0];
  c->frames = image_latents->shape[1];
  c->h = image_latents->shape[2];
  c->w = image_latents->shape[3];
  c->ctx_len = text_ctx->shape[1] + image_context_len() + u->in_channels;
  c->sinusoids = g_new(float, c->batch * u->sin_dim);
  c->steps = g_new(int64_t, c->batch);
  c->skips = g_new(I2vTensor, 1 + u->levels * (u->layers + 1));
  /* the condition's tensors first, below every temporary of the preparation */
  int64_t es[2] = {c->batch, u->temb_dim};
  c->fps_emb = i2v_scratch_tensor(st, 2, es);
  c->image_branch = i2v_scratch_tensor(st, 5, image_latents->shape);
  c->n_kv = 2 * (int)u->spatial->len;
  c->kv = g_new0(I2vTensor, c->n_kv);
  for (guint i = 0; i < u->spatial->len; i++) {
    const I2vTransformerBlock *blk = &((I2vTransformer *)g_ptr_array_index(u->spatial, i))->block;
    int64_t ks3[3] = {c->batch, c->ctx_len, blk->dim};
    c->kv[2 * i] = i2v_scratch_tensor(st, 3, ks3);
    c->kv[2 * i + 1] = i2v_scratch_tensor(st, 3, ks3);
  }
  int64_t ns[4] = {c->batch * c->frames, c->h, c->w, u->in_channels};
  int64_t is2[2] = {c->batch, u->ctx_dim};
  I2vTensor latents = i2v_tensor_view(image_latents, 4, ns);
  I2vTensor emb2 = i2v_tensor_view(image_emb, 2, is2);
  gboolean ok = embed_scalars(u, st, fps, c->batch, &u->fps_1, &u->fps_2, "time_proj.call1",
                              c->sinusoids, &c->fps_emb, error);
  if (ok) {
    i2v_tap(st, "fps_embedding", &c->fps_emb);
    context_kv(u, st, c, text_ctx, &emb2, &latents);
    image_branch(u, st, c, &latents);
  }
  if (!ok || !i2v_stream_check(st, error)) {
    i2v_unet_cond_free(c);
    return NULL;
  }
  return c;
}

/* ---- forward ---- */

/* Skip connections pushed by the down path, popped by the up path. */
typedef struct {
  I2vTensor *t;
  int n;
} SkipStack;

/* The resnet → temp_conv (→ spatial → temporal transformer) sequence of layer j; out is
 * allocated here, in place afterwards. */
static I2vTensor stage_layer(const I2vUnetRun *run, const UnetStage *s, int j, const I2vTensor *x) {
  I2vTensor out = scratch_map(run->st, x->shape[0], x->shape[1], x->shape[2], s->channels);
  i2v_resnet_forward(run->st, &s->resnets[j], x, FALSE, &run->emb_act, run->groups, RESNET_EPS,
                     &out);
  i2v_temporal_conv_forward(run->st, &s->temp_convs[j], run->batch, run->frames, run->groups, &out);
  if (s->cross) {
    i2v_transformer_forward(run, &s->attentions[j], &out);
    i2v_transformer_forward(run, &s->temp_attentions[j], &out);
  }
  return out;
}

static I2vTensor down_stage(const I2vUnetRun *run, const UnetStage *s, I2vTensor x,
                            SkipStack *skips) {
  for (int j = 0; j < s->n_layers; j++) {
    x = stage_layer(run, s, j, &x);
    skips->t[skips->n++] = x;
  }
  if (s->has_sampler) {
    /* 3×3 stride 2, symmetric pad 1 → ceil(n/2) */
    I2vTensor d =
        scratch_map(run->st, x.shape[0], (x.shape[1] + 1) / 2, (x.shape[2] + 1) / 2, s->channels);
    conv_strided(run->st, &d, &x, &s->sampler, 2);
    x = d;
    skips->t[skips->n++] = x;
  }
  return x;
}

/* Two buffers the up path alternates between, each as large as its largest feature map: every
 * up layer reads x from one and writes the other, so the path holds two maps, not all of its
 * outputs (the skips below them in the arena stay until the forward ends). */
typedef struct {
  I2vTensor buf[2];
} PingPong;

/* Elements of the largest map the up path writes: each stage's outputs at the size of the skips
 * it takes, and its upsampler's at the size of the next skip (skips popped as up_stage does). */
static int64_t up_path_elements(const I2vUnet *u, const SkipStack *skips) {
  int64_t most = 0;
  for (int i = 0, n = skips->n; i < u->levels; i++) {
    const UnetStage *s = &u->up[i];
    for (int j = 0; j < s->n_layers + s->has_sampler && n > 0; j++) {
      const I2vTensor *t = &skips->t[j < s->n_layers ? --n : n - 1];
      most = MAX(most, t->shape[0] * t->shape[1] * t->shape[2] * s->channels);
    }
  }
  return most;
}

static PingPong pingpong_new(I2vStream *st, int64_t elements) {
  PingPong pp;
  for (int i = 0; i < 2; i++) pp.buf[i] = i2v_scratch_tensor(st, 1, &elements);
  return pp;
}

/* A [n, h, w, c] map in the buffer of pp that does not hold x. */
static I2vTensor pingpong_other(const PingPong *pp, const I2vTensor *x, int64_t n, int64_t h,
                                int64_t w, int64_t c) {
  I2vTensor y = pp->buf[x->data == pp->buf[0].data ? 1 : 0];
  int64_t shape[4] = {n, h, w, c};
  i2v_tensor_set_shape(&y, y.dtype, 4, shape);
  return y;
}

static I2vTensor up_stage(const I2vUnetRun *run, const UnetStage *s, I2vTensor x, SkipStack *skips,
                          const PingPong *pp) {
  I2vStream *st = run->st;
  for (int j = 0; j < s->n_layers; j++) {
    const I2vTensor *skip = &skips->t[--skips->n];
    /* [current, skip] along channels; the concatenation is dropped after the resnet */
    I2vTensor out = pingpong_other(pp, &x, x.shape[0], x.shape[1], x.shape[2], s->channels);
    size_t mark = i2v_scratch_mark(st);
    I2vTensor cat =
        scratch_map(st, x.shape[0], x.shape[1], x.shape[2], x.shape[3] + skip->shape[3]);
    i2v_op_concat_last(st, &cat, &x, skip);
    i2v_resnet_forward(st, &s->resnets[j], &cat, TRUE, &run->emb_act, run->groups, RESNET_EPS,
                       &out);
    i2v_scratch_release(st, mark);
    i2v_temporal_conv_forward(run->st, &s->temp_convs[j], run->batch, run->frames, run->groups,
                              &out);
    if (s->cross) {
      i2v_transformer_forward(run, &s->attentions[j], &out);
      i2v_transformer_forward(run, &s->temp_attentions[j], &out);
    }
    x = out;
  }
  if (s->has_sampler && skips->n > 0) {
    /* nearest to the next skip's size: ×2, or the odd size diffusers forwards */
    const I2vTensor *next = &skips->t[skips->n - 1];
    I2vTensor up = pingpong_other(pp, &x, x.shape[0], next->shape[1], next->shape[2], x.shape[3]);
    i2v_op_upsample_nearest(st, &up, &x);
    I2vTensor y = pingpong_other(pp, &up, x.shape[0], next->shape[1], next->shape[2], s->channels);
    conv_strided(st, &y, &up, &s->sampler, 1);
    x = y;
  }
  return x;
}

static I2vTensor mid_stage(const I2vUnetRun *run, const UnetStage *s, const I2vTensor *x) {
  I2vTensor a = scratch_map(run->st, x->shape[0], x->shape[1], x->shape[2], s->channels);
  i2v_resnet_forward(run->st, &s->resnets[0], x, FALSE, &run->emb_act, run->groups, RESNET_EPS, &a);
  i2v_temporal_conv_forward(run->st, &s->temp_convs[0], run->batch, run->frames, run->groups, &a);
  i2v_transformer_forward(run, &s->attentions[0], &a);
  i2v_transformer_forward(run, &s->temp_attentions[0], &a);
  I2vTensor b = scratch_map(run->st, x->shape[0], x->shape[1], x->shape[2], s->channels);
  i2v_resnet_forward(run->st, &s->resnets[1], &a, FALSE, &run->emb_act, run->groups, RESNET_EPS,
                     &b);
  i2v_temporal_conv_forward(run->st, &s->temp_convs[1], run->batch, run->frames, run->groups, &b);
  return b;
}

/* emb_act = SiLU(time_embedding(t) + fps embedding) [Bc, temb] for the resnets. */
static gboolean time_embedding(const I2vUnet *u, I2vStream *st, const I2vUnetCond *c,
                               int64_t timestep, I2vTensor *emb_act, GError **error) {
  for (int64_t b = 0; b < c->batch; b++) c->steps[b] = timestep; /* broadcast to the batch */
  if (!embed_scalars(u, st, c->steps, c->batch, &u->time_1, &u->time_2, "time_proj.call0",
                     c->sinusoids, emb_act, error))
    return FALSE;
  i2v_tap(st, "time_embedding", emb_act);
  i2v_op_add(st, emb_act, emb_act, &c->fps_emb);
  i2v_op_unary(st, emb_act, emb_act, I2V_ACT_SILU);
  return TRUE;
}

static gboolean check_video(const I2vUnetCond *c, const I2vTensor *t, int64_t channels,
                            const char *what, GError **error) {
  int64_t want[5] = {c->batch, c->frames, c->h, c->w, channels};
  if (i2v_shape_equal(t->ndim, t->shape, 5, want)) return TRUE;
  char exp[96];
  return shape_fail(error, what, t, i2v_shape_format(5, want, exp, sizeof exp));
}

gboolean i2v_unet_forward(const I2vUnet *u, I2vStream *st, const I2vUnetCond *c,
                          const I2vTensor *sample, int64_t timestep, I2vTensor *out,
                          GError **error) {
  if (!check_video(c, sample, u->in_channels, "sample", error) ||
      !check_video(c, out, u->out_channels, "output", error) || !i2v_stream_check(st, error))
    return FALSE;
  if (out->data == sample->data) {
    g_set_error(error, I2V_ERROR, I2V_ERROR_INVALID, "unet: output must not alias the sample");
    return FALSE;
  }
  int64_t N = c->batch * c->frames, in = u->in_channels;
  size_t mark = i2v_scratch_mark(st);
  int64_t es[2] = {c->batch, u->temb_dim};
  I2vUnetRun run = {.st = st,
                    .groups = u->groups,
                    .batch = c->batch,
                    .frames = c->frames,
                    .emb_act = i2v_scratch_tensor(st, 2, es),
                    .kv = c->kv,
                    .ctx_len = c->ctx_len,
                    .chunk_frames = c->attention_chunk};
  if (!time_embedding(u, st, c, timestep, &run.emb_act, error)) {
    i2v_scratch_release(st, mark);
    return FALSE;
  }
  /* input: [noisy latents, processed image latents] on channels → conv_in → transformer_in
   */
  int64_t ms[4] = {N, c->h, c->w, in};
  I2vTensor s4 = i2v_tensor_view(sample, 4, ms), b4 = i2v_tensor_view(&c->image_branch, 4, ms);
  I2vTensor cat = scratch_map(st, N, c->h, c->w, 2 * in);
  i2v_op_concat_last(st, &cat, &s4, &b4);
  I2vTensor x = scratch_map(st, N, c->h, c->w, u->channels[0]);
  conv_strided(st, &x, &cat, &u->conv_in, 1);
  i2v_tap(st, "conv_in", &x);
  i2v_transformer_forward(&run, &u->transformer_in, &x);
  i2v_tap(st, "transformer_in", &x);

  SkipStack skips = {.t = c->skips, .n = 0};
  skips.t[skips.n++] = x;
  char name[32];
  for (int i = 0; i < u->levels; i++) {
    x = down_stage(&run, &u->down[i], x, &skips);
    g_snprintf(name, sizeof name, "down_blocks.%d", i);
    i2v_tap(st, name, &x);
  }
  x = mid_stage(&run, &u->mid, &x);
  i2v_tap(st, "mid_block", &x);
  PingPong pp = pingpong_new(st, up_path_elements(u, &skips));
  for (int i = 0; i < u->levels; i++) {
    x = up_stage(&run, &u->up[i], x, &skips, &pp);
    g_snprintf(name, sizeof name, "up_blocks.%d", i);
    i2v_tap(st, name, &x);
  }

  /* head: GroupNorm (per frame) → SiLU → conv_out */
  I2vTensor norm = i2v_scratch_tensor(st, 4, x.shape);
  i2v_op_group_norm(st, &norm, &x, &u->norm_out.gamma, &u->norm_out.beta, N, u->groups,
                    NORM_OUT_EPS, I2V_ACT_NONE);
  i2v_tap(st, "conv_norm_out", &norm);
  i2v_op_unary(st, &norm, &norm, I2V_ACT_SILU);
  int64_t os[4] = {N, c->h, c->w, u->out_channels};
  I2vTensor o4 = i2v_tensor_view(out, 4, os);
  conv_strided(st, &o4, &norm, &u->conv_out, 1);
  i2v_tap(st, "conv_out", &o4);
  i2v_scratch_release(st, mark);
  return i2v_stream_check(st, error);
}

/* ---- layout helpers ---- */

gboolean i2v_unet_upload_ncfhw(I2vStream *st, const float *x, int64_t b, int64_t c, int64_t f,
                               int64_t h, int64_t w, I2vTensor *out, GError **error) {
  int64_t src_shape[5] = {b, c, f, h, w}, dst_shape[5] = {b, f, h, w, c};
  const int perm[5] = {0, 2, 3, 4, 1};
  *out = i2v_scratch_tensor(st, 5, dst_shape);
  size_t mark = i2v_scratch_mark(st);
  I2vTensor tmp = i2v_scratch_tensor(st, 5, src_shape);
  gboolean ok = i2v_tensor_upload_f32(st, &tmp, x, error);
  if (ok) i2v_op_permute(st, out, &tmp, perm);
  i2v_scratch_release(st, mark);
  return ok && i2v_stream_check(st, error);
}

gboolean i2v_unet_download_ncfhw(I2vStream *st, const I2vTensor *t, float *x, GError **error) {
  if (t->ndim != 5) return shape_fail(error, "video tensor", t, "[B, F, h, w, C]");
  int64_t dst_shape[5] = {t->shape[0], t->shape[4], t->shape[1], t->shape[2], t->shape[3]};
  const int perm[5] = {0, 4, 1, 2, 3};
  size_t mark = i2v_scratch_mark(st);
  I2vTensor tmp = i2v_scratch_tensor(st, 5, dst_shape);
  i2v_op_permute(st, &tmp, t, perm);
  gboolean ok = i2v_tensor_download_f32(st, &tmp, x, error);
  i2v_scratch_release(st, mark);
  return ok;
}
