/* A scratch arena over chunks of any memory (host or device): bump allocation, stack-like
 * release to a mark, chunks kept once made, so a denoising loop allocates on its first step only.
 * A chunk is as large as the request that made it (at least min_chunk), never more: chunks that
 * doubled with the arena held up to twice what a job needed. A job whose need is known (a memory
 * plan) reserves it as one chunk up front (i2v_arena_reserve), so capacity is exactly the need.
 * Used by both backends (CPU: aligned host chunks, CUDA: cudaMalloc); each supplies its chunk
 * allocator. */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* Makes a chunk of bytes (NULL with error on failure) / frees one. */
typedef void *(*I2vChunkAllocFn)(size_t bytes, void *user, GError **error);
typedef void (*I2vChunkFreeFn)(void *base, void *user);

typedef struct {
  GArray *chunks;   /* {base, size}, in order of creation */
  guint cur;        /* chunk being filled */
  size_t used;      /* bytes used in chunk cur */
  size_t align;     /* every returned pointer is a multiple of this (a power of two) */
  size_t min_chunk; /* smallest chunk made */
  size_t capacity;  /* total bytes of all chunks; written with atomics, so any thread may read it */
  size_t high,
      capacity_high; /* the largest mark and capacity since init or a reset (i2v_arena_highs) */
  I2vChunkAllocFn alloc;
  I2vChunkFreeFn free;
  void *user;
} I2vArena;

/* Sets up an empty arena (no memory yet). align must be a power of two that chunks honour. */
void i2v_arena_init(I2vArena *a, size_t align, size_t min_chunk, I2vChunkAllocFn alloc,
                    I2vChunkFreeFn free, void *user);

/* Returns bytes of scratch (owned by the arena) or NULL with error when a chunk cannot be made. */
void *i2v_arena_alloc(I2vArena *a, size_t bytes, GError **error);

/* Makes the arena one chunk of bytes (rounded up to the alignment), unless it is that already:
 * its chunks are freed (nothing may be allocated from it: mark 0) and one is made. FALSE with
 * error when the chunk cannot be made (the arena is then empty). */
gboolean i2v_arena_reserve(I2vArena *a, size_t bytes, GError **error);

/* The current position; i2v_arena_release(mark) gives back everything allocated after it. */
size_t i2v_arena_mark(const I2vArena *a);
void i2v_arena_release(I2vArena *a, size_t mark);

/* Total bytes of all chunks; safe to call from any thread while another uses the arena. */
size_t i2v_arena_capacity(const I2vArena *a);

/* The largest position (mark) the arena reached since it was made or the last reset (the bytes
 * its allocations needed at once under its chunking), and its largest capacity. With reset, both
 * marks start again at the current values. */
void i2v_arena_highs(I2vArena *a, gboolean reset, size_t *high, size_t *capacity_high);

/* Frees every chunk and the arena's bookkeeping. */
void i2v_arena_destroy(I2vArena *a);

G_END_DECLS
