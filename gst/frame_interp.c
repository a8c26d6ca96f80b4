/* Motion-compensated frame interpolation (see frame_interp.h for the method). */
#include "frame_interp.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Blocks are 8×8 pixels at full size and 4×4 at the coarser levels, where a pixel is 2^l of
 * them: one block of level 1 covers one of level 0, and an object of a few full-size blocks is
 * still a few blocks, not a fraction of one, at the coarse levels where the long vectors are
 * found. */
#define BLOCK0 8
#define BLOCK 4
#define MAX_LEVELS 5 /* full size and up to four halvings */
#define MIN_LEVEL 16 /* the smaller side of the coarsest level is at least this */
#define SEARCH 4     /* full search radius at the coarsest level (pixels of that level) */
/* Cost of a vector's distance (L1, in pixels of the level) from its prediction, in units of mean
 * absolute luma difference: a tie-breaker that keeps flat areas, where every vector matches, on
 * the smooth prediction instead of on noise. */
#define SMOOTHNESS 1.0f

typedef struct {
  float *px;
  int w, h;
} Plane;

typedef struct {
  float x, y;
} Vec;

struct FrameInterp {
  int width, height, channels, skip;
  int levels;
  Plane a[MAX_LEVELS], b[MAX_LEVELS]; /* luma pyramids of the pair */
  const guint8 *fa, *fb;              /* the pair itself (borrowed) */
  int sa, sb;
  gsize max_blocks; /* blocks of the level that has the most */
};

/* One run's block vectors: this level, the coarser one, and median scratch (per run, so that
 * runs for different times may go on in parallel on one interpolator). */
typedef struct {
  Vec *vec, *prev, *tmp;
} Field;

static int block_size(int level) {
  return level == 0 ? BLOCK0 : BLOCK;
}

/* Blocks along a side of n pixels at level l. */
static int blocks(int n, int level) {
  return (n + block_size(level) - 1) / block_size(level);
}

FrameInterp *gst_frame_interp_new(int width, int height, int channels, int skip) {
  if (width <= 0 || height <= 0 || channels < 1 || channels > 4) return NULL;
  FrameInterp *fi = g_new0(FrameInterp, 1);
  fi->width = width;
  fi->height = height;
  fi->channels = channels;
  fi->skip = skip;
  int w = width, h = height;
  for (fi->levels = 0; fi->levels < MAX_LEVELS; fi->levels++) {
    if (fi->levels > 0 && MIN(w, h) < MIN_LEVEL) break;
    fi->a[fi->levels] = (Plane){g_new(float, (gsize)w *h), w, h};
    fi->b[fi->levels] = (Plane){g_new(float, (gsize)w *h), w, h};
    w = (w + 1) / 2;
    h = (h + 1) / 2;
  }
  gsize n = 0;
  for (int l = 0; l < fi->levels; l++)
    n = MAX(n, (gsize)blocks(fi->a[l].w, l) * blocks(fi->a[l].h, l));
  fi->max_blocks = n;
  return fi;
}

void gst_frame_interp_free(FrameInterp *fi) {
  if (fi == NULL) return;
  for (int l = 0; l < fi->levels; l++) {
    g_free(fi->a[l].px);
    g_free(fi->b[l].px);
  }
  g_free(fi);
}

/* Mean of the colour channels (all but `skip`) of frame f into p. */
static void luma(const FrameInterp *fi, const guint8 *f, int stride, Plane *p) {
  int used = fi->channels - (fi->skip >= 0 && fi->skip < fi->channels ? 1 : 0);
  float scale = 1.0f / (float)MAX(used, 1);
  for (int y = 0; y < p->h; y++) {
    const guint8 *row = f + (gsize)y * stride;
    for (int x = 0; x < p->w; x++) {
      int sum = 0;
      for (int c = 0; c < fi->channels; c++)
        if (c != fi->skip) sum += row[x * fi->channels + c];
      p->px[(gsize)y * p->w + x] = (float)sum * scale;
    }
  }
}

/* Next pyramid level: 2×2 box average (edge pixels repeated for odd sizes). */
static void halve(const Plane *src, Plane *dst) {
  for (int y = 0; y < dst->h; y++)
    for (int x = 0; x < dst->w; x++) {
      int x0 = 2 * x, y0 = 2 * y, x1 = MIN(x0 + 1, src->w - 1), y1 = MIN(y0 + 1, src->h - 1);
      const float *r0 = src->px + (gsize)y0 * src->w, *r1 = src->px + (gsize)y1 * src->w;
      dst->px[(gsize)y * dst->w + x] = 0.25f * (r0[x0] + r0[x1] + r1[x0] + r1[x1]);
    }
}

void gst_frame_interp_set_pair(FrameInterp *fi, const guint8 *a, int a_stride, const guint8 *b,
                               int b_stride) {
  fi->fa = a;
  fi->fb = b;
  fi->sa = a_stride;
  fi->sb = b_stride;
  luma(fi, a, a_stride, &fi->a[0]);
  luma(fi, b, b_stride, &fi->b[0]);
  for (int l = 1; l < fi->levels; l++) {
    halve(&fi->a[l - 1], &fi->a[l]);
    halve(&fi->b[l - 1], &fi->b[l]);
  }
}

/* p at (x, y), bilinear, coordinates clamped to the plane (edge pixels extend outwards). */
static float sample(const Plane *p, float x, float y) {
  x = CLAMP(x, 0.0f, (float)(p->w - 1));
  y = CLAMP(y, 0.0f, (float)(p->h - 1));
  int x0 = (int)x, y0 = (int)y, x1 = MIN(x0 + 1, p->w - 1), y1 = MIN(y0 + 1, p->h - 1);
  float fx = x - (float)x0, fy = y - (float)y0;
  const float *r0 = p->px + (gsize)y0 * p->w, *r1 = p->px + (gsize)y1 * p->w;
  float top = r0[x0] + fx * (r0[x1] - r0[x0]), bottom = r1[x0] + fx * (r1[x1] - r1[x0]);
  return top + fy * (bottom - top);
}

/* The window of block (bx, by) of level l: it reaches half a block into the neighbours, so
 * that neighbouring blocks see overlapping evidence and get smoother, more reliable vectors. */
static void block_window(const Plane *p, int l, int bx, int by, int *x0, int *y0, int *x1,
                         int *y1) {
  int bs = block_size(l);
  *x0 = MAX(bx * bs - bs / 2, 0);
  *y0 = MAX(by * bs - bs / 2, 0);
  *x1 = MIN(bx * bs + bs + bs / 2, p->w);
  *y1 = MIN(by * bs + bs + bs / 2, p->h);
}

/* Sum over rows [y0, y1) × columns [x0, x1) of |p(x + dx, y + dy) − q(x + ex, y + ey)|, or
 * anything above `limit` once the sum passes it. */
static float window_sad(const Plane *p, float dx, float dy, const Plane *q, float ex, float ey,
                        int x0, int y0, int x1, int y1, float limit) {
  float sum = 0;
  float ix = floorf(dx), iy = floorf(dy), jx = floorf(ex), jy = floorf(ey);
  gboolean inside = x0 + ix >= 0 && y0 + iy >= 0 && x1 + ix < p->w && y1 + iy < p->h &&
                    x0 + jx >= 0 && y0 + jy >= 0 && x1 + jx < q->w && y1 + jy < q->h;
  if (!inside) { /* near the border: clamped samples */
    for (int y = y0; y < y1 && sum <= limit; y++)
      for (int x = x0; x < x1; x++)
        sum += fabsf(sample(p, (float)x + dx, (float)y + dy) -
                     sample(q, (float)x + ex, (float)y + ey));
    return sum;
  }
  /* the same sub-pixel offset for the whole window: fixed bilinear weights, no clamping */
  float fx = dx - ix, fy = dy - iy, gx = ex - jx, gy = ey - jy;
  for (int y = y0; y < y1 && sum <= limit; y++) {
    const float *p0 = p->px + (gsize)(y + (int)iy) * p->w + (int)ix, *p1 = p0 + p->w;
    const float *q0 = q->px + (gsize)(y + (int)jy) * q->w + (int)jx, *q1 = q0 + q->w;
    for (int x = x0; x < x1; x++) {
      float pt = p0[x] + fx * (p0[x + 1] - p0[x]), pb = p1[x] + fx * (p1[x + 1] - p1[x]);
      float qt = q0[x] + gx * (q0[x + 1] - q0[x]), qb = q1[x] + gx * (q1[x + 1] - q1[x]);
      sum += fabsf(pt + fy * (pb - pt) - (qt + gy * (qb - qt)));
    }
  }
  return sum;
}

/* Mean absolute difference over the window of block (bx, by) of level l between a(p − t·v) and
 * b(p + (1 − t)·v), plus the smoothness cost of v's distance from pred; anything above `limit`
 * once the cost is sure to pass it (the search only needs to know it lost). */
static float block_cost(const FrameInterp *fi, int l, int bx, int by, float t, Vec v, Vec pred,
                        float limit) {
  int x0, y0, x1, y1;
  block_window(&fi->a[l], l, bx, by, &x0, &y0, &x1, &y1);
  float n = (float)((x1 - x0) * (y1 - y0));
  float penalty = SMOOTHNESS * (fabsf(v.x - pred.x) + fabsf(v.y - pred.y));
  if (penalty > limit) return penalty;
  float sad = window_sad(&fi->a[l], -t * v.x, -t * v.y, &fi->b[l], (1 - t) * v.x, (1 - t) * v.y, x0,
                         y0, x1, y1, (limit - penalty) * n);
  return sad / n + penalty;
}

/* The vector among pred + (i·step, j·step), |i|, |j| ≤ radius, of least cost for one block. */
static Vec search(const FrameInterp *fi, int l, int bx, int by, float t, Vec pred, int radius,
                  float step) {
  Vec best = pred;
  float best_cost = block_cost(fi, l, bx, by, t, pred, pred, G_MAXFLOAT);
  for (int j = -radius; j <= radius; j++)
    for (int i = -radius; i <= radius; i++) {
      if (i == 0 && j == 0) continue; /* pred itself: costed above */
      Vec v = {pred.x + (float)i * step, pred.y + (float)j * step};
      float c = block_cost(fi, l, bx, by, t, v, pred, best_cost);
      if (c < best_cost) {
        best_cost = c;
        best = v;
      }
    }
  return best;
}

/* Whether the caller asked a run to stop (frame_interp_run). */
static gboolean stopped(const gint *stop) {
  return stop != NULL && g_atomic_int_get(stop) != 0;
}

static int cmp_float(const void *a, const void *b) {
  float x = *(const float *)a, y = *(const float *)b;
  return (x > y) - (x < y);
}

/* Component-wise median of each block's 3×3 neighbourhood (fewer at the edges) into tmp. */
static void median_vectors(const Vec *vec, Vec *tmp, int bw, int bh) {
  for (int by = 0; by < bh; by++)
    for (int bx = 0; bx < bw; bx++) {
      float xs[9], ys[9];
      int n = 0;
      for (int j = MAX(by - 1, 0); j <= MIN(by + 1, bh - 1); j++)
        for (int i = MAX(bx - 1, 0); i <= MIN(bx + 1, bw - 1); i++) {
          xs[n] = vec[j * bw + i].x;
          ys[n++] = vec[j * bw + i].y;
        }
      qsort(xs, n, sizeof(float), cmp_float);
      qsort(ys, n, sizeof(float), cmp_float);
      tmp[by * bw + bx] = (Vec){xs[n / 2], ys[n / 2]};
    }
}

/* Replaces each vector of level l by its neighbourhood's median where the median matches the
 * block at least as well: removes stray vectors (torn blocks in the output) in flat or repetitive
 * areas, and keeps the vectors of small objects, which only their own motion matches. Leaves
 * the rest as they are once asked to stop. */
static void smooth(const FrameInterp *fi, Field *fd, int l, float t, int bw, int bh,
                   const gint *stop) {
  median_vectors(fd->vec, fd->tmp, bw, bh);
  for (int by = 0; by < bh && !stopped(stop); by++)
    for (int bx = 0; bx < bw; bx++) {
      Vec own = fd->vec[by * bw + bx], med = fd->tmp[by * bw + bx];
      float med_cost = block_cost(fi, l, bx, by, t, med, med, G_MAXFLOAT);
      if (med_cost <= block_cost(fi, l, bx, by, t, own, med, med_cost)) fd->vec[by * bw + bx] = med;
    }
}

/* The cheapest for block (bx, by) of level l among the candidates: no motion, the coarser
 * level's vectors over and around the block (scaled to this level) and the vectors already found
 * for the neighbours before it in scan order. A block at a motion boundary, or of an object smaller
 * than a coarse block, finds its motion among its neighbours' even where its own parent took the
 * background's, and a vector found once spreads along the scan. pred (the parent's vector) is what
 * the smoothness cost pulls towards. */
static Vec best_candidate(const FrameInterp *fi, const Field *fd, int l, int bx, int by, int bw,
                          float t, int pbw, int pbh) {
  /* the parent holds this block's centre; the coarser level has half the pixels */
  int bs = block_size(l), pbs = block_size(l + 1);
  int px = MIN((bx * bs + bs / 2) / 2 / pbs, pbw - 1),
      py = MIN((by * bs + bs / 2) / 2 / pbs, pbh - 1);
  Vec pred = {2 * fd->prev[py * pbw + px].x, 2 * fd->prev[py * pbw + px].y};
  Vec cand[14];
  int n = 0;
  cand[n++] = (Vec){0, 0};
  for (int j = MAX(py - 1, 0); j <= MIN(py + 1, pbh - 1); j++)
    for (int i = MAX(px - 1, 0); i <= MIN(px + 1, pbw - 1); i++)
      cand[n++] = (Vec){2 * fd->prev[j * pbw + i].x, 2 * fd->prev[j * pbw + i].y};
  if (bx > 0) cand[n++] = fd->vec[by * bw + bx - 1];
  if (by > 0) cand[n++] = fd->vec[(by - 1) * bw + bx];
  if (by > 0 && bx + 1 < bw) cand[n++] = fd->vec[(by - 1) * bw + bx + 1];
  Vec best = pred;
  float best_cost = block_cost(fi, l, bx, by, t, pred, pred, G_MAXFLOAT);
  for (int k = 0; k < n; k++) {
    float c = block_cost(fi, l, bx, by, t, cand[k], pred, best_cost);
    if (c < best_cost) {
      best_cost = c;
      best = cand[k];
    }
  }
  return best;
}

/* Block vectors of level 0 (in its pixels) for time t, coarse to fine: a full search at the
 * coarsest level, then at each finer one the best candidate refined by a pixel (half a pixel at
 * the end). FALSE when asked to stop before the end. */
static gboolean estimate(const FrameInterp *fi, Field *fd, float t, const gint *stop) {
  int pbw = 0, pbh = 0;
  for (int l = fi->levels - 1; l >= 0; l--) {
    int bw = blocks(fi->a[l].w, l), bh = blocks(fi->a[l].h, l);
    for (int by = 0; by < bh; by++) {
      if (stopped(stop)) return FALSE;
      for (int bx = 0; bx < bw; bx++) {
        Vec v;
        if (l == fi->levels - 1)
          v = search(fi, l, bx, by, t, (Vec){0, 0}, SEARCH, 1.0f);
        else
          v = search(fi, l, bx, by, t, best_candidate(fi, fd, l, bx, by, bw, t, pbw, pbh), 1, 1.0f);
        if (l == 0) v = search(fi, l, bx, by, t, v, 1, 0.5f);
        fd->vec[by * bw + bx] = v;
      }
    }
    smooth(fi, fd, l, t, bw, bh, stop);
    if (stopped(stop)) return FALSE;
    Vec *swap = fd->prev;
    fd->prev = fd->vec;
    fd->vec = swap;
    pbw = bw;
    pbh = bh;
  }
  Vec *swap = fd->prev; /* level 0's vectors end in prev: put them in vec */
  fd->prev = fd->vec;
  fd->vec = swap;
  return TRUE;
}

/* The vector at pixel (x, y): bilinear between the four nearest block centres. */
static Vec pixel_vector(const FrameInterp *fi, const Field *fd, int x, int y) {
  int bw = blocks(fi->width, 0), bh = blocks(fi->height, 0);
  float u = CLAMP(((float)x + 0.5f) / BLOCK0 - 0.5f, 0.0f, (float)(bw - 1));
  float w = CLAMP(((float)y + 0.5f) / BLOCK0 - 0.5f, 0.0f, (float)(bh - 1));
  int i0 = (int)u, j0 = (int)w, i1 = MIN(i0 + 1, bw - 1), j1 = MIN(j0 + 1, bh - 1);
  float fu = u - (float)i0, fw = w - (float)j0;
  const Vec *v = fd->vec;
  Vec top = {v[j0 * bw + i0].x + fu * (v[j0 * bw + i1].x - v[j0 * bw + i0].x),
             v[j0 * bw + i0].y + fu * (v[j0 * bw + i1].y - v[j0 * bw + i0].y)};
  Vec bottom = {v[j1 * bw + i0].x + fu * (v[j1 * bw + i1].x - v[j1 * bw + i0].x),
                v[j1 * bw + i0].y + fu * (v[j1 * bw + i1].y - v[j1 * bw + i0].y)};
  return (Vec){top.x + fw * (bottom.x - top.x), top.y + fw * (bottom.y - top.y)};
}

/* Channel c of 8-bit frame f at (x, y), bilinear, coordinates clamped to the frame. */
static float sample_u8(const FrameInterp *fi, const guint8 *f, int stride, int c, float x,
                       float y) {
  x = CLAMP(x, 0.0f, (float)(fi->width - 1));
  y = CLAMP(y, 0.0f, (float)(fi->height - 1));
  int x0 = (int)x, y0 = (int)y;
  int x1 = MIN(x0 + 1, fi->width - 1), y1 = MIN(y0 + 1, fi->height - 1), n = fi->channels;
  float fx = x - (float)x0, fy = y - (float)y0;
  const guint8 *r0 = f + (gsize)y0 * stride, *r1 = f + (gsize)y1 * stride;
  float top = r0[x0 * n + c] + fx * (float)(r0[x1 * n + c] - r0[x0 * n + c]);
  float bottom = r1[x0 * n + c] + fx * (float)(r1[x1 * n + c] - r1[x0 * n + c]);
  return top + fy * (bottom - top);
}

gboolean gst_frame_interp_run(const FrameInterp *fi, double t, guint8 *out, int out_stride,
                              const gint *stop) {
  float tf = (float)CLAMP(t, 0.0, 1.0);
  Field fd = {g_new(Vec, fi->max_blocks), g_new(Vec, fi->max_blocks), g_new(Vec, fi->max_blocks)};
  gboolean complete = estimate(fi, &fd, tf, stop);
  for (int y = 0; complete && y < fi->height; y++) {
    if (stopped(stop)) {
      complete = FALSE;
      break;
    }
    guint8 *row = out + (gsize)y * out_stride;
    for (int x = 0; x < fi->width; x++) {
      Vec v = pixel_vector(fi, &fd, x, y);
      float ax = (float)x - tf * v.x, ay = (float)y - tf * v.y;
      float bx = (float)x + (1 - tf) * v.x, by = (float)y + (1 - tf) * v.y;
      for (int c = 0; c < fi->channels; c++) {
        float value = (1 - tf) * sample_u8(fi, fi->fa, fi->sa, c, ax, ay) +
                      tf * sample_u8(fi, fi->fb, fi->sb, c, bx, by);
        row[x * fi->channels + c] = (guint8)CLAMP(lrintf(value), 0, 255);
      }
    }
  }
  g_free(fd.vec);
  g_free(fd.prev);
  g_free(fd.tmp);
  return complete;
}
