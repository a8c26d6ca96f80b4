/* The tensors of each network, as its own loader reads them: the loaders are the one place that
 * knows names and shapes, so listing runs them against a recording weight source. */
#include "model_tensors.h"

#include <string.h>

#include <i2v/error.h>

#include "clip_text.h"
#include "clip_vision.h"
#include "cpu_backend.h"
#include "unet3d.h"
#include "vae.h"

const char *const i2v_weight_components[] = {"unet", "vae", "text_encoder", "image_encoder", NULL};

gboolean i2v_model_dir_list_tensors(const char *dir, const char *component, I2vWeightsRecordFn fn,
                                    void *user, GError **error) {
  I2vModelDir *md = i2v_model_dir_open(dir, NULL, error);
  if (md == NULL) return FALSE;
  i2v_model_dir_record(md, fn, user);
  I2vBackend *be = i2v_cpu_backend_new(0); /* never allocates: recorded tensors have no memory */
  gboolean ok = FALSE;
  if (strcmp(component, "unet") == 0) {
    I2vUnet *m = i2v_unet_load(md, be, error);
    ok = m != NULL;
    i2v_unet_free(m);
  } else if (strcmp(component, "vae") == 0) {
    I2vVae *m = i2v_vae_load(md, be, error);
    ok = m != NULL;
    i2v_vae_free(m);
  } else if (strcmp(component, "text_encoder") == 0) {
    I2vClipText *m = i2v_clip_text_load(md, be, error);
    ok = m != NULL;
    i2v_clip_text_free(m);
  } else if (strcmp(component, "image_encoder") == 0) {
    I2vClipVision *m = i2v_clip_vision_load(md, be, error);
    ok = m != NULL;
    i2v_clip_vision_free(m);
  } else {
    g_set_error(error, I2V_ERROR, I2V_ERROR_INVALID,
                "'%s' is not a model component with weights (unet, vae, text_encoder, "
                "image_encoder)",
                component);
  }
  i2v_backend_free(be);
  i2v_model_dir_free(md);
  return ok;
}
