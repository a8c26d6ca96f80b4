/* The CLIP vision encoder with projection (transformers CLIPVisionModelWithProjection): patch
 * embedding (a conv with kernel = stride = patch), class token, position embeddings,
 * pre_layrnorm, pre-LN encoder layers without mask, post_layernorm on the class token and a
 * bias-free projection. */
#include "clip_vision.h"

#include "ops.h"

#include "clip_layer.h"
#include <i2v/error.h>

struct I2vClipVision {
  I2vClipDims d;
  int image_size, patch_size, channels, projection_dim;
  int grid; /* patches per side: image_size / patch_size */
  I2vTensor class_embedding, position_embedding;
  I2vLinear patch_embedding; /* a conv without bias */
  I2vNorm pre_norm;
  I2vClipLayer *layers; /* NULL when streamed */
  I2vNorm post_norm;
  I2vLinear projection; /* without bias */
  GPtrArray *params;    /* every weight held */
  /* A streamed encoder holds only the weights around its layers and reads each layer from md
   * onto be when it runs (i2v_clip_vision_load_streamed). */
  I2vModelDir *md;
  I2vBackend *be;
};

/* Reads every size of the vision tower from its config (ranges: docs/model.md). */
static gboolean read_config(I2vClipVision *m, I2vModelDir *md, GError **error) {
  I2vConfig c;
  if (!i2v_model_dir_config(md, "image_encoder", &c, error)) return FALSE;
  gboolean ok = i2v_clip_dims_read(&c, &m->d, error) &&
                i2v_config_int(&c, "image_size", 1, 4096, &m->image_size, error) &&
                i2v_config_int(&c, "patch_size", 1, 4096, &m->patch_size, error) &&
                i2v_config_int(&c, "num_channels", 3, 3, &m->channels, error) &&
                i2v_config_int(&c, "projection_dim", 1, 16384, &m->projection_dim, error);
  if (ok && m->patch_size > m->image_size) {
    g_set_error(error, I2V_ERROR, I2V_ERROR_CONFIG, "%s: patch_size %d exceeds image_size %d",
                c.file, m->patch_size, m->image_size);
    ok = FALSE;
  }
  i2v_config_clear(&c);
  /* transformers: num_patches = (image_size // patch_size)², as the strided conv yields */
  m->grid = ok ? m->image_size / m->patch_size : 0;
  return ok;
}

/* The tensors around the layers: embeddings, the two norms, the projection. */
static void load_outer_weights(I2vLoader *ld, I2vClipVision *m) {
  int64_t c = m->d.hidden, ps[2] = {i2v_clip_vision_num_tokens(m), c};
  const char *emb = "vision_model.embeddings";
  i2v_load_tensor(ld, &m->class_embedding, emb, "class_embedding", 1, &c, I2V_LAYOUT_AS_IS);
  i2v_load_conv(ld, &m->patch_embedding, emb, "patch_embedding", c, m->channels, m->patch_size,
                FALSE);
  i2v_load_tensor(ld, &m->position_embedding, emb, "position_embedding.weight", 2, ps,
                  I2V_LAYOUT_AS_IS);
  i2v_load_norm(ld, &m->pre_norm, "vision_model", "pre_layrnorm", c);
  i2v_load_norm(ld, &m->post_norm, "vision_model", "post_layernorm", c);
  i2v_load_linear(ld, &m->projection, "visual_projection", NULL, m->projection_dim, c, FALSE);
}

/* Every tensor of the vision tower with the shapes the config implies. */
static void load_weights(I2vLoader *ld, void *net) {
  I2vClipVision *m = net;
  load_outer_weights(ld, m);
  m->layers = i2v_clip_layers_load(ld, "vision_model", &m->d);
}

static void load_streamed_weights(I2vLoader *ld, void *net) {
  load_outer_weights(ld, net);
}

/* Loads md's image_encoder onto be with load_fn (every weight, or those around the layers). */
static I2vClipVision *load(I2vModelDir *md, I2vBackend *be, void (*load_fn)(I2vLoader *, void *),
                           GError **error) {
  I2vClipVision *m = g_new0(I2vClipVision, 1);
  m->params = g_ptr_array_new();
  if (!read_config(m, md, error) ||
      !i2v_load_component(md, "image_encoder", be, m->params, load_fn, m, error)) {
    i2v_clip_vision_free(m);
    return NULL;
  }
  return m;
}

I2vClipVision *i2v_clip_vision_load(I2vModelDir *md, I2vBackend *be, GError **error) {
  return load(md, be, load_weights, error);
}

I2vClipVision *i2v_clip_vision_load_streamed(I2vModelDir *md, I2vBackend *be, GError **error) {
  I2vClipVision *m = load(md, be, load_streamed_weights, error);
  if (m != NULL) m->md = md, m->be = be;
  return m;
}

void i2v_clip_vision_free(I2vClipVision *m) {
  if (m == NULL) return;
  i2v_params_free(m->params);
  g_free(m->layers);
  g_free(m);
}

int i2v_clip_vision_image_size(const I2vClipVision *m) {
  return m->image_size;
}

int i2v_clip_vision_hidden_size(const I2vClipVision *m) {
  return m->d.hidden;
}

int i2v_clip_vision_num_tokens(const I2vClipVision *m) {
  return m->grid * m->grid + 1;
}

int i2v_clip_vision_num_layers(const I2vClipVision *m) {
  return m->d.layers;
}

int i2v_clip_vision_projection_dim(const I2vClipVision *m) {
  return m->projection_dim;
}

/* x [B, tokens, C] ← [class token; patch embeddings of the pixels] + positions, then
 * pre_layrnorm: transformers' hidden_states[0]. pixel_values are host NCHW; the conv wants
 * NHWC, so they are uploaded as they are and permuted on the backend. */
static gboolean embed(const I2vClipVision *m, I2vStream *st, const float *pixel_values,
                      I2vTensor *x, GError **error) {
  int64_t b = x->shape[0], tokens = x->shape[1], c = m->d.hidden, s = m->image_size;
  int64_t patches = (int64_t)m->grid * m->grid;
  size_t mark = i2v_scratch_mark(st);
  int64_t nchw_shape[] = {b, m->channels, s, s}, nhwc_shape[] = {b, s, s, m->channels};
  int64_t grid_shape[] = {b, m->grid, m->grid, c};
  I2vTensor nchw = i2v_scratch_tensor(st, 4, nchw_shape);
  I2vTensor nhwc = i2v_scratch_tensor(st, 4, nhwc_shape);
  I2vTensor grid = i2v_scratch_tensor(st, 4, grid_shape);
  if (!i2v_stream_check(st, error) || !i2v_tensor_upload_f32(st, &nchw, pixel_values, error)) {
    i2v_scratch_release(st, mark);
    return FALSE;
  }
  static const int to_nhwc[] = {0, 2, 3, 1};
  i2v_op_permute(st, &nhwc, &nchw, to_nhwc);
  I2vConvParams conv = {.stride = m->patch_size};
  i2v_op_conv2d(st, &grid, &nhwc, &m->patch_embedding.w, NULL, &conv, FALSE);

  /* row b·tokens is the class token, rows b·tokens + 1 … the patches in row-major order */
  int64_t rows_shape[] = {b * tokens, c}, patch_rows_shape[] = {b * patches, c};
  int64_t class_shape[] = {1, c};
  I2vTensor rows = i2v_tensor_view(x, 2, rows_shape);
  I2vTensor patch_rows = i2v_tensor_view(&grid, 2, patch_rows_shape);
  I2vTensor class_row = i2v_tensor_view(&m->class_embedding, 2, class_shape);
  for (int64_t i = 0; i < b; i++) {
    I2vTensor dst_class = i2v_tensor_rows(&rows, i * tokens, 1);
    I2vTensor dst_patches = i2v_tensor_rows(&rows, i * tokens + 1, patches);
    I2vTensor src_patches = i2v_tensor_rows(&patch_rows, i * patches, patches);
    i2v_op_copy(st, &dst_class, &class_row);
    i2v_op_copy(st, &dst_patches, &src_patches);
  }
  i2v_clip_add_positions(st, x, &m->position_embedding);
  i2v_op_layer_norm(st, x, x, &m->pre_norm.gamma, &m->pre_norm.beta, m->d.eps);
  i2v_scratch_release(st, mark);
  return TRUE;
}

/* image_embeds [B, projection_dim] = visual_projection(post_layernorm(x[:, 0])). */
static gboolean project(const I2vClipVision *m, I2vStream *st, const I2vTensor *x,
                        float *image_embeds, GError **error) {
  int64_t b = x->shape[0], tokens = x->shape[1], c = m->d.hidden;
  size_t mark = i2v_scratch_mark(st);
  int64_t cls_shape[] = {b, c}, emb_shape[] = {b, m->projection_dim},
          rows_shape[] = {b * tokens, c};
  I2vTensor cls = i2v_scratch_tensor(st, 2, cls_shape);
  I2vTensor emb = i2v_scratch_tensor(st, 2, emb_shape);
  I2vTensor rows = i2v_tensor_view(x, 2, rows_shape);
  for (int64_t i = 0; i < b; i++) {
    I2vTensor src = i2v_tensor_rows(&rows, i * tokens, 1);
    I2vTensor dst = i2v_tensor_rows(&cls, i, 1);
    i2v_op_copy(st, &dst, &src);
  }
  i2v_op_layer_norm(st, &cls, &cls, &m->post_norm.gamma, &m->post_norm.beta, m->d.eps);
  i2v_op_linear(st, &emb, &cls, &m->projection.w, NULL, I2V_ACT_NONE, FALSE);
  gboolean ok = i2v_tensor_download_f32(st, &emb, image_embeds, error);
  i2v_scratch_release(st, mark);
  return ok;
}

gboolean i2v_clip_vision_forward(const I2vClipVision *m, I2vStream *st, const float *pixel_values,
                                 int batch, float *image_embeds, int n_hidden, float *hidden,
                                 GError **error) {
  if (batch < 1 || (hidden != NULL && (n_hidden < 0 || n_hidden > m->d.layers))) {
    g_set_error(error, I2V_ERROR, I2V_ERROR_INVALID,
                "image encoder: batch %d, hidden state %d requested; expected batch >= 1 and a "
                "hidden state 0..%d",
                batch, n_hidden, m->d.layers);
    return FALSE;
  }
  size_t mark = i2v_scratch_mark(st);
  int64_t shape[] = {batch, i2v_clip_vision_num_tokens(m), m->d.hidden};
  I2vTensor x = i2v_scratch_tensor(st, 3, shape);
  gboolean ok = embed(m, st, pixel_values, &x, error);
  int n_layers = image_embeds != NULL ? m->d.layers : (hidden != NULL ? n_hidden : 0);
  if (ok) i2v_clip_tap_hidden(st, 0, &x);
  if (ok && hidden != NULL && n_hidden == 0) ok = i2v_tensor_download_f32(st, &x, hidden, error);
  I2vWeights *w = NULL;
  if (ok && m->layers == NULL && n_layers > 0)
    ok = (w = i2v_model_dir_weights(m->md, "image_encoder", error)) != NULL;
  for (int l = 0; ok && l < n_layers; l++) {
    if (w != NULL)
      ok = i2v_clip_layer_run_streamed(w, m->be, st, "vision_model", l, &m->d, FALSE, &x, error);
    else
      i2v_clip_layer_forward(st, &m->layers[l], &m->d, &x, FALSE);
    i2v_clip_tap_hidden(st, l + 1, &x);
    if (hidden != NULL && n_hidden == l + 1) ok = i2v_tensor_download_f32(st, &x, hidden, error);
  }
  i2v_weights_free(w);
  if (ok && image_embeds != NULL) ok = project(m, st, &x, image_embeds, error);
  if (ok) ok = i2v_stream_check(st, error);
  i2v_scratch_release(st, mark);
  return ok;
}
