/* The engine's error domain (i2v/error.h). */
#include <i2v/error.h>

/* Written out rather than with G_DEFINE_QUARK, which stringifies its argument: a formatter that
 * spaces the dashes would change the quark's name. */
GQuark i2v_error_quark(void) {
  return g_quark_from_static_string("i2v-error-quark");
}
