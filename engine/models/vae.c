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

#define VAE_CONFIG "vae/config.json"
#define VAE_NORM_EPS 1e-6f /* every GroupNorm of this VAE */

typedef struct {
  I2vTensor w, b; /* [Co,k,k,Ci], [Co] */
  int k;
} Conv;

typedef struct {
  I2vTensor gamma, beta;
} Norm;

/* ResnetBlock2D without time embedding: GN→SiLU→conv1→GN→SiLU→conv2, plus x or a 1×1 shortcut. */
typedef struct {
  Norm norm1, norm2;
  Conv conv1, conv2;
  Conv shortcut; /* only when channels change */
  gboolean has_shortcut;
  int cin, cout;
} Resnet;

/* Single-head spatial self-attention with biases, GroupNorm on the input, residual added. */
typedef struct {
  Norm norm;
  I2vTensor wq, bq, wk, bk, wv, bv, wo, bo;
  int channels;
} Attention;

typedef struct {
  Resnet res0;
  Attention attn;
  Resnet res1;
} MidBlock;

/* A down (encoder) or up (decoder) block: resnets, then an optional resampling conv. */
typedef struct {
  Resnet *resnets;
  int n_resnets;
  gboolean has_sampler;
  Conv sampler; /* downsamplers.0.conv / upsamplers.0.conv */
} Block;

struct I2vVae {
  I2vBackend *be;
  int n_levels, layers_per_block, latent, in_channels, out_channels, groups;
  gint64 *block_out; /* block_out_channels, n_levels entries */
  double scaling_factor;
  GPtrArray *params; /* every loaded I2vTensor*, freed together */

  Conv enc_conv_in, enc_conv_out, quant_conv;
  Block *down;
  MidBlock enc_mid;
  Norm enc_norm_out;

  Conv post_quant_conv, dec_conv_in, dec_conv_out;
  MidBlock dec_mid;
  Block *up;
  Norm dec_norm_out;
};

/* ---- loading ---- */

/* Loads tensors under a name prefix; the first failure sticks and later loads are skipped. */
typedef struct {
  I2vVae *m;
  I2vWeights *w;
  GError *error;
} Loader;

static void load_tensor(Loader *l, I2vTensor *t, const char *prefix, const char *suffix, int ndim,
                        const int64_t *shape, I2vLayout layout) {
  if (l->error != NULL) return;
  char *name = g_strconcat(prefix, suffix, NULL);
  if (i2v_weights_load(l->w, l->m->be, name, ndim, shape, layout, t, &l->error))
    g_ptr_array_add(l->m->params, t);
  g_free(name);
}

static void load_conv(Loader *l, Conv *c, const char *prefix, int64_t co, int64_t ci, int k) {
  int64_t wshape[4] = {co, ci, k, k};
  c->k = k;
  load_tensor(l, &c->w, prefix, ".weight", 4, wshape, I2V_LAYOUT_CONV2D);
  load_tensor(l, &c->b, prefix, ".bias", 1, &co, I2V_LAYOUT_AS_IS);
}

static void load_norm(Loader *l, Norm *n, const char *prefix, int64_t c) {
  load_tensor(l, &n->gamma, prefix, ".weight", 1, &c, I2V_LAYOUT_AS_IS);
  load_tensor(l, &n->beta, prefix, ".bias", 1, &c, I2V_LAYOUT_AS_IS);
}

static void load_linear(Loader *l, I2vTensor *w, I2vTensor *b, const char *prefix, int64_t c) {
  int64_t wshape[2] = {c, c};
  load_tensor(l, w, prefix, ".weight", 2, wshape, I2V_LAYOUT_AS_IS);
  load_tensor(l, b, prefix, ".bias", 1, &c, I2V_LAYOUT_AS_IS);
}

static void load_resnet(Loader *l, Resnet *r, const char *prefix, int cin, int cout) {
  char *p = g_strdup_printf("%s.norm1", prefix);
  r->cin = cin;
  r->cout = cout;
  load_norm(l, &r->norm1, p, cin);
  g_free(p), p = g_strdup_printf("%s.conv1", prefix);
  load_conv(l, &r->conv1, p, cout, cin, 3);
  g_free(p), p = g_strdup_printf("%s.norm2", prefix);
  load_norm(l, &r->norm2, p, cout);
  g_free(p), p = g_strdup_printf("%s.conv2", prefix);
  load_conv(l, &r->conv2, p, cout, cout, 3);
  r->has_shortcut = cin != cout;
  if (r->has_shortcut) {
    g_free(p), p = g_strdup_printf("%s.conv_shortcut", prefix);
    load_conv(l, &r->shortcut, p, cout, cin, 1);
  }
  g_free(p);
}

static void load_mid(Loader *l, MidBlock *mid, const char *prefix, int c) {
  char *p = g_strdup_printf("%s.resnets.0", prefix);
  load_resnet(l, &mid->res0, p, c, c);
  g_free(p), p = g_strdup_printf("%s.resnets.1", prefix);
  load_resnet(l, &mid->res1, p, c, c);
  Attention *a = &mid->attn;
  a->channels = c;
  static const char *const parts[] = {"group_norm", "to_q", "to_k", "to_v", "to_out.0"};
  I2vTensor *w[] = {NULL, &a->wq, &a->wk, &a->wv, &a->wo};
  I2vTensor *b[] = {NULL, &a->bq, &a->bk, &a->bv, &a->bo};
  for (guint i = 0; i < G_N_ELEMENTS(parts); i++) {
    g_free(p), p = g_strdup_printf("%s.attentions.0.%s", prefix, parts[i]);
    if (i == 0)
      load_norm(l, &a->norm, p, c);
    else
      load_linear(l, w[i], b[i], p, c);
  }
  g_free(p);
}

/* A block of n resnets from cin to cout, with an optional sampler conv (cout → cout, 3×3). */
static void load_block(Loader *l, Block *blk, const char *prefix, int n, int cin, int cout,
                       gboolean has_sampler, const char *sampler_name) {
  blk->n_resnets = n;
  blk->resnets = g_new0(Resnet, n);
  for (int j = 0; j < n; j++) {
    char *p = g_strdup_printf("%s.resnets.%d", prefix, j);
    load_resnet(l, &blk->resnets[j], p, j == 0 ? cin : cout, cout);
    g_free(p);
  }
  blk->has_sampler = has_sampler;
  if (has_sampler) {
    char *p = g_strdup_printf("%s.%s.0.conv", prefix, sampler_name);
    load_conv(l, &blk->sampler, p, cout, cout, 3);
    g_free(p);
  }
}

/* Every entry of key must be the one block type this VAE implements. */
static gboolean check_block_types(JsonObject *cfg, const char *key, const char *want, int n,
                                  GError **error) {
  char **types = NULL;
  if (!i2v_config_string_array(cfg, VAE_CONFIG, key, &types, error)) return FALSE;
  gboolean ok = (int)g_strv_length(types) == n;
  if (!ok)
    g_set_error(error, I2V_ERROR, I2V_ERROR_CONFIG,
                "%s: %s has %u entries, expected %d (one per block_out_channels entry)", VAE_CONFIG,
                key, g_strv_length(types), n);
  for (int i = 0; ok && i < n; i++) {
    ok = strcmp(types[i], want) == 0;
    if (!ok)
      g_set_error(error, I2V_ERROR, I2V_ERROR_CONFIG, "%s: %s[%d] is \"%s\", expected \"%s\"",
                  VAE_CONFIG, key, i, types[i], want);
  }
  g_strfreev(types);
  return ok;
}

static gboolean read_config(I2vVae *m, JsonObject *cfg, GError **error) {
  gint64 layers, latent, in_ch, out_ch, groups;
  int n = 0;
  if (!i2v_config_int_array(cfg, VAE_CONFIG, "block_out_channels", &m->block_out, &n, error) ||
      !i2v_config_int(cfg, VAE_CONFIG, "layers_per_block", &layers, error) ||
      !i2v_config_int(cfg, VAE_CONFIG, "latent_channels", &latent, error) ||
      !i2v_config_int(cfg, VAE_CONFIG, "in_channels", &in_ch, error) ||
      !i2v_config_int(cfg, VAE_CONFIG, "out_channels", &out_ch, error) ||
      !i2v_config_int(cfg, VAE_CONFIG, "norm_num_groups", &groups, error) ||
      !i2v_config_double(cfg, VAE_CONFIG, "scaling_factor", &m->scaling_factor, error) ||
      !check_block_types(cfg, "down_block_types", "DownEncoderBlock2D", n, error) ||
      !check_block_types(cfg, "up_block_types", "UpDecoderBlock2D", n, error))
    return FALSE;
  /* GroupNorm+SiLU is the only activation the fused norm op offers */
  I2vAct act;
  const char *act_fn = i2v_config_string_or(cfg, "act_fn", "silu");
  if (!i2v_act_from_name(act_fn, &act) || act != I2V_ACT_SILU) {
    g_set_error(error, I2V_ERROR, I2V_ERROR_CONFIG, "%s: act_fn is \"%s\", expected \"silu\"",
                VAE_CONFIG, act_fn);
    return FALSE;
  }
  /* the interface speaks of RGB images: [1, 3, H, W] in and out */
  if (in_ch != 3 || out_ch != 3) {
    g_set_error(error, I2V_ERROR, I2V_ERROR_CONFIG,
                "%s: in_channels %" G_GINT64_FORMAT " / out_channels %" G_GINT64_FORMAT
                ", expected 3 / 3 (RGB)",
                VAE_CONFIG, in_ch, out_ch);
    return FALSE;
  }
  if (n < 1 || layers < 1 || latent < 1 || groups < 1) {
    g_set_error(error, I2V_ERROR, I2V_ERROR_CONFIG,
                "%s: block_out_channels (%d entries), layers_per_block %" G_GINT64_FORMAT
                ", latent_channels %" G_GINT64_FORMAT ", norm_num_groups %" G_GINT64_FORMAT
                " must all be positive",
                VAE_CONFIG, n, layers, latent, groups);
    return FALSE;
  }
  for (int i = 0; i < n; i++) {
    if (m->block_out[i] < 1 || m->block_out[i] % groups != 0) {
      g_set_error(error, I2V_ERROR, I2V_ERROR_CONFIG,
                  "%s: block_out_channels[%d] = %" G_GINT64_FORMAT
                  " is not a positive multiple of norm_num_groups %" G_GINT64_FORMAT,
                  VAE_CONFIG, i, m->block_out[i], groups);
      return FALSE;
    }
  }
  m->n_levels = n;
  m->layers_per_block = (int)layers;
  m->latent = (int)latent;
  m->in_channels = (int)in_ch;
  m->out_channels = (int)out_ch;
  m->groups = (int)groups;
  return TRUE;
}

/* The encoder mirrors diffusers' Encoder: block i maps block_out[i-1] (block_out[0] for i = 0)
 * to block_out[i]; the last block has no down-sampler. */
static void load_encoder(Loader *l, I2vVae *m) {
  int n = m->n_levels, top = (int)m->block_out[n - 1];
  load_conv(l, &m->enc_conv_in, "encoder.conv_in", m->block_out[0], m->in_channels, 3);
  m->down = g_new0(Block, n);
  for (int i = 0; i < n; i++) {
    char *p = g_strdup_printf("encoder.down_blocks.%d", i);
    int cin = (int)m->block_out[i > 0 ? i - 1 : 0];
    load_block(l, &m->down[i], p, m->layers_per_block, cin, (int)m->block_out[i], i < n - 1,
               "downsamplers");
    g_free(p);
  }
  load_mid(l, &m->enc_mid, "encoder.mid_block", top);
  load_norm(l, &m->enc_norm_out, "encoder.conv_norm_out", top);
  load_conv(l, &m->enc_conv_out, "encoder.conv_out", 2 * m->latent, top, 3);
  load_conv(l, &m->quant_conv, "quant_conv", 2 * m->latent, 2 * m->latent, 1);
}

/* The decoder walks block_out in reverse: up block i maps the previous block's channels to
 * block_out[n-1-i]; the last block has no up-sampler. */
static void load_decoder(Loader *l, I2vVae *m) {
  int n = m->n_levels, top = (int)m->block_out[n - 1];
  load_conv(l, &m->post_quant_conv, "post_quant_conv", m->latent, m->latent, 1);
  load_conv(l, &m->dec_conv_in, "decoder.conv_in", top, m->latent, 3);
  load_mid(l, &m->dec_mid, "decoder.mid_block", top);
  m->up = g_new0(Block, n);
  for (int i = 0; i < n; i++) {
    char *p = g_strdup_printf("decoder.up_blocks.%d", i);
    int cin = (int)m->block_out[n - 1 - MAX(i - 1, 0)];
    load_block(l, &m->up[i], p, m->layers_per_block + 1, cin, (int)m->block_out[n - 1 - i],
               i < n - 1, "upsamplers");
    g_free(p);
  }
  load_norm(l, &m->dec_norm_out, "decoder.conv_norm_out", m->block_out[0]);
  load_conv(l, &m->dec_conv_out, "decoder.conv_out", m->out_channels, m->block_out[0], 3);
}

I2vVae *i2v_vae_load(I2vModelDir *md, I2vBackend *be, GError **error) {
  JsonObject *cfg = i2v_model_dir_config(md, "vae", error);
  if (cfg == NULL) return NULL;
  I2vVae *m = g_new0(I2vVae, 1);
  m->be = be;
  m->params = g_ptr_array_new();
  gboolean ok = read_config(m, cfg, error);
  json_object_unref(cfg);
  Loader l = {m, NULL, NULL};
  if (ok) l.w = i2v_model_dir_weights(md, "vae", error);
  if (l.w != NULL) {
    load_encoder(&l, m);
    load_decoder(&l, m);
    if (l.error == NULL) i2v_weights_log_unused(l.w);
    i2v_weights_free(l.w);
    if (l.error != NULL) g_propagate_error(error, l.error);
  }
  if (!ok || l.w == NULL || l.error != NULL) {
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
  for (guint i = 0; i < m->params->len; i++) i2v_tensor_free(g_ptr_array_index(m->params, i));
  g_ptr_array_unref(m->params);
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
static void conv_same(I2vStream *st, I2vTensor *y, const I2vTensor *x, const Conv *c,
                      gboolean accumulate) {
  int p = c->k / 2;
  I2vConvParams cp = {1, p, p, p, p};
  i2v_op_conv2d(st, y, x, &c->w, &c->b, &cp, accumulate);
}

/* Replaces the current activation by conv(x), written to the other buffer. */
static void flow_conv(Flow *f, const Conv *c) {
  I2vTensor y = flow_target(f, f->x.shape[1], f->x.shape[2], c->w.shape[0]);
  conv_same(f->st, &y, &f->x, c, FALSE);
  f->x = y;
}

/* The residual goes into the output first, so that x (whose buffer the next stage overwrites
 * anyway) can be normalised in place: one temporary per resnet. */
static void resnet_forward(const I2vVae *m, Flow *f, const Resnet *r) {
  I2vStream *st = f->st;
  I2vTensor x = f->x;
  int64_t h = x.shape[1], w = x.shape[2];
  I2vTensor out = flow_target(f, h, w, r->cout);
  if (r->has_shortcut)
    conv_same(st, &out, &x, &r->shortcut, FALSE);
  else
    i2v_op_copy(st, &out, &x);
  size_t mark = i2v_scratch_mark(st);
  int64_t shape[4] = {1, h, w, r->cout};
  I2vTensor t = i2v_scratch_tensor(st, 4, shape);
  i2v_op_group_norm(st, &x, &x, &r->norm1.gamma, &r->norm1.beta, 1, m->groups, VAE_NORM_EPS,
                    I2V_ACT_SILU);
  conv_same(st, &t, &x, &r->conv1, FALSE);
  i2v_op_group_norm(st, &t, &t, &r->norm2.gamma, &r->norm2.beta, 1, m->groups, VAE_NORM_EPS,
                    I2V_ACT_SILU);
  conv_same(st, &out, &t, &r->conv2, TRUE);
  i2v_scratch_release(st, mark);
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
  i2v_op_linear(st, &q, &normed, &a->wq, &a->bq, I2V_ACT_NONE, FALSE);
  i2v_op_linear(st, &k, &normed, &a->wk, &a->bk, I2V_ACT_NONE, FALSE);
  i2v_op_linear(st, &v, &normed, &a->wv, &a->bv, I2V_ACT_NONE, FALSE);
  I2vSeqView vo = {&mixed, 0, 0, 0, c}, vq = {&q, 0, 0, 0, c}, vk = {&k, 0, 0, 0, c},
             vv = {&v, 0, 0, 0, c};
  I2vAttnShape s = {.n_outer = 1,
                    .n_inner = 1,
                    .kv_outer_div = 1,
                    .q_len = tokens,
                    .kv_len = tokens,
                    .heads = 1,
                    .head_dim = (int)c,
                    .scale = (float)(1.0 / sqrt((double)c)),
                    .causal = FALSE};
  i2v_op_attention(st, &vo, &vq, &vk, &vv, &s);
  I2vTensor out_seq = i2v_tensor_view(&out, 3, seq);
  i2v_op_copy(st, &out_seq, &x);
  i2v_op_linear(st, &out_seq, &mixed, &a->wo, &a->bo, I2V_ACT_NONE, TRUE);
  i2v_scratch_release(st, mark);
  f->x = out;
}

static void mid_forward(const I2vVae *m, Flow *f, const MidBlock *mid) {
  resnet_forward(m, f, &mid->res0);
  attention_forward(m, f, &mid->attn);
  resnet_forward(m, f, &mid->res1);
}

/* diffusers Downsample2D with padding 0: zero-pad right and bottom by one, 3×3 stride 2. */
static void downsample_forward(Flow *f, const Conv *c) {
  I2vConvParams cp = {.stride = 2, .pad_bottom = 1, .pad_right = 1};
  int64_t h = (f->x.shape[1] + 1 - 3) / 2 + 1, w = (f->x.shape[2] + 1 - 3) / 2 + 1;
  I2vTensor y = flow_target(f, h, w, c->w.shape[0]);
  i2v_op_conv2d(f->st, &y, &f->x, &c->w, &c->b, &cp, FALSE);
  f->x = y;
}

/* diffusers Upsample2D: nearest ×2 into the other buffer, then a 3×3 conv back. */
static void upsample_forward(Flow *f, const Conv *c) {
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
static void norm_out_forward(const I2vVae *m, Flow *f, const Norm *n, const Conv *conv_out) {
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

gboolean i2v_vae_decode(const I2vVae *m, I2vStream *st, const float *z, int n, int h, int w,
                        float *out, GError **error) {
  if (n < 1 || h < 1 || w < 1) {
    g_set_error(error, I2V_ERROR, I2V_ERROR_INVALID,
                "VAE decode: %d latents of %dx%d: all sizes must be positive", n, h, w);
    return FALSE;
  }
  /* one sample at a time: every VAE op is per sample, and memory stays that of one frame */
  int s = i2v_vae_downscale(m);
  size_t in_size = (size_t)m->latent * h * w;
  size_t out_size = (size_t)m->out_channels * h * s * w * s;
  for (int i = 0; i < n; i++)
    if (!decode_one(m, st, z + i * in_size, h, w, out + i * out_size, error)) return FALSE;
  return TRUE;
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
