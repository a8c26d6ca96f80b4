#include <i2v/error.h>

G_DEFINE_QUARK(i2v - error - quark, i2v_error)
