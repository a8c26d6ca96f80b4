/* The CUDA backend's setup and memory side: device and driver checks, cuBLAS, cuBLASLt and cuDNN
 * loaded with dlopen, cudaMalloc'd tensors, and streams: each a non-blocking cudaStream_t with its
 * own cuBLAS, cuBLASLt and cuDNN handles, cuBLASLt workspace, plan caches and chunked device
 * scratch arena, so that streams of one device run side by side.
 *
 * Nothing here needs a driver at load time: the CUDA runtime is linked statically and loads the
 * driver itself on the first call; the NVIDIA libraries are dlopen()ed on the first backend. A
 * machine without the driver, cuBLAS or cuBLASLt gets a GError from i2v_cuda_backend_new naming
 * what is missing, never a load failure; one without cuDNN runs convolutions through GEMMs.
 * cuBLASLt is required, not optional: libcublas itself links against it, so a machine with cuBLAS
 * has it, and one GEMM path less is one path less to verify. */
#include <dlfcn.h>
#include <string.h>

#include "cuda_priv.h"
#include <i2v/error.h>

/* The planning copy (plan_rename.h) names its device plan:cuda and takes no data: weights need
 * not be read for it. */
#ifdef I2V_CUDA_PLAN
#define DEVICE_NAME_FORMAT "plan:cuda:%d"
#define COUNTS_ONLY TRUE
#else
#define DEVICE_NAME_FORMAT "cuda:%d"
#define COUNTS_ONLY FALSE
#endif

/* Smallest device scratch chunk (larger requests get chunks of their own size): enough for the
 * encoders' activations; a job with a plan reserves its UNet's whole need as one chunk
 * (i2v_session_reserve). */
#define ARENA_MIN_CHUNK ((size_t)64 << 20)
#define ARENA_ALIGN 256

/* ---- errors ---- */

static const char *blas_status_string(const CublasApi *blas, cublasStatus_t status) {
  return blas != NULL && blas->status_string != NULL ? blas->status_string(status) : "cuBLAS error";
}

gboolean i2v_cuda_check(I2vStream *st, cudaError_t status, const char *call, const char *file,
                        int line) {
  if (status == cudaSuccess) return TRUE;
  cudaGetLastError(); /* clear a non-sticky error so the next call does not report it again */
  int code = status == cudaErrorMemoryAllocation ? I2V_ERROR_NO_MEMORY : I2V_ERROR_BACKEND;
  i2v_stream_fail(st, g_error_new(I2V_ERROR, code, "%s: %s failed at %s:%d: %s (%s)", st->be->name,
                                  call, file, line, cudaGetErrorString(status),
                                  cudaGetErrorName(status)));
  return FALSE;
}

gboolean i2v_cublas_check(I2vStream *st, cublasStatus_t status, const char *call, const char *file,
                          int line) {
  if (status == CUBLAS_STATUS_SUCCESS) return TRUE;
  CudaStream *p = st->priv;
  int code = status == CUBLAS_STATUS_ALLOC_FAILED ? I2V_ERROR_NO_MEMORY : I2V_ERROR_BACKEND;
  i2v_stream_fail(st, g_error_new(I2V_ERROR, code, "%s: %s failed at %s:%d: %s (status %d)",
                                  st->be->name, call, file, line,
                                  blas_status_string(p->blas, status), (int)status));
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

CudaStream *i2v_cuda_enter(I2vStream *st) {
  CudaStream *p = st->priv;
  CUDA_OK(st, cudaSetDevice(p->device));
  return p;
}

/* ---- NVIDIA libraries, loaded once per process ---- */

typedef struct {
  const char *name;
  void **slot;
} ApiSymbol;

/* Opens the first of `names` that loads and fills every symbol's slot from it; FALSE with *why
 * (newly allocated) otherwise. */
static gboolean open_api(const char *const *names, guint n_names, const ApiSymbol *syms,
                         guint n_syms, char **why) {
  void *lib = NULL;
  for (guint i = 0; i < n_names && lib == NULL; i++) lib = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
  if (lib == NULL) {
    *why = g_strdup_printf("%s not found (%s)", names[0], dlerror());
    return FALSE;
  }
  for (guint i = 0; i < n_syms; i++) {
    *syms[i].slot = dlsym(lib, syms[i].name);
    if (*syms[i].slot == NULL) {
      *why = g_strdup_printf("library %s lacks %s", names[0], syms[i].name);
      return FALSE;
    }
  }
  return TRUE;
}

static CublasApi blas_api;
static CublasLtApi lt_api;
static char *blas_error;

/* Opens one required library with open_api; FALSE with blas_error naming it. */
static gboolean load_required(const char *what, const char *const *names, guint n_names,
                              const ApiSymbol *syms, guint n_syms) {
  char *why = NULL;
  if (open_api(names, n_names, syms, n_syms, &why)) return TRUE;
  blas_error = g_strdup_printf("%s: %s", what, why);
  g_free(why);
  return FALSE;
}

static gpointer load_blas(gpointer unused) {
  (void)unused;
  const char *blas_names[] = {"libcublas.so." G_STRINGIFY(CUBLAS_VER_MAJOR), "libcublas.so"};
  const ApiSymbol blas_syms[] = {{"cublasCreate_v2", (void **)&blas_api.create},
                                 {"cublasDestroy_v2", (void **)&blas_api.destroy},
                                 {"cublasSetStream_v2", (void **)&blas_api.set_stream},
                                 {"cublasGemmEx", (void **)&blas_api.gemm_ex},
                                 {"cublasGetStatusString", (void **)&blas_api.status_string}};
  const char *lt_names[] = {"libcublasLt.so." G_STRINGIFY(CUBLAS_VER_MAJOR), "libcublasLt.so"};
  const ApiSymbol lt_syms[] = {{"cublasLtCreate", (void **)&lt_api.create},
                               {"cublasLtDestroy", (void **)&lt_api.destroy},
                               {"cublasLtMatmulDescCreate", (void **)&lt_api.desc_create},
                               {"cublasLtMatmulDescDestroy", (void **)&lt_api.desc_destroy},
                               {"cublasLtMatmulDescSetAttribute", (void **)&lt_api.desc_set},
                               {"cublasLtMatrixLayoutCreate", (void **)&lt_api.layout_create},
                               {"cublasLtMatrixLayoutDestroy", (void **)&lt_api.layout_destroy},
                               {"cublasLtMatmulPreferenceCreate", (void **)&lt_api.pref_create},
                               {"cublasLtMatmulPreferenceDestroy", (void **)&lt_api.pref_destroy},
                               {"cublasLtMatmulPreferenceSetAttribute", (void **)&lt_api.pref_set},
                               {"cublasLtMatmulAlgoGetHeuristic", (void **)&lt_api.heuristic},
                               {"cublasLtMatmul", (void **)&lt_api.matmul}};
  if (!load_required("cuBLAS", blas_names, G_N_ELEMENTS(blas_names), blas_syms,
                     G_N_ELEMENTS(blas_syms)) ||
      !load_required("cuBLASLt", lt_names, G_N_ELEMENTS(lt_names), lt_syms, G_N_ELEMENTS(lt_syms)))
    return NULL;
  return &blas_api;
}

/* The cuBLAS and cuBLASLt tables, or FALSE with an error naming the missing library. */
static gboolean blas_apis(const CublasApi **blas, const CublasLtApi **lt, GError **error) {
  static GOnce once = G_ONCE_INIT;
  *blas = g_once(&once, load_blas, NULL);
  *lt = *blas != NULL ? &lt_api : NULL;
  if (*blas == NULL)
    g_set_error(error, I2V_ERROR, I2V_ERROR_BACKEND, "CUDA backend unavailable: %s", blas_error);
  return *blas != NULL;
}

static CudnnApi dnn_api;

/* cuDNN is optional (convolutions fall back to GEMMs), so its absence is a message, not an error.
 * Only the soname of the major version built against: the legacy API's structs are per major. */
static gpointer load_cudnn(gpointer unused) {
  (void)unused;
  const char *names[] = {"libcudnn.so." G_STRINGIFY(CUDNN_MAJOR)};
  const ApiSymbol syms[] = {{"cudnnCreate", (void **)&dnn_api.create},
                            {"cudnnDestroy", (void **)&dnn_api.destroy},
                            {"cudnnSetStream", (void **)&dnn_api.set_stream},
                            {"cudnnGetErrorString", (void **)&dnn_api.error_string},
                            {"cudnnCreateTensorDescriptor", (void **)&dnn_api.create_tensor},
                            {"cudnnSetTensor4dDescriptor", (void **)&dnn_api.set_tensor_4d},
                            {"cudnnDestroyTensorDescriptor", (void **)&dnn_api.destroy_tensor},
                            {"cudnnCreateFilterDescriptor", (void **)&dnn_api.create_filter},
                            {"cudnnSetFilter4dDescriptor", (void **)&dnn_api.set_filter_4d},
                            {"cudnnDestroyFilterDescriptor", (void **)&dnn_api.destroy_filter},
                            {"cudnnCreateConvolutionDescriptor", (void **)&dnn_api.create_conv},
                            {"cudnnSetConvolution2dDescriptor", (void **)&dnn_api.set_conv_2d},
                            {"cudnnSetConvolutionMathType", (void **)&dnn_api.set_conv_math},
                            {"cudnnDestroyConvolutionDescriptor", (void **)&dnn_api.destroy_conv},
                            {"cudnnGetConvolutionForwardAlgorithm_v7", (void **)&dnn_api.fwd_algos},
                            {"cudnnConvolutionForward", (void **)&dnn_api.conv_fwd}};
  char *why = NULL;
  if (!open_api(names, G_N_ELEMENTS(names), syms, G_N_ELEMENTS(syms), &why)) {
    g_message("cuDNN unavailable: %s; convolutions run through im2col + GEMM", why);
    g_free(why);
    return NULL;
  }
  return &dnn_api;
}

const CudnnApi *i2v_cuda_cudnn_api(void) {
  static GOnce once = G_ONCE_INIT;
  return g_once(&once, load_cudnn, NULL);
}

/* ---- plan caches ---- */

GHashTable *i2v_cuda_plan_cache_new(GDestroyNotify plan_free) {
  return g_hash_table_new_full(g_bytes_hash, g_bytes_equal, (GDestroyNotify)g_bytes_unref,
                               plan_free);
}

gpointer i2v_cuda_plan_lookup(GHashTable *cache, const void *key, size_t key_size) {
  GBytes *k = g_bytes_new_static(key, key_size);
  gpointer plan = g_hash_table_lookup(cache, k);
  g_bytes_unref(k);
  return plan;
}

void i2v_cuda_plan_insert(GHashTable *cache, const void *key, size_t key_size, gpointer plan) {
  g_hash_table_insert(cache, g_bytes_new(key, key_size), plan);
}

/* ---- memory ---- */

/* Makes be's device current for the calling thread; FALSE with an error otherwise. */
static gboolean select_device(I2vBackend *be, GError **error) {
  CudaDevice *d = be->priv;
  cudaError_t status = cudaSetDevice(d->device);
  if (status == cudaSuccess) return TRUE;
  cudaGetLastError();
  g_set_error(error, I2V_ERROR, I2V_ERROR_BACKEND, "%s: cannot select the device: %s", be->name,
              cudaGetErrorString(status));
  return FALSE;
}

/* Persistent tensors are zeroed like the CPU backend's memory, so no tensor ever holds garbage;
 * cudaMemset (not Async) finishes before any stream can use the tensor. */
static gboolean cuda_alloc(I2vBackend *be, I2vTensor *t, GError **error) {
  size_t n = i2v_tensor_nbytes(t);
  if (!select_device(be, error)) return FALSE;
  if (cudaMalloc(&t->data, MAX(n, 1)) != cudaSuccess) {
    t->data = NULL;
    char shape[96];
    char *what = g_strdup_printf("for a %s %s tensor", i2v_dtype_name(t->dtype),
                                 i2v_shape_format(t->ndim, t->shape, shape, sizeof shape));
    set_no_memory(error, be->name, what, n);
    g_free(what);
    return FALSE;
  }
  cudaError_t status = cudaMemset(t->data, 0, n);
  if (status != cudaSuccess) {
    cudaGetLastError();
    g_set_error(error, I2V_ERROR, I2V_ERROR_BACKEND, "%s: cudaMemset failed: %s", be->name,
                cudaGetErrorString(status));
    cudaFree(t->data);
    t->data = NULL;
    return FALSE;
  }
  return TRUE;
}

static void cuda_free(I2vBackend *be, I2vTensor *t) {
  select_device(be, NULL);
  cudaFree(t->data); /* synchronises the device: queued work on t finishes first */
  t->data = NULL;
}

/* A synchronous copy into a tensor no stream uses yet (weights at load). */
static gboolean cuda_write(I2vBackend *be, I2vTensor *t, const void *host, GError **error) {
  size_t n = i2v_tensor_nbytes(t);
  if (!select_device(be, error)) return FALSE;
  cudaError_t status = cudaMemcpy(t->data, host, n, cudaMemcpyHostToDevice);
  if (status == cudaSuccess) return TRUE;
  cudaGetLastError();
  g_set_error(error, I2V_ERROR, I2V_ERROR_BACKEND, "%s: upload of %zu bytes failed: %s", be->name,
              n, cudaGetErrorString(status));
  return FALSE;
}

/* Waits for the stream; a failure here is a kernel that failed asynchronously. */
static gboolean stream_sync(I2vStream *st, const char *what, GError **error) {
  CudaStream *p = st->priv;
  cudaError_t status = cudaSetDevice(p->device);
  if (status == cudaSuccess) status = cudaStreamSynchronize(p->stream);
  if (status == cudaSuccess) return TRUE;
  cudaGetLastError();
  g_set_error(error, I2V_ERROR, I2V_ERROR_BACKEND, "%s: %s: queued GPU work failed: %s (%s)",
              st->be->name, what, cudaGetErrorString(status), cudaGetErrorName(status));
  return FALSE;
}

/* Host ↔ device copies on the stream, waited for: the caller's buffer is free to reuse on
 * return. */
static gboolean copy_host(I2vStream *st, void *dst, const void *src, size_t n,
                          enum cudaMemcpyKind kind, const char *what, GError **error) {
  CudaStream *p = st->priv;
  cudaError_t status = cudaSetDevice(p->device);
  if (status == cudaSuccess) status = cudaMemcpyAsync(dst, src, n, kind, p->stream);
  if (status != cudaSuccess) {
    cudaGetLastError();
    g_set_error(error, I2V_ERROR, I2V_ERROR_BACKEND, "%s: %s of %zu bytes failed: %s", st->be->name,
                what, n, cudaGetErrorString(status));
    return FALSE;
  }
  return stream_sync(st, what, error);
}

static gboolean cuda_copy_in(I2vStream *st, I2vTensor *t, const void *host, GError **error) {
  return copy_host(st, t->data, host, i2v_tensor_nbytes(t), cudaMemcpyHostToDevice, "upload",
                   error);
}

static gboolean cuda_copy_out(I2vStream *st, const I2vTensor *t, void *host, GError **error) {
  return copy_host(st, host, t->data, i2v_tensor_nbytes(t), cudaMemcpyDeviceToHost, "download",
                   error);
}

static gboolean cuda_sync(I2vStream *st, GError **error) {
  return stream_sync(st, "sync", error);
}

/* Scratch arena chunks (user: the backend). */
static void *arena_chunk_alloc(size_t bytes, void *user, GError **error) {
  I2vBackend *be = user;
  void *ptr = NULL;
  if (!select_device(be, error)) return NULL;
  if (cudaMalloc(&ptr, bytes) != cudaSuccess) {
    set_no_memory(error, be->name, "growing the scratch arena", bytes);
    return NULL;
  }
  return ptr;
}

static void arena_chunk_free(void *base, void *user) {
  select_device(user, NULL);
  cudaFree(base);
}

gboolean i2v_cuda_operand_as(I2vStream *st, const I2vTensor *t, I2vDType dt, CuBuf *out) {
  *out = cu_buf(t);
  if (t->dtype == dt) return TRUE;
  int64_t n = i2v_tensor_numel(t);
  CuBuf conv = {i2v_scratch_bytes(st, (size_t)n * i2v_dtype_size(dt)), (int)dt};
  if (conv.p == NULL) return FALSE;
  CudaStream *p = st->priv;
  if (!CUDA_OK(st, i2v_cu_convert(p->stream, conv, *out, n))) return FALSE;
  *out = conv;
  return TRUE;
}

/* cudaMemGetInfo of the backend's device: total − free, so the driver's context, cuBLAS
 * workspaces and other processes count too (what nvidia-smi shows, not only our allocations). */
static void cuda_device_memory(I2vBackend *be, size_t *used, size_t *total) {
  size_t free_b = 0, total_b = 0;
  if (!select_device(be, NULL) || cudaMemGetInfo(&free_b, &total_b) != cudaSuccess) {
    cudaGetLastError(); /* a statistic, not a failure of the computation */
    free_b = total_b = 0;
  }
  *used = total_b - free_b;
  *total = total_b;
}

static void cuda_destroy(I2vBackend *be) {
  g_free(be->priv);
  g_free(be);
}

/* ---- streams ---- */

static void cuda_stream_fini(I2vStream *st) {
  CudaStream *p = st->priv;
  if (p == NULL) return;
  cudaSetDevice(p->device);
  if (p->stream != NULL) cudaStreamSynchronize(p->stream);
  i2v_cuda_conv_fini(p);
  if (p->gemm_plans != NULL) g_hash_table_destroy(p->gemm_plans);
  if (p->lt != NULL) p->lt_api->destroy(p->lt);
  if (p->lt_workspace != NULL) cudaFree(p->lt_workspace);
  if (p->cublas != NULL) p->blas->destroy(p->cublas);
  if (p->stream != NULL) cudaStreamDestroy(p->stream);
  g_free(p);
  st->priv = NULL;
}

static gboolean cuda_stream_init(I2vStream *st, GError **error) {
  CudaDevice *d = st->be->priv;
  CudaStream *p = g_new0(CudaStream, 1);
  st->priv = p;
  p->device = d->device;
  p->blas = d->blas;
  p->lt_api = d->lt_api;
  p->gemm_plans = i2v_cuda_gemm_plans_new();
  cudaError_t status = cudaSetDevice(d->device);
  if (status == cudaSuccess) status = cudaStreamCreateWithFlags(&p->stream, cudaStreamNonBlocking);
  if (status != cudaSuccess) {
    cudaGetLastError();
    g_set_error(error, I2V_ERROR, I2V_ERROR_BACKEND, "%s: cannot create a stream: %s", d->name,
                cudaGetErrorString(status));
    cuda_stream_fini(st);
    return FALSE;
  }
  cublasStatus_t bs = p->blas->create(&p->cublas);
  if (bs == CUBLAS_STATUS_SUCCESS) bs = p->blas->set_stream(p->cublas, p->stream);
  if (bs == CUBLAS_STATUS_SUCCESS) bs = p->lt_api->create(&p->lt);
  if (bs != CUBLAS_STATUS_SUCCESS) {
    g_set_error(error, I2V_ERROR, I2V_ERROR_BACKEND, "%s: cannot set up cuBLAS and cuBLASLt: %s",
                d->name, blas_status_string(p->blas, bs));
    cuda_stream_fini(st);
    return FALSE;
  }
  if (cudaMalloc(&p->lt_workspace, CUDA_LT_WORKSPACE_BYTES) != cudaSuccess) {
    p->lt_workspace = NULL;
    set_no_memory(error, d->name, "for the cuBLASLt workspace", CUDA_LT_WORKSPACE_BYTES);
    cuda_stream_fini(st);
    return FALSE;
  }
  st->reserved = CUDA_LT_WORKSPACE_BYTES;
  i2v_cuda_conv_init(st);
  return TRUE;
}

static const I2vBackendIface cuda_iface = {
    .alloc = cuda_alloc,
    .free = cuda_free,
    .write = cuda_write,
    .device_memory = cuda_device_memory,
    .destroy = cuda_destroy,
    .stream_init = cuda_stream_init,
    .stream_fini = cuda_stream_fini,
    .copy_in = cuda_copy_in,
    .copy_out = cuda_copy_out,
    .sync = cuda_sync,
    .chunk_alloc = arena_chunk_alloc,
    .chunk_free = arena_chunk_free,
    .chunk_align = ARENA_ALIGN,
    .min_chunk = ARENA_MIN_CHUNK,
    .counts_only = COUNTS_ONLY,
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
  const CublasApi *blas;
  const CublasLtApi *lt;
  if (!blas_apis(&blas, &lt, error)) return NULL;

  I2vBackend *be = g_new0(I2vBackend, 1);
  CudaDevice *d = g_new0(CudaDevice, 1);
  d->device = device;
  d->blas = blas;
  d->lt_api = lt;
  g_snprintf(d->name, sizeof d->name, DEVICE_NAME_FORMAT, device);
  be->name = d->name;
  be->act_dtype = act_dtype;
  be->weight_dtype = act_dtype;
  be->ops = &i2v_cuda_ops;
  be->iface = &cuda_iface;
  be->priv = d;
  return be;
}
