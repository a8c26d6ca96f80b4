/* The CLIP text encoder (transformers CLIPTextModel): token + position embeddings, pre-LN
 * encoder layers under a causal mask, final LayerNorm. No attention mask: the pipeline pads with
 * ordinary end-of-text tokens that the causal mask keeps out of the earlier positions. */
#include "clip_text.h"

#include "ops.h"

#include "clip_layer.h"
#include <i2v/error.h>

struct I2vClipText {
  I2vClipDims d;
  int max_positions; /* max_position_embeddings */
  int vocab;         /* vocab_size */
  I2vTensor token_embedding, position_embedding;
  I2vClipLayer *layers; /* NULL when streamed */
  I2vNorm final_norm;
  GPtrArray *params; /* every weight held */
  /* A streamed encoder holds only the weights around its layers and reads each layer from md
   * onto be when it runs (i2v_clip_text_load_streamed). */
  I2vModelDir *md;
  I2vBackend *be;
};

/* Reads every size of the text tower from its config (ranges: docs/model.md). */
static gboolean read_config(I2vClipText *m, I2vModelDir *md, GError **error) {
  I2vConfig c;
  if (!i2v_model_dir_config(md, "text_encoder", &c, error)) return FALSE;
  gboolean ok = i2v_clip_dims_read(&c, &m->d, error) &&
                i2v_config_int(&c, "max_position_embeddings", 2, 65536, &m->max_positions, error) &&
                i2v_config_int(&c, "vocab_size", 1, 10000000, &m->vocab, error);
  i2v_config_clear(&c);
  return ok;
}

/* The tensors around the layers: the two embeddings and the final norm. */
static void load_outer_weights(I2vLoader *ld, I2vClipText *m) {
  int64_t c = m->d.hidden;
  int64_t ts[2] = {m->vocab, c}, ps[2] = {m->max_positions, c};
  const char *emb = "text_model.embeddings";
  i2v_load_tensor(ld, &m->token_embedding, emb, "token_embedding.weight", 2, ts, I2V_LAYOUT_AS_IS);
  i2v_load_tensor(ld, &m->position_embedding, emb, "position_embedding.weight", 2, ps,
                  I2V_LAYOUT_AS_IS);
  i2v_load_norm(ld, &m->final_norm, "text_model", "final_layer_norm", c);
}

/* Every tensor of the text tower with the shapes the config implies. */
static void load_weights(I2vLoader *ld, void *net) {
  I2vClipText *m = net;
  load_outer_weights(ld, m);
  m->layers = i2v_clip_layers_load(ld, "text_model", &m->d);
}

static void load_streamed_weights(I2vLoader *ld, void *net) {
  load_outer_weights(ld, net);
}

/* Loads md's text_encoder onto be with load_fn (every weight, or those around the layers). */
static I2vClipText *load(I2vModelDir *md, I2vBackend *be, void (*load_fn)(I2vLoader *, void *),
                         GError **error) {
  I2vClipText *m = g_new0(I2vClipText, 1);
  m->params = g_ptr_array_new();
  if (!read_config(m, md, error) ||
      !i2v_load_component(md, "text_encoder", be, m->params, load_fn, m, error)) {
    i2v_clip_text_free(m);
    return NULL;
  }
  return m;
}

I2vClipText *i2v_clip_text_load(I2vModelDir *md, I2vBackend *be, GError **error) {
  return load(md, be, load_weights, error);
}

I2vClipText *i2v_clip_text_load_streamed(I2vModelDir *md, I2vBackend *be, GError **error) {
  I2vClipText *m = load(md, be, load_streamed_weights, error);
  if (m != NULL) m->md = md, m->be = be;
  return m;
}

void i2v_clip_text_free(I2vClipText *m) {
  if (m == NULL) return;
  i2v_params_free(m->params);
  g_free(m->layers);
  g_free(m);
}

int i2v_clip_text_hidden_size(const I2vClipText *m) {
  return m->d.hidden;
}

int i2v_clip_text_num_layers(const I2vClipText *m) {
  return m->d.layers;
}

int i2v_clip_text_max_positions(const I2vClipText *m) {
  return m->max_positions;
}

/* Checks the call's sizes and every id against the config. */
static gboolean check_args(const I2vClipText *m, const int64_t *ids, int batch, int len,
                           int n_layers, GError **error) {
  if (batch < 1 || len < 1 || len > m->max_positions) {
    g_set_error(error, I2V_ERROR, I2V_ERROR_INVALID,
                "text encoder: batch %d x length %d, expected batch >= 1 and 1 <= length <= %d "
                "(max_position_embeddings)",
                batch, len, m->max_positions);
    return FALSE;
  }
  if (n_layers < 0 || n_layers > m->d.layers) {
    g_set_error(error, I2V_ERROR, I2V_ERROR_INVALID,
                "text encoder: %d layers requested, the model has %d", n_layers, m->d.layers);
    return FALSE;
  }
  for (int64_t i = 0; i < (int64_t)batch * len; i++) {
    if (ids[i] < 0 || ids[i] >= m->vocab) {
      g_set_error(error, I2V_ERROR, I2V_ERROR_INVALID,
                  "text encoder: token id %" G_GINT64_FORMAT " at position %" G_GINT64_FORMAT
                  " is outside the vocabulary of %d",
                  ids[i], i, m->vocab);
      return FALSE;
    }
  }
  return TRUE;
}

gboolean i2v_clip_text_forward(const I2vClipText *m, I2vStream *st, const int64_t *ids, int batch,
                               int len, int n_layers, gboolean final_norm, float *out,
                               GError **error) {
  if (!check_args(m, ids, batch, len, n_layers, error)) return FALSE;
  size_t mark = i2v_scratch_mark(st);
  int64_t shape[] = {batch, len, m->d.hidden};
  I2vTensor x = i2v_scratch_tensor(st, 3, shape);
  i2v_op_gather_rows(st, &x, &m->token_embedding, ids);
  i2v_clip_add_positions(st, &x, &m->position_embedding);
  i2v_clip_tap_hidden(st, 0, &x);
  gboolean ok = TRUE;
  I2vWeights *w = NULL;
  if (m->layers == NULL && n_layers > 0)
    ok = (w = i2v_model_dir_weights(m->md, "text_encoder", error)) != NULL;
  for (int l = 0; ok && l < n_layers; l++) {
    if (w != NULL)
      ok = i2v_clip_layer_run_streamed(w, m->be, st, "text_model", l, &m->d, TRUE, &x, error);
    else
      i2v_clip_layer_forward(st, &m->layers[l], &m->d, &x, TRUE);
    i2v_clip_tap_hidden(st, l + 1, &x);
  }
  i2v_weights_free(w);
  if (ok && final_norm)
    i2v_op_layer_norm(st, &x, &x, &m->final_norm.gamma, &m->final_norm.beta, m->d.eps);
  ok = ok && i2v_tensor_download_f32(st, &x, out, error);
  i2v_scratch_release(st, mark);
  return ok;
}
