/* The CLIP text encoder (transformers CLIPTextModel): token + position embeddings, pre-LN
 * encoder layers under a causal mask, final LayerNorm. No attention mask: the pipeline pads with
 * ordinary end-of-text tokens that the causal mask keeps out of the earlier positions. */
#include "clip_text.h"

#include "ops.h"

#include "clip_layer.h"
#include <i2v/error.h>

#define CONFIG_FILE "text_encoder/config.json"

struct I2vClipText {
  I2vBackend *be;
  I2vClipDims d;
  int max_positions; /* max_position_embeddings */
  int vocab;         /* vocab_size */
  I2vTensor token_embedding, position_embedding;
  I2vClipLayer *layers;
  I2vTensor final_w, final_b;
};

/* Reads every size of the text tower from its config. */
static gboolean read_config(I2vClipText *m, I2vModelDir *md, GError **error) {
  JsonObject *cfg = i2v_model_dir_config(md, "text_encoder", error);
  if (cfg == NULL) return FALSE;
  gint64 max_pos = 0, vocab = 0;
  gboolean ok = i2v_clip_dims_read(cfg, CONFIG_FILE, &m->d, error) &&
                i2v_config_int(cfg, CONFIG_FILE, "max_position_embeddings", &max_pos, error) &&
                i2v_config_int(cfg, CONFIG_FILE, "vocab_size", &vocab, error);
  json_object_unref(cfg);
  if (ok && (max_pos <= 0 || max_pos > G_MAXINT32 || vocab <= 0 || vocab > G_MAXINT32)) {
    g_set_error(error, I2V_ERROR, I2V_ERROR_CONFIG,
                "%s: max_position_embeddings %" G_GINT64_FORMAT " / vocab_size %" G_GINT64_FORMAT
                " must be positive",
                CONFIG_FILE, max_pos, vocab);
    ok = FALSE;
  }
  m->max_positions = (int)max_pos;
  m->vocab = (int)vocab;
  return ok;
}

/* Loads every tensor of the text tower with the shapes the config implies. */
static gboolean load_weights(I2vClipText *m, I2vWeights *w, GError **error) {
  int64_t c = m->d.hidden;
  if (!i2v_weights_load_2d(w, m->be, "text_model.embeddings.token_embedding.weight", m->vocab, c,
                           &m->token_embedding, error) ||
      !i2v_weights_load_2d(w, m->be, "text_model.embeddings.position_embedding.weight",
                           m->max_positions, c, &m->position_embedding, error))
    return FALSE;
  m->layers = i2v_clip_layers_load(w, m->be, "text_model", &m->d, error);
  return m->layers != NULL && i2v_clip_norm_load(w, m->be, "text_model.final_layer_norm", c,
                                                 &m->final_w, &m->final_b, error);
}

I2vClipText *i2v_clip_text_load(I2vModelDir *md, I2vBackend *be, GError **error) {
  I2vClipText *m = g_new0(I2vClipText, 1);
  m->be = be;
  if (!read_config(m, md, error)) {
    i2v_clip_text_free(m);
    return NULL;
  }
  I2vWeights *w = i2v_model_dir_weights(md, "text_encoder", error);
  gboolean ok = w != NULL && load_weights(m, w, error);
  if (ok) i2v_weights_log_unused(w);
  i2v_weights_free(w);
  if (!ok) {
    i2v_clip_text_free(m);
    return NULL;
  }
  return m;
}

void i2v_clip_text_free(I2vClipText *m) {
  if (m == NULL) return;
  i2v_tensor_free(&m->token_embedding);
  i2v_tensor_free(&m->position_embedding);
  i2v_clip_layers_free(m->layers, m->d.layers);
  i2v_tensor_free(&m->final_w);
  i2v_tensor_free(&m->final_b);
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
  for (int l = 0; l < n_layers; l++) {
    i2v_clip_layer_forward(st, &m->layers[l], &m->d, &x, TRUE);
    i2v_clip_tap_hidden(st, l + 1, &x);
  }
  if (final_norm) i2v_op_layer_norm(st, &x, &x, &m->final_w, &m->final_b, m->d.eps);
  gboolean ok = i2v_tensor_download_f32(st, &x, out, error);
  i2v_scratch_release(st, mark);
  return ok;
}
