/* The KL autoencoder of I2VGen-XL (diffusers AutoencoderKL with DownEncoderBlock2D /
 * UpDecoderBlock2D blocks), written once against the op table.
 *
 * Encoder: conv_in → down blocks (resnets, then a stride-2 down-sampler except on the last) →
 * mid block (resnet, attention, resnet) → GroupNorm+SiLU → conv_out → quant_conv = moments.
 * Decoder: post_quant_conv → conv_in → mid block → up blocks (layers_per_block+1 resnets, then a
 * nearest ×2 up-sampler except on the last) → GroupNorm+SiLU → conv_out.
 *
 * Activations flow through two scratch buffers sized for the largest feature map (see Flow), so
 * a 704×1280 frame needs two full-resolution activations plus one resnet temporary. */
#include "vae.h"

#include "ops.h"

#include <math.h>
#include <string.h>

#include <i2v/error.h>

#include "attention.h"
#include "resnet.h"

#define VAE_NORM_EPS 1e-6f /* every GroupNorm of this VAE */

/* Single-head spatial self-attention with biases, GroupNorm on the input, residual added. */
typedef struct {
  I2vNorm norm;
  I2vLinear q, k, v, out;
  int channels;
} Attention;

typedef struct {
  I2vResnet res0;
  Attention attn;
  I2vResnet res1;
} MidBlock;

/* A down (encoder) or up (decoder) block: resnets, then an optional resampling conv. */
typedef struct {
  I2vResnet *resnets;
  int n_resnets;
  gboolean has_sampler;
  I2vLinear sampler; /* downsamplers.0.conv / upsamplers.0.conv (3×3) */
} Block;

struct I2vVae {
  int n_levels, layers_per_block, latent, in_channels, out_channels, groups;
  int *block_out; /* block_out_channels, n_levels entries */
  double scaling_factor;
  GPtrArray *params; /* every weight */

  I2vLinear enc_conv_in, enc_conv_out, quant_conv;
  Block *down;
  MidBlock enc_mid;
  I2vNorm enc_norm_out;

  I2vLinear post_quant_conv, dec_conv_in, dec_conv_out;
  MidBlock dec_mid;
  Block *up;
  I2vNorm dec_norm_out;
};

/* ---- loading ---- */

static void load_mid(I2vLoader *ld, MidBlock *mid, const char *prefix, int c) {
  char *p = g_strdup_printf("%s.resnets.0", prefix);
  i2v_load_resnet(ld, &mid->res0, p, c, c, 0);
  g_free(p), p = g_strdup_printf("%s.resnets.1", prefix);
  i2v_load_resnet(ld, &mid->res1, p, c, c, 0);
  g_free(p), p = g_strdup_printf("%s.attentions.0", prefix);
  Attention *a = &mid->attn;
  a->channels = c;
  i2v_load_norm(ld, &a->norm, p, "group_norm", c);
  i2v_load_linear(ld, &a->q, p, "to_q", c, c, TRUE);
  i2v_load_linear(ld, &a->k, p, "to_k", c, c, TRUE);
  i2v_load_linear(ld, &a->v, p, "to_v", c, c, TRUE);
  i2v_load_linear(ld, &a->out, p, "to_out.0", c, c, TRUE);
  g_free(p);
}

/* A block of n resnets from cin to cout, with an optional sampler conv (cout → cout, 3×3). */
static void load_block(I2vLoader *ld, Block *blk, const char *prefix, int n, int cin, int cout,
                       gboolean has_sampler, const char *sampler_name) {
  blk->n_resnets = n;
  blk->resnets = g_new0(I2vResnet, n);
  for (int j = 0; j < n; j++) {
    char *p = g_strdup_printf("%s.resnets.%d", prefix, j);
    i2v_load_resnet(ld, &blk->resnets[j], p, j == 0 ? cin : cout, cout, 0);
    g_free(p);
  }
  blk->has_sampler = has_sampler;
  if (has_sampler) {
    char *p = g_strdup_printf("%s.%s.0", prefix, sampler_name);
    i2v_load_conv(ld, &blk->sampler, p, "conv", cout, cout, 3, TRUE);
    g_free(p);
  }
}

/* Every size of the VAE from its config (ranges: docs/model.md). */
static gboolean read_config(I2vVae *m, const I2vConfig *c, GError **error) {
  static const char *const silu[] = {"silu", NULL};
  int act, n = 0;
  char **down = NULL, **up = NULL;
  gboolean ok = i2v_config_ints(c, "block_out_channels", 8, 1, 16384, &m->block_out, &n, error) &&
                i2v_config_int(c, "layers_per_block", 1, 16, &m->layers_per_block, error) &&
                i2v_config_int(c, "latent_channels", 1, 64, &m->latent, error) &&
                /* the interface speaks of RGB images: [1, 3, H, W] in and out */
                i2v_config_int(c, "in_channels", 3, 3, &m->in_channels, error) &&
                i2v_config_int(c, "out_channels", 3, 3, &m->out_channels, error) &&
                i2v_config_int(c, "norm_num_groups", 1, 1024, &m->groups, error) &&
                i2v_config_double(c, "scaling_factor", 1e-4, 1e4, &m->scaling_factor, error) &&
                /* GroupNorm+SiLU is the only activation the fused norm op offers */
                i2v_config_choice(c, "act_fn", "silu", silu, &act, error) &&
                i2v_config_strings(c, "down_block_types", n, &down, error) &&
                i2v_config_strings(c, "up_block_types", n, &up, error);
  m->n_levels = n;
  for (int i = 0; ok && i < n; i++) {
    if (strcmp(down[i], "DownEncoderBlock2D") != 0 || strcmp(up[i], "UpDecoderBlock2D") != 0) {
      gboolean d = strcmp(down[i], "DownEncoderBlock2D") != 0;
      g_set_error(error, I2V_ERROR, I2V_ERROR_CONFIG, "%s: %s[%d] is \"%s\", expected \"%s\"",
                  c->file, d ? "down_block_types" : "up_block_types", i, d ? down[i] : up[i],
                  d ? "DownEncoderBlock2D" : "UpDecoderBlock2D");
      ok = FALSE;
    } else if (m->block_out[i] % m->groups != 0) {
      g_set_error(error, I2V_ERROR, I2V_ERROR_CONFIG,
                  "%s: block_out_channels[%d] is %d, expected a multiple of norm_num_groups %d",
                  c->file, i, m->block_out[i], m->groups);
      ok = FALSE;
    }
  }
  g_strfreev(down);
  g_strfreev(up);
  return ok;
}

/* The encoder mirrors diffusers' Encoder: block i maps block_out[i-1] (block_out[0] for i = 0)
 * to block_out[i]; the last block has no down-sampler. */
static void load_encoder(I2vLoader *ld, I2vVae *m) {
  int n = m->n_levels, top = m->block_out[n - 1];
  i2v_load_conv(ld, &m->enc_conv_in, "encoder", "conv_in", m->block_out[0], m->in_channels, 3,
                TRUE);
  m->down = g_new0(Block, n);
  for (int i = 0; i < n; i++) {
    char *p = g_strdup_printf("encoder.down_blocks.%d", i);
    int cin = m->block_out[i > 0 ? i - 1 : 0];
    load_block(ld, &m->down[i], p, m->layers_per_block, cin, m->block_out[i], i < n - 1,
               "downsamplers");
    g_free(p);
  }
  load_mid(ld, &m->enc_mid, "encoder.mid_block", top);
  i2v_load_norm(ld, &m->enc_norm_out, "encoder", "conv_norm_out", top);
  i2v_load_conv(ld, &m->enc_conv_out, "encoder", "conv_out", 2 * m->latent, top, 3, TRUE);
  i2v_load_conv(ld, &m->quant_conv, "quant_conv", NULL, 2 * m->latent, 2 * m->latent, 1, TRUE);
}

/* The decoder walks block_out in reverse: up block i maps the previous block's channels to
 * block_out[n-1-i]; the last block has no up-sampler. */
static void load_decoder(I2vLoader *ld, I2vVae *m) {
  int n = m->n_levels, top = m->block_out[n - 1];
  i2v_load_conv(ld, &m->post_quant_conv, "post_quant_conv", NULL, m->latent, m->latent, 1, TRUE);
  i2v_load_conv(ld, &m->dec_conv_in, "decoder", "conv_in", top, m->latent, 3, TRUE);
  load_mid(ld, &m->dec_mid, "decoder.mid_block", top);
  m->up = g_new0(Block, n);
  for (int i = 0; i < n; i++) {
    char *p = g_strdup_printf("decoder.up_blocks.%d", i);
    int cin = m->block_out[n - 1 - MAX(i - 1, 0)];
    load_block(ld, &m->up[i], p, m->layers_per_block + 1, cin, m->block_out[n - 1 - i], i < n - 1,
               "upsamplers");
    g_free(p);
  }
  i2v_load_norm(ld, &m->dec_norm_out, "decoder", "conv_norm_out", m->block_out[0]);
  i2v_load_conv(ld, &m->dec_conv_out, "decoder", "conv_out", m->out_channels, m->block_out[0], 3,
                TRUE);
}

static void load_weights(I2vLoader *ld, void *net) {
  load_encoder(ld, net);
  load_decoder(ld, net);
}

I2vVae *i2v_vae_load(I2vModelDir *md, I2vBackend *be, GError **error) {
  I2vConfig c;
  if (!i2v_model_dir_config(md, "vae", &c, error)) return NULL;
  I2vVae *m = g_new0(I2vVae, 1);
  m->params = g_ptr_array_new();
  gboolean ok = read_config(m, &c, error);
  i2v_config_clear(&c);
  if (!ok || !i2v_load_component(md, "vae", be, m->params, load_weights, m, error)) {
    i2v_vae_free(m);
    return NULL;
  }
  return m;
}

static void free_block(Block *b) {
  if (b != NULL) g_free(b->resnets);
}

void i2v_vae_free(I2vVae *m) {
  if (m == NULL) return;
  i2v_params_free(m->params);
  for (int i = 0; m->down != NULL && i < m->n_levels; i++) free_block(&m->down[i]);
  for (int i = 0; m->up != NULL && i < m->n_levels; i++) free_block(&m->up[i]);
  g_free(m->down);
  g_free(m->up);
  g_free(m->block_out);
  g_free(m);
}

int i2v_vae_latent_channels(const I2vVae *m) {
  return m->latent;
}

int i2v_vae_downscale(const I2vVae *m) {
  return 1 << (m->n_levels - 1);
}

double i2v_vae_scaling_factor(const I2vVae *m) {
  return m->scaling_factor;
}

/* ---- forward ---- */

/* Two scratch buffers, each as large as the largest feature map of a pass: every stage reads the
 * current activation x from one and writes its result into the other. */
typedef struct {
  I2vStream *st;
  I2vTensor buf[2];
  I2vTensor x; /* the current activation: a view into one of buf */
} Flow;

static Flow flow_new(I2vStream *st, int64_t max_elems) {
  Flow f = {.st = st};
  for (int i = 0; i < 2; i++) f.buf[i] = i2v_scratch_tensor(st, 1, &max_elems);
  return f;
}

/* A view of the given shape into the buffer that does not hold the current activation. */
static I2vTensor flow_other(const Flow *f, int ndim, const int64_t *shape) {
  const I2vTensor *other = f->x.data == f->buf[0].data ? &f->buf[1] : &f->buf[0];
  I2vTensor y = *other;
  i2v_tensor_set_shape(&y, other->dtype, ndim, shape);
  if (i2v_tensor_numel(&y) > i2v_tensor_numel(other)) { /* a sizing bug, not bad input */
    i2v_stream_failf(f->st,
                     "vae: a %" G_GINT64_FORMAT "-element activation exceeds the %" G_GINT64_FORMAT
                     "-element flow buffer",
                     i2v_tensor_numel(&y), i2v_tensor_numel(other));
    y.data = NULL;
  }
  return y;
}

/* A [1,h,w,c] feature map in the other buffer: where a stage writes its result. */
static I2vTensor flow_target(const Flow *f, int64_t h, int64_t w, int64_t c) {
  int64_t shape[4] = {1, h, w, c};
  return flow_other(f, 4, shape);
}

static int64_t chan(const I2vTensor *t) {
  return t->shape[3];
}

/* y = conv(x) with the usual "same" padding of a k×k kernel, stride 1. */
static void conv_same(I2vStream *st, I2vTensor *y, const I2vTensor *x, const I2vLinear *c,
                      gboolean accumulate) {
  int p = (int)c->w.shape[1] / 2; /* [Co, k, k, Ci] */
  I2vConvParams cp = {1, p, p, p, p};
  i2v_op_conv2d(st, y, x, &c->w, &c->b, &cp, accumulate);
}

/* Replaces the current activation by conv(x), written to the other buffer. */
static void flow_conv(Flow *f, const I2vLinear *c) {
  I2vTensor y = flow_target(f, f->x.shape[1], f->x.shape[2], c->w.shape[0]);
  conv_same(f->st, &y, &f->x, c, FALSE);
  f->x = y;
}

/* A resnet into the other buffer; x's buffer is free afterwards, so the block may overwrite it. */
static void resnet_forward(const I2vVae *m, Flow *f, const I2vResnet *r) {
  I2vTensor out = flow_target(f, f->x.shape[1], f->x.shape[2], r->cout);
  i2v_resnet_forward(f->st, r, &f->x, TRUE, NULL, m->groups, VAE_NORM_EPS, &out);
  f->x = out;
}

/* x + to_out(softmax(q·kᵀ/√C)·v) over the h·w tokens of GroupNorm(x), one head of width C. */
static void attention_forward(const I2vVae *m, Flow *f, const Attention *a) {
  I2vStream *st = f->st;
  int64_t tokens = f->x.shape[1] * f->x.shape[2], c = a->channels;
  int64_t seq[3] = {1, tokens, c};
  I2vTensor x = i2v_tensor_view(&f->x, 3, seq);
  I2vTensor out = flow_target(f, f->x.shape[1], f->x.shape[2], c);
  size_t mark = i2v_scratch_mark(st);
  I2vTensor normed = i2v_scratch_tensor(st, 3, seq);
  I2vTensor q = i2v_scratch_tensor(st, 3, seq);
  I2vTensor k = i2v_scratch_tensor(st, 3, seq);
  I2vTensor v = i2v_scratch_tensor(st, 3, seq);
  I2vTensor mixed = i2v_scratch_tensor(st, 3, seq);
  i2v_op_group_norm(st, &normed, &x, &a->norm.gamma, &a->norm.beta, 1, m->groups, VAE_NORM_EPS,
                    I2V_ACT_NONE);
  i2v_op_linear(st, &q, &normed, &a->q.w, &a->q.b, I2V_ACT_NONE, FALSE);
  i2v_op_linear(st, &k, &normed, &a->k.w, &a->k.b, I2V_ACT_NONE, FALSE);
  i2v_op_linear(st, &v, &normed, &a->v.w, &a->v.b, I2V_ACT_NONE, FALSE);
  I2vSeqs seqs = i2v_seqs_spatial(1, tokens);
  i2v_attention(st, &mixed, &q, &k, &v, &seqs, &seqs, 1, 1, (int)c);
  I2vTensor out_seq = i2v_tensor_view(&out, 3, seq);
  i2v_op_copy(st, &out_seq, &x);
  i2v_op_linear(st, &out_seq, &mixed, &a->out.w, &a->out.b, I2V_ACT_NONE, TRUE);
  i2v_scratch_release(st, mark);
  f->x = out;
}

static void mid_forward(const I2vVae *m, Flow *f, const MidBlock *mid) {
  resnet_forward(m, f, &mid->res0);
  attention_forward(m, f, &mid->attn);
  resnet_forward(m, f, &mid->res1);
}

/* diffusers Downsample2D with padding 0: zero-pad right and bottom by one, 3×3 stride 2. */
static void downsample_forward(Flow *f, const I2vLinear *c) {
  I2vConvParams cp = {.stride = 2, .pad_bottom = 1, .pad_right = 1};
  int64_t h = (f->x.shape[1] + 1 - 3) / 2 + 1, w = (f->x.shape[2] + 1 - 3) / 2 + 1;
  I2vTensor y = flow_target(f, h, w, c->w.shape[0]);
  i2v_op_conv2d(f->st, &y, &f->x, &c->w, &c->b, &cp, FALSE);
  f->x = y;
}

/* diffusers Upsample2D: nearest ×2 into the other buffer, then a 3×3 conv back. */
static void upsample_forward(Flow *f, const I2vLinear *c) {
  I2vTensor big = flow_target(f, 2 * f->x.shape[1], 2 * f->x.shape[2], chan(&f->x));
  i2v_op_upsample_nearest(f->st, &big, &f->x);
  f->x = big;
  flow_conv(f, c);
}

static void block_forward(const I2vVae *m, Flow *f, const Block *b, gboolean down) {
  for (int j = 0; j < b->n_resnets; j++) resnet_forward(m, f, &b->resnets[j]);
  if (b->has_sampler) {
    if (down)
      downsample_forward(f, &b->sampler);
    else
      upsample_forward(f, &b->sampler);
  }
}

/* GroupNorm + SiLU in place, then conv_out. */
static void norm_out_forward(const I2vVae *m, Flow *f, const I2vNorm *n,
                             const I2vLinear *conv_out) {
  i2v_op_group_norm(f->st, &f->x, &f->x, &n->gamma, &n->beta, 1, m->groups, VAE_NORM_EPS,
                    I2V_ACT_SILU);
  flow_conv(f, conv_out);
}

static void tap_indexed(I2vStream *st, const char *prefix, int i, const I2vTensor *t) {
  if (!i2v_stream_tapping(st)) return;
  char *name = g_strdup_printf("%s.%d", prefix, i);
  i2v_tap(st, name, t);
  g_free(name);
}

/* Uploads host NCHW [1,c,h,w] into the current activation as NHWC. */
static void flow_load_nchw(I2vStream *st, Flow *f, const float *host, int64_t c, int64_t h,
                           int64_t w) {
  size_t mark = i2v_scratch_mark(st);
  int64_t shape[4] = {1, c, h, w};
  I2vTensor nchw = i2v_scratch_tensor(st, 4, shape);
  GError *err = NULL;
  if (nchw.data != NULL && !i2v_tensor_upload_f32(st, &nchw, host, &err)) i2v_stream_fail(st, err);
  static const int to_nhwc[4] = {0, 2, 3, 1};
  I2vTensor y = flow_target(f, h, w, c);
  i2v_op_permute(st, &y, &nchw, to_nhwc);
  i2v_scratch_release(st, mark);
  f->x = y;
}

/* Downloads the current activation (NHWC) as host NCHW. */
static gboolean flow_store_nchw(I2vStream *st, const Flow *f, float *host, GError **error) {
  int64_t shape[4] = {1, chan(&f->x), f->x.shape[1], f->x.shape[2]};
  static const int to_nchw[4] = {0, 3, 1, 2};
  I2vTensor y = flow_other(f, 4, shape);
  i2v_op_permute(st, &y, &f->x, to_nchw);
  return i2v_tensor_download_f32(st, &y, host, error);
}

/* Elements of the largest feature map a pass holds in a Flow buffer for an image of
 * height × width. At level l (resolution 2^-l) the encoder also holds the block_out[l-1]
 * channels coming from the down-sampler above, the decoder the block_out[l+1] channels coming
 * from the up-sampler below. */
static int64_t largest_activation(const I2vVae *m, int64_t height, int64_t width,
                                  gboolean decoder) {
  int n = m->n_levels;
  int64_t most = MAX(m->in_channels, m->out_channels) * height * width;
  most = MAX(most, 2 * m->latent * (height >> (n - 1)) * (width >> (n - 1)));
  for (int l = 0; l < n; l++) {
    int from = decoder ? l + 1 : l - 1;
    int64_t c = MAX(m->block_out[l], m->block_out[CLAMP(from, 0, n - 1)]);
    most = MAX(most, c * (height >> l) * (width >> l));
  }
  return most;
}

gboolean i2v_vae_encode(const I2vVae *m, I2vStream *st, const float *x, int height, int width,
                        float *moments, GError **error) {
  int s = i2v_vae_downscale(m);
  if (height < s || width < s || height % s != 0 || width % s != 0) {
    g_set_error(error, I2V_ERROR, I2V_ERROR_INVALID,
                "VAE encode: image size %dx%d (height x width) must be positive multiples of the "
                "VAE downscale factor %d",
                height, width, s);
    return FALSE;
  }
  size_t mark = i2v_scratch_mark(st);
  Flow f = flow_new(st, largest_activation(m, height, width, FALSE));
  flow_load_nchw(st, &f, x, m->in_channels, height, width);
  flow_conv(&f, &m->enc_conv_in);
  for (int i = 0; i < m->n_levels; i++) {
    block_forward(m, &f, &m->down[i], TRUE);
    tap_indexed(st, "encoder.down_blocks", i, &f.x);
  }
  mid_forward(m, &f, &m->enc_mid);
  i2v_tap(st, "encoder.mid_block", &f.x);
  norm_out_forward(m, &f, &m->enc_norm_out, &m->enc_conv_out);
  i2v_tap(st, "encoder.conv_out", &f.x);
  flow_conv(&f, &m->quant_conv);
  gboolean ok = flow_store_nchw(st, &f, moments, error);
  i2v_scratch_release(st, mark);
  return ok;
}

/* Decodes one latent [1, latent, h, w] (host NCHW) to out [1, out_channels, h·s, w·s]. */
static gboolean decode_one(const I2vVae *m, I2vStream *st, const float *z, int h, int w, float *out,
                           GError **error) {
  int s = i2v_vae_downscale(m);
  size_t mark = i2v_scratch_mark(st);
  Flow f = flow_new(st, largest_activation(m, (int64_t)h * s, (int64_t)w * s, TRUE));
  flow_load_nchw(st, &f, z, m->latent, h, w);
  flow_conv(&f, &m->post_quant_conv);
  i2v_tap(st, "post_quant_conv", &f.x);
  flow_conv(&f, &m->dec_conv_in);
  i2v_tap(st, "decoder.conv_in", &f.x);
  mid_forward(m, &f, &m->dec_mid);
  i2v_tap(st, "decoder.mid_block", &f.x);
  for (int i = 0; i < m->n_levels; i++) {
    block_forward(m, &f, &m->up[i], FALSE);
    tap_indexed(st, "decoder.up_blocks", i, &f.x);
  }
  norm_out_forward(m, &f, &m->dec_norm_out, &m->dec_conv_out);
  gboolean ok = flow_store_nchw(st, &f, out, error);
  i2v_scratch_release(st, mark);
  return ok;
}

/* The starts of the tiles of tile latent pixels that cover len, neighbours sharing at least
 * overlap: every tile whole, the last one flush with the end (so it may share more). Returns
 * their number; starts holds len + 1 entries. */
static int tile_starts(int len, int tile, int overlap, int *starts) {
  int n = 0;
  for (int p = 0;; p += tile - overlap) {
    starts[n++] = MIN(p, len - tile);
    if (p + tile >= len) return n;
  }
}

/* The blend weight of each of the n output pixels of a tile along one axis: a linear ramp up
 * over the before·s pixels it shares with the previous tile and down over the after·s it shares
 * with the next, so that two tiles' weights sum to 1 across their overlap. */
static void tile_ramp(float *wt, int64_t n, int s, int before, int after) {
  for (int64_t i = 0; i < n; i++) {
    double w = 1;
    if (before > 0) w = MIN(w, (i + 0.5) / ((double)before * s));
    if (after > 0) w = MIN(w, (n - i - 0.5) / ((double)after * s));
    wt[i] = (float)w;
  }
}

/* decode_one in tiles of tile × tile latent pixels (diffusers' tiled VAE decode, with a weighted
 * linear blend over the overlaps): device memory is that of one tile. The seams differ from the
 * whole decode, as the decoder's GroupNorms and mid-block attention see one tile at a time. */
static gboolean decode_tiled(const I2vVae *m, I2vStream *st, const float *z, int h, int w, int tile,
                             int overlap, float *out, GError **error) {
  int s = i2v_vae_downscale(m), L = m->latent, C = m->out_channels;
  int th = MIN(tile, h), tw = MIN(tile, w);
  int64_t W = (int64_t)w * s, HW = (int64_t)h * s * W, TH = (int64_t)th * s, TW = (int64_t)tw * s;
  int *ys = g_new(int, h + 1), *xs = g_new(int, w + 1);
  int ny = tile_starts(h, th, MIN(overlap, th - 1), ys);
  int nx = tile_starts(w, tw, MIN(overlap, tw - 1), xs);
  float *zt = g_new(float, (int64_t)L *th *tw), *ot = g_new(float, C *TH *TW);
  float *wy = g_new(float, TH), *wx = g_new(float, TW), *wsum = g_new0(float, HW);
  memset(out, 0, (size_t)(C * HW) * sizeof(float));
  gboolean ok = TRUE;
  for (int ty = 0; ok && ty < ny; ty++) {
    tile_ramp(wy, TH, s, ty > 0 ? ys[ty - 1] + th - ys[ty] : 0,
              ty + 1 < ny ? ys[ty] + th - ys[ty + 1] : 0);
    for (int tx = 0; ok && tx < nx; tx++) {
      tile_ramp(wx, TW, s, tx > 0 ? xs[tx - 1] + tw - xs[tx] : 0,
                tx + 1 < nx ? xs[tx] + tw - xs[tx + 1] : 0);
      for (int c = 0; c < L; c++)
        for (int i = 0; i < th; i++)
          memcpy(zt + ((int64_t)c * th + i) * tw, z + ((int64_t)c * h + ys[ty] + i) * w + xs[tx],
                 tw * sizeof(float));
      ok = decode_one(m, st, zt, th, tw, ot, error);
      int64_t y0 = (int64_t)ys[ty] * s, x0 = (int64_t)xs[tx] * s;
      for (int64_t i = 0; ok && i < TH; i++)
        for (int64_t j = 0; j < TW; j++) {
          float wt = wy[i] * wx[j];
          int64_t at = (y0 + i) * W + x0 + j;
          wsum[at] += wt;
          for (int c = 0; c < C; c++) out[c * HW + at] += wt * ot[(c * TH + i) * TW + j];
        }
    }
  }
  for (int64_t at = 0; ok && at < HW; at++)
    for (int c = 0; c < C; c++) out[c * HW + at] /= wsum[at];
  g_free(ys);
  g_free(xs);
  g_free(zt);
  g_free(ot);
  g_free(wy);
  g_free(wx);
  g_free(wsum);
  return ok;
}

gboolean i2v_vae_decode_tiled(const I2vVae *m, I2vStream *st, const float *z, int n, int h, int w,
                              int tile, int overlap, float *out, GError **error) {
  if (n < 1 || h < 1 || w < 1 || tile < 0 || overlap < 0) {
    g_set_error(error, I2V_ERROR, I2V_ERROR_INVALID,
                "VAE decode: %d latents of %dx%d in tiles of %d overlapping by %d: sizes must be "
                "positive, tile and overlap not negative",
                n, h, w, tile, overlap);
    return FALSE;
  }
  /* one sample at a time: every VAE op is per sample, and memory stays that of one frame */
  int s = i2v_vae_downscale(m);
  size_t in_size = (size_t)m->latent * h * w;
  size_t out_size = (size_t)m->out_channels * h * s * w * s;
  gboolean whole = tile == 0 || (tile >= h && tile >= w);
  for (int i = 0; i < n; i++) {
    const float *zi = z + i * in_size;
    float *oi = out + i * out_size;
    if (!(whole ? decode_one(m, st, zi, h, w, oi, error)
                : decode_tiled(m, st, zi, h, w, tile, overlap, oi, error)))
      return FALSE;
  }
  return TRUE;
}

gboolean i2v_vae_decode(const I2vVae *m, I2vStream *st, const float *z, int n, int h, int w,
                        float *out, GError **error) {
  return i2v_vae_decode_tiled(m, st, z, n, h, w, 0, 0, out, error);
}

void i2v_vae_unscale_latents(const I2vVae *m, const float *latents, int64_t n, float *z) {
  float inv = (float)(1.0 / m->scaling_factor);
  for (int64_t i = 0; i < n; i++) z[i] = latents[i] * inv;
}

gboolean i2v_vae_decode_video(const I2vVae *m, I2vStream *st, const float *latents, int frames,
                              int h, int w, float *video, GError **error) {
  if (frames < 1 || h < 1 || w < 1) {
    g_set_error(error, I2V_ERROR, I2V_ERROR_INVALID,
                "VAE decode: %d frames of %dx%d latents: all sizes must be positive", frames, h, w);
    return FALSE;
  }
  int s = i2v_vae_downscale(m);
  int64_t hw = (int64_t)h * w, out_hw = hw * s * s;
  float *z = g_new(float, m->latent *hw), *frame = g_new(float, m->out_channels *out_hw);
  gboolean ok = TRUE;
  for (int f = 0; ok && f < frames; f++) {
    /* gather frame f of every channel ([C, F, h, w] → [C, h, w]), decode, scatter back */
    for (int c = 0; c < m->latent; c++)
      i2v_vae_unscale_latents(m, latents + ((int64_t)c * frames + f) * hw, hw, z + c * hw);
    ok = i2v_vae_decode(m, st, z, 1, h, w, frame, error);
    for (int c = 0; ok && c < m->out_channels; c++)
      memcpy(video + ((int64_t)c * frames + f) * out_hw, frame + c * out_hw,
             out_hw * sizeof(float));
  }
  g_free(z);
  g_free(frame);
  return ok;
}

void i2v_vae_posterior(const float *moments, int latent, int64_t hw, float *mean, float *logvar,
                       float *std) {
  int64_t n = (int64_t)latent * hw;
  for (int64_t i = 0; i < n; i++) {
    float lv = CLAMP(moments[n + i], -30.0f, 20.0f);
    if (mean != NULL) mean[i] = moments[i];
    if (logvar != NULL) logvar[i] = lv;
    if (std != NULL) std[i] = expf(0.5f * lv);
  }
}
