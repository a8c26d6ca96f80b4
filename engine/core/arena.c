/* The chunked scratch arena. A mark is a global offset: the sizes of all chunks before the
 * current one plus the bytes used in it; a chunk whose tail cannot hold a request is skipped (its
 * tail stays unused until a release goes back into it). */
#include "arena.h"

typedef struct {
  char *base;
  size_t size;
} Chunk;

void i2v_arena_init(I2vArena *a, size_t align, size_t min_chunk, I2vChunkAllocFn alloc,
                    I2vChunkFreeFn free, void *user) {
  *a = (I2vArena){.chunks = g_array_new(FALSE, FALSE, sizeof(Chunk)),
                  .align = align,
                  .min_chunk = min_chunk,
                  .alloc = alloc,
                  .free = free,
                  .user = user};
}

static size_t chunk_size(const I2vArena *a, guint i) {
  return g_array_index(a->chunks, Chunk, i).size;
}

size_t i2v_arena_capacity(const I2vArena *a) {
  return __atomic_load_n(&a->capacity, __ATOMIC_RELAXED);
}

/* Appends a chunk of size bytes and makes it current; FALSE with error when it cannot be made. */
static gboolean add_chunk(I2vArena *a, size_t size, GError **error) {
  Chunk c = {.base = a->alloc(size, a->user, error), .size = size};
  if (c.base == NULL) return FALSE;
  g_array_append_val(a->chunks, c);
  size_t capacity = __atomic_add_fetch(&a->capacity, c.size, __ATOMIC_RELAXED);
  a->capacity_high = MAX(a->capacity_high, capacity);
  a->cur = a->chunks->len - 1;
  a->used = 0;
  return TRUE;
}

/* Frees every chunk (the arena stays usable: empty). */
static void free_chunks(I2vArena *a) {
  for (guint i = 0; i < a->chunks->len; i++)
    a->free(g_array_index(a->chunks, Chunk, i).base, a->user);
  g_array_set_size(a->chunks, 0);
  __atomic_store_n(&a->capacity, 0, __ATOMIC_RELAXED);
  a->cur = 0;
  a->used = 0;
}

void *i2v_arena_alloc(I2vArena *a, size_t bytes, GError **error) {
  bytes = (bytes + a->align - 1) & ~(a->align - 1);
  for (;;) {
    if (a->cur < a->chunks->len) {
      Chunk *c = &g_array_index(a->chunks, Chunk, a->cur);
      if (a->used + bytes <= c->size) {
        void *ptr = c->base + a->used;
        a->used += bytes;
        a->high = MAX(a->high, i2v_arena_mark(a));
        return ptr;
      }
      if (a->cur + 1 < a->chunks->len) { /* try the next existing chunk */
        a->cur++;
        a->used = 0;
        continue;
      }
    }
    if (!add_chunk(a, MAX(bytes, a->min_chunk), error)) return NULL;
  }
}

gboolean i2v_arena_reserve(I2vArena *a, size_t bytes, GError **error) {
  bytes = (bytes + a->align - 1) & ~(a->align - 1);
  if (a->chunks->len == 1 && chunk_size(a, 0) == bytes) return TRUE;
  g_return_val_if_fail(i2v_arena_mark(a) == 0, FALSE);
  free_chunks(a);
  return add_chunk(a, bytes, error);
}

size_t i2v_arena_mark(const I2vArena *a) {
  size_t start = 0;
  for (guint i = 0; i < a->cur && i < a->chunks->len; i++) start += chunk_size(a, i);
  return start + a->used;
}

void i2v_arena_release(I2vArena *a, size_t mark) {
  size_t start = 0;
  for (guint i = 0; i < a->chunks->len; i++) {
    size_t size = chunk_size(a, i);
    if (mark <= start + size) {
      a->cur = i;
      a->used = mark - start;
      return;
    }
    start += size;
  }
  a->cur = 0;
  a->used = 0;
}

void i2v_arena_highs(I2vArena *a, gboolean reset, size_t *high, size_t *capacity_high) {
  *high = a->high;
  *capacity_high = a->capacity_high;
  if (reset) {
    a->high = i2v_arena_mark(a);
    a->capacity_high = i2v_arena_capacity(a);
  }
}

void i2v_arena_destroy(I2vArena *a) {
  free_chunks(a);
  g_array_unref(a->chunks);
  a->chunks = NULL;
}
