/* The CUDA backend's setup and memory side: device and driver checks, cuBLAS loaded with dlopen,
 * one non-blocking stream, cudaMalloc'd tensors and a chunked device scratch arena.
 *
 * Nothing here needs a driver at load time: the CUDA runtime is linked statically and loads the
 * driver itself on the first call; cuBLAS is dlopen()ed on the first backend. A machine without
 * either gets a GError from i2v_cuda_backend_new, never a load failure. */
#include <dlfcn.h>
#include <string.h>

#include "cuda_priv.h"
#include "error.h"

/* Smallest device scratch chunk: the arena starts here and doubles when a step needs more. */
#define ARENA_MIN_CHUNK ((size_t)256 << 20)
#define ARENA_ALIGN 256

/* ---- errors ---- */

static const char *blas_status_string(const CublasApi *blas, cublasStatus_t status) {
  return blas != NULL && blas->status_string != NULL ? blas->status_string(status) : "cuBLAS error";
}

gboolean cuda_check(I2vBackend *be, cudaError_t status, const char *call, const char *file,
                    int line) {
  if (status == cudaSuccess) return TRUE;
  cudaGetLastError(); /* clear a non-sticky error so the next call does not report it again */
  int code = status == cudaErrorMemoryAllocation ? I2V_ERROR_NO_MEMORY : I2V_ERROR_BACKEND;
  i2v_backend_fail(be,
                   g_error_new(I2V_ERROR, code, "%s: %s failed at %s:%d: %s (%s)", be->name, call,
                               file, line, cudaGetErrorString(status), cudaGetErrorName(status)));
  return FALSE;
}

gboolean cublas_check(I2vBackend *be, cublasStatus_t status, const char *call, const char *file,
                      int line) {
  if (status == CUBLAS_STATUS_SUCCESS) return TRUE;
  CudaPriv *p = be->priv;
  int code = status == CUBLAS_STATUS_ALLOC_FAILED ? I2V_ERROR_NO_MEMORY : I2V_ERROR_BACKEND;
  i2v_backend_fail(be,
                   g_error_new(I2V_ERROR, code, "%s: %s failed at %s:%d: %s (status %d)", be->name,
                               call, file, line, blas_status_string(p->blas, status), (int)status));
  return FALSE;
}

/* "out of device memory" with the size asked for and what the device has left. */
static void set_no_memory(GError **error, const char *name, const char *what, size_t bytes) {
  cudaGetLastError();
  size_t free_b = 0, total_b = 0;
  cudaMemGetInfo(&free_b, &total_b);
  g_set_error(error, I2V_ERROR, I2V_ERROR_NO_MEMORY,
              "%s: out of device memory %s: asked for %zu bytes, %zu of %zu bytes free", name, what,
              bytes, free_b, total_b);
}

CudaPriv *cuda_enter(I2vBackend *be) {
  CudaPriv *p = be->priv;
  CUDA_OK(be, cudaSetDevice(p->device));
  return p;
}

/* ---- cuBLAS, loaded once per process ---- */

static CublasApi blas_api;
static char *blas_error;

static gpointer load_cublas(gpointer unused) {
  (void)unused;
  const char *names[] = {"libcublas.so." G_STRINGIFY(CUBLAS_VER_MAJOR), "libcublas.so"};
  void *lib = NULL;
  for (guint i = 0; i < G_N_ELEMENTS(names) && lib == NULL; i++)
    lib = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
  if (lib == NULL) {
    blas_error = g_strdup_printf("cuBLAS not found (%s)", dlerror());
    return NULL;
  }
  struct {
    const char *sym;
    void **slot;
  } syms[] = {{"cublasCreate_v2", (void **)&blas_api.create},
              {"cublasDestroy_v2", (void **)&blas_api.destroy},
              {"cublasSetStream_v2", (void **)&blas_api.set_stream},
              {"cublasGemmEx", (void **)&blas_api.gemm_ex},
              {"cublasGetStatusString", (void **)&blas_api.status_string}};
  for (guint i = 0; i < G_N_ELEMENTS(syms); i++) {
    *syms[i].slot = dlsym(lib, syms[i].sym);
    if (*syms[i].slot == NULL) {
      blas_error = g_strdup_printf("cuBLAS library %s lacks %s", names[0], syms[i].sym);
      return NULL;
    }
  }
  return &blas_api;
}

/* The cuBLAS table, or NULL with an error. The library stays loaded for the process. */
static const CublasApi *cublas_api(GError **error) {
  static GOnce once = G_ONCE_INIT;
  const CublasApi *api = g_once(&once, load_cublas, NULL);
  if (api == NULL)
    g_set_error(error, I2V_ERROR, I2V_ERROR_BACKEND, "CUDA backend unavailable: %s", blas_error);
  return api;
}

/* ---- memory ---- */

static gboolean cuda_alloc(I2vBackend *be, I2vTensor *t, GError **error) {
  CudaPriv *p = be->priv;
  size_t n = i2v_tensor_nbytes(t);
  cudaError_t dev = cudaSetDevice(p->device);
  if (dev != cudaSuccess) {
    cudaGetLastError();
    g_set_error(error, I2V_ERROR, I2V_ERROR_BACKEND, "%s: cannot select the device: %s", be->name,
                cudaGetErrorString(dev));
    return FALSE;
  }
  if (cudaMalloc(&t->data, MAX(n, 1)) != cudaSuccess) {
    t->data = NULL;
    char shape[96];
    char *what = g_strdup_printf("for a %s %s tensor", i2v_dtype_name(t->dtype),
                                 i2v_shape_format(t->ndim, t->shape, shape, sizeof shape));
    set_no_memory(error, be->name, what, n);
    g_free(what);
    return FALSE;
  }
  /* zeroed like the CPU backend's memory, so no tensor ever holds garbage */
  cudaError_t st = cudaMemsetAsync(t->data, 0, n, p->stream);
  if (st != cudaSuccess) {
    g_set_error(error, I2V_ERROR, I2V_ERROR_BACKEND, "%s: cudaMemsetAsync failed: %s", be->name,
                cudaGetErrorString(st));
    cudaFree(t->data);
    t->data = NULL;
    return FALSE;
  }
  return TRUE;
}

static void cuda_free(I2vBackend *be, I2vTensor *t) {
  cuda_enter(be);
  cudaFree(t->data); /* synchronises the device: queued work on t finishes first */
  t->data = NULL;
}

/* Waits for the stream; a failure here is a kernel that failed asynchronously. */
static gboolean stream_sync(I2vBackend *be, const char *what, GError **error) {
  CudaPriv *p = be->priv;
  cudaError_t st = cudaStreamSynchronize(p->stream);
  if (st == cudaSuccess) return TRUE;
  cudaGetLastError();
  g_set_error(error, I2V_ERROR, I2V_ERROR_BACKEND, "%s: %s: queued GPU work failed: %s (%s)",
              be->name, what, cudaGetErrorString(st), cudaGetErrorName(st));
  return FALSE;
}

/* Host ↔ device copies are synchronous: the caller's buffer is free to reuse on return. */
static gboolean copy_host(I2vBackend *be, void *dst, const void *src, size_t n,
                          enum cudaMemcpyKind kind, const char *what, GError **error) {
  CudaPriv *p = be->priv;
  cudaError_t st = cudaSetDevice(p->device);
  if (st == cudaSuccess) st = cudaMemcpyAsync(dst, src, n, kind, p->stream);
  if (st != cudaSuccess) {
    cudaGetLastError();
    g_set_error(error, I2V_ERROR, I2V_ERROR_BACKEND, "%s: %s of %zu bytes failed: %s", be->name,
                what, n, cudaGetErrorString(st));
    return FALSE;
  }
  return stream_sync(be, what, error);
}

static gboolean cuda_upload(I2vBackend *be, I2vTensor *t, const void *host, GError **error) {
  return copy_host(be, t->data, host, i2v_tensor_nbytes(t), cudaMemcpyHostToDevice, "upload",
                   error);
}

static gboolean cuda_download(I2vBackend *be, const I2vTensor *t, void *host, GError **error) {
  return copy_host(be, host, t->data, i2v_tensor_nbytes(t), cudaMemcpyDeviceToHost, "download",
                   error);
}

static gboolean cuda_sync(I2vBackend *be, GError **error) {
  CudaPriv *p = be->priv;
  if (cudaSetDevice(p->device) != cudaSuccess) {
    g_set_error(error, I2V_ERROR, I2V_ERROR_BACKEND, "%s: cannot select the device", be->name);
    return FALSE;
  }
  return stream_sync(be, "sync", error);
}

static void *arena_chunk_alloc(size_t bytes, void *user, GError **error) {
  I2vBackend *be = user;
  void *ptr = NULL;
  if (cudaMalloc(&ptr, bytes) != cudaSuccess) {
    set_no_memory(error, be->name, "growing the scratch arena", bytes);
    return NULL;
  }
  return ptr;
}

static void arena_chunk_free(void *base, void *user) {
  (void)user;
  cudaFree(base);
}

static void *cuda_scratch_alloc(I2vBackend *be, size_t bytes, GError **error) {
  CudaPriv *p = cuda_enter(be);
  return i2v_arena_alloc(&p->arena, bytes, error);
}

static size_t cuda_scratch_mark(I2vBackend *be) {
  CudaPriv *p = be->priv;
  return i2v_arena_mark(&p->arena);
}

static void cuda_scratch_release(I2vBackend *be, size_t mark) {
  /* no sync needed: the stream orders every later use of the memory after earlier ones */
  CudaPriv *p = be->priv;
  i2v_arena_release(&p->arena, mark);
}

static size_t cuda_scratch_capacity(I2vBackend *be) {
  CudaPriv *p = be->priv;
  return i2v_arena_capacity(&p->arena);
}

void *cuda_scratch(I2vBackend *be, size_t bytes) {
  GError *err = NULL;
  void *ptr = be->mem->scratch_alloc(be, bytes, &err);
  if (ptr == NULL) i2v_backend_fail(be, err);
  return ptr;
}

gboolean cuda_operand_as(I2vBackend *be, const I2vTensor *t, I2vDType dt, CuBuf *out) {
  *out = cu_buf(t);
  if (t->dtype == dt) return TRUE;
  int64_t n = i2v_tensor_numel(t);
  CuBuf conv = {cuda_scratch(be, (size_t)n * i2v_dtype_size(dt)), (int)dt};
  if (conv.p == NULL) return FALSE;
  CudaPriv *p = be->priv;
  if (!CUDA_OK(be, cu_convert(p->stream, conv, *out, n))) return FALSE;
  *out = conv;
  return TRUE;
}

/* cudaMemGetInfo of the backend's device: total − free, so the driver's context, cuBLAS
 * workspaces and other processes count too (what nvidia-smi shows, not only our allocations). */
static void cuda_device_memory(I2vBackend *be, size_t *used, size_t *total) {
  CudaPriv *p = be->priv;
  size_t free_b = 0, total_b = 0;
  if (cudaSetDevice(p->device) != cudaSuccess || cudaMemGetInfo(&free_b, &total_b) != cudaSuccess) {
    cudaGetLastError(); /* a statistic, not a failure of the computation */
    free_b = total_b = 0;
  }
  *used = total_b - free_b;
  *total = total_b;
}

static void cuda_destroy(I2vBackend *be) {
  CudaPriv *p = be->priv;
  cudaSetDevice(p->device);
  cudaStreamSynchronize(p->stream);
  if (p->cublas != NULL) p->blas->destroy(p->cublas);
  if (p->arena.chunks != NULL) i2v_arena_destroy(&p->arena);
  if (p->stream != NULL) cudaStreamDestroy(p->stream);
  g_free(p);
  g_free(be);
}

static const I2vMemOps cuda_mem = {
    .alloc = cuda_alloc,
    .free = cuda_free,
    .upload = cuda_upload,
    .download = cuda_download,
    .sync = cuda_sync,
    .scratch_alloc = cuda_scratch_alloc,
    .scratch_mark = cuda_scratch_mark,
    .scratch_release = cuda_scratch_release,
    .scratch_capacity = cuda_scratch_capacity,
    .device_memory = cuda_device_memory,
    .destroy = cuda_destroy,
};

/* ---- setup ---- */

int i2v_cuda_device_count(void) {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();
    return 0;
  }
  return n;
}

/* Checks that the driver works and `device` exists; the message says which of the two failed. */
static gboolean check_device(int device, GError **error) {
  int n = 0;
  cudaError_t st = cudaGetDeviceCount(&n);
  if (st != cudaSuccess) cudaGetLastError();
  if (st == cudaErrorInsufficientDriver || st == cudaErrorNoDevice ||
      st == cudaErrorInitializationError)
    g_set_error(error, I2V_ERROR, I2V_ERROR_BACKEND,
                "cuda:%d: %s: %s (the NVIDIA driver is missing, too old for this CUDA %d.%d "
                "build, or sees no GPU)",
                device, st == cudaErrorNoDevice ? "no CUDA device found" : "CUDA driver not found",
                cudaGetErrorString(st), CUDART_VERSION / 1000, CUDART_VERSION % 1000 / 10);
  else if (st != cudaSuccess)
    g_set_error(error, I2V_ERROR, I2V_ERROR_BACKEND, "cuda:%d: CUDA is not usable: %s (%s)", device,
                cudaGetErrorString(st), cudaGetErrorName(st));
  else if (device < 0 || device >= n)
    g_set_error(error, I2V_ERROR, I2V_ERROR_BACKEND,
                "cuda:%d: no such device (%d CUDA device%s found: cuda:0..cuda:%d)", device, n,
                n == 1 ? "" : "s", n - 1);
  return st == cudaSuccess && device >= 0 && device < n;
}

I2vBackend *i2v_cuda_backend_new(int device, I2vDType act_dtype, GError **error) {
  if (act_dtype != I2V_DTYPE_F32 && act_dtype != I2V_DTYPE_F16 && act_dtype != I2V_DTYPE_BF16) {
    g_set_error(error, I2V_ERROR, I2V_ERROR_INVALID,
                "cuda:%d: precision %s is not supported (F32, F16 or BF16)", device,
                i2v_dtype_name(act_dtype));
    return NULL;
  }
  if (!check_device(device, error)) return NULL;
  const CublasApi *blas = cublas_api(error);
  if (blas == NULL) return NULL;

  I2vBackend *be = g_new0(I2vBackend, 1);
  CudaPriv *p = g_new0(CudaPriv, 1);
  p->device = device;
  p->blas = blas;
  g_snprintf(p->name, sizeof p->name, "cuda:%d", device);
  be->name = p->name;
  be->act_dtype = act_dtype;
  be->weight_dtype = act_dtype;
  be->ops = &i2v_cuda_ops;
  be->mem = &cuda_mem;
  be->priv = p;
  i2v_arena_init(&p->arena, ARENA_ALIGN, ARENA_MIN_CHUNK, arena_chunk_alloc, arena_chunk_free, be);

  cudaError_t st = cudaSetDevice(device);
  if (st == cudaSuccess) st = cudaStreamCreateWithFlags(&p->stream, cudaStreamNonBlocking);
  if (st != cudaSuccess) {
    cudaGetLastError();
    g_set_error(error, I2V_ERROR, I2V_ERROR_BACKEND, "%s: cannot create a stream: %s", p->name,
                cudaGetErrorString(st));
    cuda_destroy(be);
    return NULL;
  }
  cublasStatus_t bs = blas->create(&p->cublas);
  if (bs == CUBLAS_STATUS_SUCCESS) bs = blas->set_stream(p->cublas, p->stream);
  if (bs != CUBLAS_STATUS_SUCCESS) {
    g_set_error(error, I2V_ERROR, I2V_ERROR_BACKEND, "%s: cannot set up cuBLAS: %s", p->name,
                blas_status_string(blas, bs));
    cuda_destroy(be);
    return NULL;
  }
  return be;
}
