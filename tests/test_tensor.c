/* Tensor bookkeeping and the f16/bf16 conversions against exhaustive / known values. */
#include <math.h>
#include <string.h>

#include "tensor.h"

static void test_f16_roundtrip(void) {
  /* every finite half converts to float and back unchanged */
  for (uint32_t h = 0; h < 0x10000; h++) {
    if ((h & 0x7c00) == 0x7c00 && (h & 0x3ff)) continue; /* NaN payloads */
    g_assert_cmpuint(i2v_f32_to_f16(i2v_f16_to_f32((uint16_t)h)), ==, h);
  }
  g_assert_cmpfloat(i2v_f16_to_f32(0x3c00), ==, 1.0f);
  g_assert_cmpfloat(i2v_f16_to_f32(0x0001), ==, ldexpf(1, -24));
  g_assert_cmpuint(i2v_f32_to_f16(65520.0f), ==, 0x7c00);              /* ties to even → inf */
  g_assert_cmpuint(i2v_f32_to_f16(1.0f + ldexpf(1, -11)), ==, 0x3c00); /* tie → even */
  g_assert_cmpuint(i2v_f32_to_f16(1.0f + 3 * ldexpf(1, -11)), ==, 0x3c02);
  g_assert_cmpuint(i2v_f32_to_f16(ldexpf(1, -25)), ==, 0); /* tie with 0 → 0 */
  g_assert_cmpuint(i2v_f32_to_f16(ldexpf(3, -26)), ==, 1);
}

static void test_bf16(void) {
  g_assert_cmpfloat(i2v_bf16_to_f32(0x3f80), ==, 1.0f);
  g_assert_cmpuint(i2v_f32_to_bf16(1.0f + ldexpf(1, -8)), ==, 0x3f80); /* tie → even */
  g_assert_cmpuint(i2v_f32_to_bf16(1.0f + 3 * ldexpf(1, -8)), ==, 0x3f82);
}

static void test_shapes(void) {
  int64_t shape[] = {2, 3, 4};
  I2vTensor t = i2v_host_tensor(I2V_DTYPE_F16, 3, shape);
  g_assert_cmpint(i2v_tensor_numel(&t), ==, 24);
  g_assert_cmpuint(i2v_tensor_nbytes(&t), ==, 48);
  char buf[64];
  g_assert_cmpstr(i2v_shape_format(3, shape, buf, sizeof buf), ==, "[2, 3, 4]");
  i2v_host_tensor_free(&t);
  I2vDType d;
  g_assert_true(i2v_dtype_from_name("BF16", &d) && d == I2V_DTYPE_BF16);
  g_assert_false(i2v_dtype_from_name("F64", &d));
}

int main(int argc, char **argv) {
  g_test_init(&argc, &argv, NULL);
  g_test_add_func("/tensor/f16", test_f16_roundtrip);
  g_test_add_func("/tensor/bf16", test_bf16);
  g_test_add_func("/tensor/shapes", test_shapes);
  return g_test_run();
}
