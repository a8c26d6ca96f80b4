/* The CUDA backend's dlopen()ed libraries: a libcublasLt.so.13 that lacks the cuBLASLt entry points
 * (tests/cudasim/broken_lt, first on LD_LIBRARY_PATH) makes i2v_cuda_backend_new fail with an
 * error naming cuBLASLt, the library file and the missing symbol, not crash. Runs on the simulated
 * backend (a machine without a GPU would fail earlier, at the device check). */
#include "cuda_backend.h"
#include <i2v/error.h>
#include "golden.h"

static void test_broken_cublaslt(void) {
  GError *err = NULL;
  I2vBackend *be = i2v_cuda_backend_new(0, I2V_DTYPE_F16, &err);
  g_assert_null(be);
  golden_assert_error(
      &err, I2V_ERROR_BACKEND,
      (const char *const[]){"cuBLASLt", "libcublasLt.so.13", "cublasLtCreate", NULL});
}

int main(int argc, char **argv) {
  g_test_init(&argc, &argv, NULL);
  g_test_add_func("/cuda/libs/broken-cublaslt", test_broken_cublaslt);
  return g_test_run();
}
