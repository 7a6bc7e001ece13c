/*
 * erase._entropy_kernel: fused grayscale + per-patch Shannon entropy for Stage 1.
 *
 * The reference is the numpy path in erase/stage1.py (`grayscale` followed by
 * `patch_entropy`); this kernel reproduces it bit for bit:
 *
 *   gray  g = (299 R + 587 G + 114 B + bias) / 1000     (integer division; bias 0 floors, 500 rounds)
 *   H     = ln n - S / n,   S = sum over the 256 bins of c ln c   (nats)
 *
 * S is summed in exactly the order numpy's `sum(axis=-1)` uses for 256
 * contiguous float64 values (pairwise summation: two halves of 128 bins, each
 * with 8 interleaved accumulators combined as ((r0+r1)+(r2+r3))+((r4+r5)+(r6+r7))),
 * and the c ln c table can be passed in from numpy, so both paths agree exactly.
 *
 * Work is done one strip of token_px image rows at a time: the strip's rows are
 * converted to gray into a small buffer that stays in L2, then every patch of the
 * strip is histogrammed from it (four interleaved sub-histograms, so that runs of
 * equal values in flat regions do not serialise on one counter) and turned into
 * an entropy immediately. The GIL is released while the loop runs.
 *
 * `patch_entropy_rows` reads Qwen-style normalised float32 `pixel_values` rows
 * instead of an image: it de-normalises each value (v * scale + shift), rounds it
 * to the 8-bit pixel the processor started from, converts to gray and histograms
 * each token's rows (a token's pixels are consecutive rows), in one pass and with
 * no image ever built. It counts the values that are not within `tol` of an 8-bit
 * integer, so the caller can tell whether (scale, shift) were the processor's.
 *
 * Plain CPython C API and the buffer protocol only; no numpy headers.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <math.h>
#include <stdint.h>
#include <string.h>

#if defined(_MSC_VER) && !defined(restrict)
#define restrict __restrict
#endif

#define NSUB 4 /* interleaved sub-histograms of 256 counts per patch */

/* Exact (v / 1000) for 0 <= v <= 255500: (v >> 3) / 125 by multiply-shift; products stay below 2^32. */
/* bias 0 floors the weighted sum (the reference's truncation), 500 rounds it. */
#define GRAY_OF(r, g, b, bias) \
    ((uint8_t)((((299u * (uint32_t)(r) + 587u * (uint32_t)(g) + 114u * (uint32_t)(b) + (bias)) >> 3) * 33555u) >> 22))

static void gray_row_generic(const uint8_t *restrict src, uint8_t *restrict dst, Py_ssize_t w, uint32_t bias)
{
    for (Py_ssize_t i = 0; i < w; i++) {
        dst[i] = GRAY_OF(src[3 * i], src[3 * i + 1], src[3 * i + 2], bias);
    }
}

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__)) && !defined(ERASE_NO_AVX2)
#define HAVE_AVX2_PATH 1
#include <immintrin.h>

/*
 * 32 pixels per step. Each 128-bit lane takes 16 bytes at pixel 4k (low lane)
 * and 16 + 4k (high lane); pshufb spreads the lane's first 4 pixels into
 * 16-bit (R, G) and (B, 0) pairs, pmaddwd weighs and adds them to 32-bit sums,
 * then (sum + bias) >> 3 is packed to 16 bits and divided by 125 with pmulhuw
 * (y * 33555 >> 22, exact for y < 32768). The lane layout makes the two packs
 * come out in pixel order, so no cross-lane permute is needed.
 */
__attribute__((target("avx2"))) static void gray_row_avx2(const uint8_t *restrict src, uint8_t *restrict dst,
                                                          Py_ssize_t w, uint32_t bias_value)
{
    const __m256i shuf_rg = _mm256_setr_epi8(0, -1, 1, -1, 3, -1, 4, -1, 6, -1, 7, -1, 9, -1, 10, -1, /* lane 0 */
                                             0, -1, 1, -1, 3, -1, 4, -1, 6, -1, 7, -1, 9, -1, 10, -1);
    const __m256i shuf_b = _mm256_setr_epi8(2, -1, -1, -1, 5, -1, -1, -1, 8, -1, -1, -1, 11, -1, -1, -1,
                                            2, -1, -1, -1, 5, -1, -1, -1, 8, -1, -1, -1, 11, -1, -1, -1);
    const __m256i w_rg = _mm256_set1_epi32((587 << 16) | 299);
    const __m256i w_b = _mm256_set1_epi32(114);
    const __m256i bias = _mm256_set1_epi32((int)bias_value);
    const __m256i magic = _mm256_set1_epi16((short)33555);
    Py_ssize_t i = 0;
    /* The last load of a step reads 16 bytes at pixel i + 28, i.e. up to byte 3 * (i + 32) + 3. */
    for (; i + 34 <= w; i += 32) {
        const uint8_t *s = src + 3 * i;
        __m256i sum[4];
        for (int k = 0; k < 4; k++) {
            __m256i v = _mm256_inserti128_si256(
                _mm256_castsi128_si256(_mm_loadu_si128((const __m128i *)(s + 12 * k))),
                _mm_loadu_si128((const __m128i *)(s + 48 + 12 * k)), 1);
            __m256i rg = _mm256_madd_epi16(_mm256_shuffle_epi8(v, shuf_rg), w_rg);
            __m256i b = _mm256_madd_epi16(_mm256_shuffle_epi8(v, shuf_b), w_b);
            sum[k] = _mm256_srli_epi32(_mm256_add_epi32(_mm256_add_epi32(rg, b), bias), 3);
        }
        __m256i lo = _mm256_packs_epi32(sum[0], sum[1]); /* y < 32768: no saturation */
        __m256i hi = _mm256_packs_epi32(sum[2], sum[3]);
        lo = _mm256_srli_epi16(_mm256_mulhi_epu16(lo, magic), 6);
        hi = _mm256_srli_epi16(_mm256_mulhi_epu16(hi, magic), 6);
        _mm256_storeu_si256((__m256i *)(dst + i), _mm256_packus_epi16(lo, hi));
    }
    for (; i < w; i++) {
        dst[i] = GRAY_OF(src[3 * i], src[3 * i + 1], src[3 * i + 2], bias_value);
    }
}
#endif

typedef void (*gray_row_fn)(const uint8_t *restrict, uint8_t *restrict, Py_ssize_t, uint32_t);

static gray_row_fn gray_row_impl = gray_row_generic; /* chosen once, at import */

static gray_row_fn pick_gray_row(void)
{
#ifdef HAVE_AVX2_PATH
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2")) {
        return gray_row_avx2;
    }
#endif
    return gray_row_generic;
}

/*
 * ln n - S/n for one patch whose counts are split over NSUB sub-histograms of
 * 256 bins; clears them. All 256 bins are visited (empty bins add table[0] = 0,
 * which leaves the sums unchanged): on this workload that beat iterating only
 * the touched bins, even for flat patches.
 */
static inline double entropy_of(uint32_t *restrict hist, const double *restrict table, double log_n, double n)
{
    uint32_t counts[256];
    for (int b = 0; b < 256; b++) { /* vectorised */
        counts[b] = hist[b] + hist[256 + b] + hist[512 + b] + hist[768 + b];
    }
    memset(hist, 0, sizeof(uint32_t) * 256 * NSUB);
    /* numpy's pairwise sum of 256 float64: two blocks of 128, each 8 interleaved accumulators. */
    double r[2][8];
    for (int half = 0; half < 2; half++) {
        double *acc = r[half];
        for (int k = 0; k < 8; k++) {
            acc[k] = 0.0;
        }
        for (int b = half * 128; b < half * 128 + 128; b += 8) {
            for (int k = 0; k < 8; k++) {
                acc[k] += table[counts[b + k]];
            }
        }
    }
    double s0 = ((r[0][0] + r[0][1]) + (r[0][2] + r[0][3])) + ((r[0][4] + r[0][5]) + (r[0][6] + r[0][7]));
    double s1 = ((r[1][0] + r[1][1]) + (r[1][2] + r[1][3])) + ((r[1][4] + r[1][5]) + (r[1][6] + r[1][7]));
    return log_n - (s0 + s1) / n;
}

static void histogram_patch(const uint8_t *restrict gray, Py_ssize_t stride, Py_ssize_t tp, uint32_t *restrict hist)
{
    uint32_t *h0 = hist, *h1 = hist + 256, *h2 = hist + 512, *h3 = hist + 768;
    for (Py_ssize_t y = 0; y < tp; y++) {
        const uint8_t *p = gray + y * stride;
        Py_ssize_t x = 0;
        for (; x + 4 <= tp; x += 4) {
            h0[p[x]]++;
            h1[p[x + 1]]++;
            h2[p[x + 2]]++;
            h3[p[x + 3]]++;
        }
        for (; x < tp; x++) {
            h0[p[x]]++;
        }
    }
}

static void run_kernel(const uint8_t *src, Py_ssize_t height, Py_ssize_t width, int channels, Py_ssize_t tp,
                       double *out, const double *table, uint8_t *graybuf, uint32_t *hist, gray_row_fn gray_row,
                       uint32_t bias)
{
    const Py_ssize_t rows = height / tp, cols = width / tp;
    const double n = (double)tp * (double)tp;
    const double log_n = log(n);
    const Py_ssize_t row_bytes = width * channels;

    for (Py_ssize_t pr = 0; pr < rows; pr++) {
        const uint8_t *strip = src + pr * tp * row_bytes;
        const uint8_t *g = strip; /* token_px rows of gray levels, `width` bytes apart */
        if (channels == 3) {
            for (Py_ssize_t y = 0; y < tp; y++) {
                gray_row(strip + y * row_bytes, graybuf + y * width, width, bias);
            }
            g = graybuf;
        }
        double *orow = out + pr * cols;
        for (Py_ssize_t pc = 0; pc < cols; pc++) {
            histogram_patch(g + pc * tp, width, tp, hist);
            orow[pc] = entropy_of(hist, table, log_n, n);
        }
    }
}


#if defined(__SSE2__) && defined(__GNUC__)
#include <emmintrin.h>
#define HAVE_SSE2_ROWS 1
#endif

/*
 * One normalised row's first temporal frame -> gray levels: v = x * scale + shift per channel, rounded
 * to the nearest of 0..255 (NaN -> 0); counts values farther than tol from the integer they rounded to.
 * floor(s / 1000) is exact in float32 for s < 2^24 (the quotient is at least 0.001 below the next
 * integer, far above its rounding error). SSE2 (every x86-64) does 4 values a step, the same
 * operations in the same order as the scalar loop, which does the rest and other machines.
 */
static Py_ssize_t gray_of_row(const float *restrict row, Py_ssize_t plane, Py_ssize_t cstride,
                              const float *restrict scale, const float *restrict shift, float bias, float tol,
                              uint8_t *restrict dst)
{
    const float *restrict x[3] = {row, row + cstride, row + 2 * cstride};
    const float w[3] = {299.0f, 587.0f, 114.0f};
    Py_ssize_t i = 0, bad = 0;
#ifdef HAVE_SSE2_ROWS
    const __m128 zero = _mm_setzero_ps(), half = _mm_set1_ps(0.5f);
    const __m128 vtol = _mm_set1_ps(tol), absmask = _mm_castsi128_ps(_mm_set1_epi32(0x7fffffff));
    const __m128 vbias = _mm_set1_ps(bias), thousand = _mm_set1_ps(1000.0f);
    __m128 vs[3], vh[3], vw[3];
    for (int c = 0; c < 3; c++) {
        vs[c] = _mm_set1_ps(scale[c]);
        vh[c] = _mm_set1_ps(shift[c]);
        vw[c] = _mm_set1_ps(w[c]);
    }
    __m128i okcount = _mm_setzero_si128(); /* per lane: values that inverted within tol */
    Py_ssize_t simd = 0;
    for (; i + 4 <= plane; i += 4) {
        __m128 sum = zero;
        for (int c = 0; c < 3; c++) {
            /* no clamp: a value that needs one is farther than tol from 0..255 and fails the check, and
               then the caller discards the gray; cvttps2dq is defined for every input */
            __m128 v = _mm_add_ps(_mm_mul_ps(_mm_loadu_ps(x[c] + i), vs[c]), vh[c]);
            __m128 q = _mm_cvtepi32_ps(_mm_cvttps_epi32(_mm_add_ps(v, half)));
            __m128 ok = _mm_cmple_ps(_mm_and_ps(_mm_sub_ps(v, q), absmask), vtol); /* false for NaN */
            okcount = _mm_sub_epi32(okcount, _mm_castps_si128(ok));           /* all-ones lane = -1 */
            sum = c == 0 ? _mm_mul_ps(vw[0], q) : _mm_add_ps(sum, _mm_mul_ps(vw[c], q));
        }
        __m128i g = _mm_cvttps_epi32(_mm_div_ps(_mm_add_ps(sum, vbias), thousand));
        g = _mm_packus_epi16(_mm_packs_epi32(g, g), g);
        int32_t four = _mm_cvtsi128_si32(g);
        memcpy(dst + i, &four, 4);
        simd += 12;
    }
    int32_t lanes[4];
    _mm_storeu_si128((__m128i *)lanes, okcount);
    bad += simd - ((Py_ssize_t)lanes[0] + lanes[1] + lanes[2] + lanes[3]);
#endif
    for (; i < plane; i++) {
        float sum = 0.0f;
        for (int c = 0; c < 3; c++) {
            float v = x[c][i] * scale[c] + shift[c];
            float clamped = v > 0.0f ? (v < 255.0f ? v : 255.0f) : 0.0f; /* NaN -> 0 */
            float q = (float)(int32_t)(clamped + 0.5f);
            bad += !(fabsf(v - q) <= tol);
            sum = c == 0 ? w[0] * q : sum + w[c] * q;
        }
        dst[i] = (uint8_t)(int32_t)((sum + bias) / 1000.0f);
    }
    return bad;
}

#ifdef HAVE_AVX2_PATH
/* gray_of_row, 32 values a step in AVX2 (same operations and order); the SSE2/scalar one does the rest. */
__attribute__((target("avx2"))) static Py_ssize_t gray_of_row_avx2(const float *restrict row, Py_ssize_t plane,
                                                                   Py_ssize_t cstride, const float *restrict scale,
                                                                   const float *restrict shift, float bias, float tol,
                                                                   uint8_t *restrict dst)
{
    const float *restrict x[3] = {row, row + cstride, row + 2 * cstride};
    const float w[3] = {299.0f, 587.0f, 114.0f};
    const __m256 zero = _mm256_setzero_ps(), half = _mm256_set1_ps(0.5f);
    const __m256 vtol = _mm256_set1_ps(tol), absmask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
    const __m256 vbias = _mm256_set1_ps(bias), thousand = _mm256_set1_ps(1000.0f);
    const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7); /* undo the per-lane packs */
    __m256 vs[3], vh[3], vw[3];
    for (int c = 0; c < 3; c++) {
        vs[c] = _mm256_set1_ps(scale[c]);
        vh[c] = _mm256_set1_ps(shift[c]);
        vw[c] = _mm256_set1_ps(w[c]);
    }
    __m256i okcount = _mm256_setzero_si256();
    Py_ssize_t i = 0, simd = 0;
    for (; i + 32 <= plane; i += 32) {
        __m256i g[4];
        for (int k = 0; k < 4; k++) {
            __m256 sum = zero;
            for (int c = 0; c < 3; c++) {
                __m256 v = _mm256_add_ps(_mm256_mul_ps(_mm256_loadu_ps(x[c] + i + 8 * k), vs[c]), vh[c]);
                __m256 q = _mm256_cvtepi32_ps(_mm256_cvttps_epi32(_mm256_add_ps(v, half))); /* no clamp: see above */
                __m256 ok = _mm256_cmp_ps(_mm256_and_ps(_mm256_sub_ps(v, q), absmask), vtol, _CMP_LE_OQ);
                okcount = _mm256_sub_epi32(okcount, _mm256_castps_si256(ok));
                sum = c == 0 ? _mm256_mul_ps(vw[0], q) : _mm256_add_ps(sum, _mm256_mul_ps(vw[c], q));
            }
            g[k] = _mm256_cvttps_epi32(_mm256_div_ps(_mm256_add_ps(sum, vbias), thousand));
        }
        __m256i packed = _mm256_packus_epi16(_mm256_packs_epi32(g[0], g[1]), _mm256_packs_epi32(g[2], g[3]));
        _mm256_storeu_si256((__m256i *)(dst + i), _mm256_permutevar8x32_epi32(packed, order));
        simd += 96;
    }
    int32_t lanes[8];
    _mm256_storeu_si256((__m256i *)lanes, okcount);
    Py_ssize_t ok = 0;
    for (int k = 0; k < 8; k++) {
        ok += lanes[k];
    }
    float s3[3] = {shift[0], shift[1], shift[2]};
    return (simd - ok) +
           (i < plane ? gray_of_row(row + i, plane - i, cstride, scale, s3, bias, tol, dst + i) : 0);
}
#endif

typedef Py_ssize_t (*gray_rows_fn)(const float *restrict, Py_ssize_t, Py_ssize_t, const float *restrict,
                                   const float *restrict, float, float, uint8_t *restrict);

static gray_rows_fn gray_rows_impl = gray_of_row; /* chosen with gray_row_impl */

static gray_rows_fn pick_gray_rows(void)
{
#ifdef HAVE_AVX2_PATH
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2")) {
        return gray_of_row_avx2;
    }
#endif
    return gray_of_row;
}

static void histogram_linear(const uint8_t *restrict gray, Py_ssize_t n, uint32_t *restrict hist)
{
    uint32_t *h0 = hist, *h1 = hist + 256, *h2 = hist + 512, *h3 = hist + 768;
    Py_ssize_t x = 0;
    for (; x + 4 <= n; x += 4) {
        h0[gray[x]]++;
        h1[gray[x + 1]]++;
        h2[gray[x + 2]]++;
        h3[gray[x + 3]]++;
    }
    for (; x < n; x++) {
        h0[gray[x]]++;
    }
}

static Py_ssize_t run_rows_kernel(const float *rows, Py_ssize_t tokens, Py_ssize_t units, Py_ssize_t row_len,
                                  Py_ssize_t cstride, Py_ssize_t plane, const float *scale, const float *shift,
                                  float bias, float tol, double *out, const double *table, uint8_t *graybuf,
                                  uint32_t *hist)
{
    const Py_ssize_t n = units * plane;
    const double log_n = log((double)n);
    Py_ssize_t bad = 0;
    for (Py_ssize_t t = 0; t < tokens; t++) {
        for (Py_ssize_t u = 0; u < units; u++) {
            bad += gray_rows_impl(rows + (t * units + u) * row_len, plane, cstride, scale, shift, bias, tol,
                                  graybuf + u * plane);
        }
        histogram_linear(graybuf, n, hist);
        out[t] = entropy_of(hist, table, log_n, (double)n);
    }
    return bad;
}

/* Is `format` (a struct-module item format) a single native item of type `code` ('B' or 'd')? */
static int format_is(const char *format, char code)
{
    if (format == NULL) {
        return code == 'B';
    }
    char order = format[0];
    if (order == '@' || order == '=' || order == '<' || order == '>' || order == '!' || order == '|') {
        format++;
        if (code != 'B') { /* byte order matters for floats */
#if PY_LITTLE_ENDIAN
            if (order == '>' || order == '!') {
                return 0;
            }
#else
            if (order == '<') {
                return 0;
            }
#endif
        }
    }
    return format[0] == code && format[1] == '\0';
}

static int get_buffer(PyObject *obj, Py_buffer *view, int writable, const char *name, char code)
{
    const char *type = code == 'B' ? "uint8" : (code == 'f' ? "float32" : "float64");
    int flags = PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | (writable ? PyBUF_WRITABLE : 0);
    if (PyObject_GetBuffer(obj, view, flags) < 0) {
        PyErr_Clear();
        PyErr_Format(PyExc_ValueError, "%s must be a C-contiguous%s buffer of %s, got %.100s", name,
                     writable ? " writable" : "", type, Py_TYPE(obj)->tp_name);
        return -1;
    }
    Py_ssize_t size = code == 'B' ? 1 : (code == 'f' ? (Py_ssize_t)sizeof(float) : (Py_ssize_t)sizeof(double));
    if (!format_is(view->format, code) || view->itemsize != size) {
        PyErr_Format(PyExc_ValueError, "%s must hold native %s items, got format '%s'", name, type,
                     view->format ? view->format : "B");
        PyBuffer_Release(view);
        return -1;
    }
    return 0;
}

PyDoc_STRVAR(patch_entropy_doc,
             "patch_entropy(buf, height, width, channels, token_px, out, table=None, bias=0)\n"
             "--\n\n"
             "Shannon entropy (nats, 256 bins) of every token_px x token_px patch of an image.\n\n"
             "buf: C-contiguous uint8 buffer of height*width*channels bytes (channels 1 or 3,\n"
             "RGB interleaved); gray is (299 R + 587 G + 114 B + bias) // 1000 (bias 0: floor, 500: round).\n"
             "out: writable C-contiguous float64 buffer of (height//token_px)*(width//token_px)\n"
             "items, filled row-major. table: optional float64 buffer of at least token_px**2 + 1\n"
             "items holding c*ln(c) for c = 0..token_px**2 (computed here when omitted).\n"
             "Raises ValueError on bad shapes or buffers. Releases the GIL while it runs.");

static PyObject *patch_entropy(PyObject *self, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"buf", "height", "width", "channels", "token_px", "out", "table", "bias", NULL};
    PyObject *buf_obj, *out_obj, *table_obj = Py_None;
    Py_ssize_t height, width, channels, tp, bias = 0;
    (void)self;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OnnnnO|On:patch_entropy", kwlist, &buf_obj, &height, &width,
                                     &channels, &tp, &out_obj, &table_obj, &bias)) {
        return NULL;
    }
    if (bias != 0 && bias != 500) {
        PyErr_Format(PyExc_ValueError, "bias must be 0 (floor) or 500 (round), got %zd", bias);
        return NULL;
    }
    if (channels != 1 && channels != 3) {
        PyErr_Format(PyExc_ValueError, "channels must be 1 or 3, got %zd", channels);
        return NULL;
    }
    if (height <= 0 || width <= 0 || tp <= 0) {
        PyErr_Format(PyExc_ValueError, "height, width and token_px must be positive, got %zd, %zd, %zd", height,
                     width, tp);
        return NULL;
    }
    if (height % tp || width % tp) {
        PyErr_Format(PyExc_ValueError, "image %zdx%zd is not a multiple of the token size %zd", width, height, tp);
        return NULL;
    }
    if (tp > 46340 || width > PY_SSIZE_T_MAX / 3 / height) { /* tp*tp and table size, h*w*c must not overflow */
        PyErr_SetString(PyExc_ValueError, "image or token size too large");
        return NULL;
    }
    const Py_ssize_t rows = height / tp, cols = width / tp, n = tp * tp;

    Py_buffer in, out, tab;
    int have_table = table_obj != Py_None;
    if (get_buffer(buf_obj, &in, 0, "buf", 'B') < 0) {
        return NULL;
    }
    if (get_buffer(out_obj, &out, 1, "out", 'd') < 0) {
        PyBuffer_Release(&in);
        return NULL;
    }
    if (have_table && get_buffer(table_obj, &tab, 0, "table", 'd') < 0) {
        PyBuffer_Release(&in);
        PyBuffer_Release(&out);
        return NULL;
    }
    PyObject *result = NULL;
    double *own_table = NULL;
    uint8_t *graybuf = NULL;
    uint32_t *hist = NULL;

    if (in.len != height * width * channels) {
        PyErr_Format(PyExc_ValueError, "buf holds %zd bytes, expected height*width*channels = %zd", in.len,
                     height * width * channels);
        goto done;
    }
    if (out.len != rows * cols * (Py_ssize_t)sizeof(double)) {
        PyErr_Format(PyExc_ValueError, "out holds %zd float64 items, expected rows*cols = %zd",
                     out.len / (Py_ssize_t)sizeof(double), rows * cols);
        goto done;
    }
    if (have_table && tab.len < (n + 1) * (Py_ssize_t)sizeof(double)) {
        PyErr_Format(PyExc_ValueError, "table holds %zd float64 items, expected at least token_px**2 + 1 = %zd",
                     tab.len / (Py_ssize_t)sizeof(double), n + 1);
        goto done;
    }
    const double *table;
    if (have_table) {
        table = (const double *)tab.buf;
    }
    else {
        own_table = PyMem_Malloc((size_t)(n + 1) * sizeof(double));
        if (!own_table) {
            PyErr_NoMemory();
            goto done;
        }
        own_table[0] = 0.0;
        for (Py_ssize_t c = 1; c <= n; c++) {
            own_table[c] = (double)c * log((double)c);
        }
        table = own_table;
    }
    if (channels == 3) {
        graybuf = PyMem_Malloc((size_t)(tp * width));
        if (!graybuf) {
            PyErr_NoMemory();
            goto done;
        }
    }
    hist = PyMem_Calloc(256 * NSUB, sizeof(uint32_t));
    if (!hist) {
        PyErr_NoMemory();
        goto done;
    }
    Py_BEGIN_ALLOW_THREADS
    run_kernel((const uint8_t *)in.buf, height, width, (int)channels, tp, (double *)out.buf, table, graybuf, hist,
               gray_row_impl, (uint32_t)bias);
    Py_END_ALLOW_THREADS
    result = Py_NewRef(Py_None);

done:
    PyMem_Free(hist);
    PyMem_Free(graybuf);
    PyMem_Free(own_table);
    if (have_table) {
        PyBuffer_Release(&tab);
    }
    PyBuffer_Release(&out);
    PyBuffer_Release(&in);
    return result;
}


PyDoc_STRVAR(patch_entropy_rows_doc,
             "patch_entropy_rows(rows, tokens, units, row_len, cstride, plane, scale, shift, out, table, bias=0, tol=0.05)\n"
             "--\n\n"
             "Entropy (nats, 256 bins) of every token's pixels, read from normalised Qwen-style rows.\n\n"
             "rows: C-contiguous float32 buffer of tokens*units rows of row_len values; token t owns rows\n"
             "t*units .. t*units+units-1. In a row, channel c's first temporal frame is the `plane` values at\n"
             "c*cstride (3 channels). Each value becomes the 8-bit pixel round(v * scale[c] + shift[c]) clamped\n"
             "to 0..255; gray is (299 R + 587 G + 114 B + bias) // 1000. out: writable float64 buffer of\n"
             "`tokens` items. table: float64 c*ln(c) for c = 0..units*plane. Returns how many values were\n"
             "farther than tol from their 8-bit pixel (0 when scale and shift invert the processor exactly).");

static PyObject *patch_entropy_rows(PyObject *self, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"rows", "tokens", "units", "row_len", "cstride", "plane", "scale", "shift",
                             "out", "table", "bias", "tol", NULL};
    PyObject *rows_obj, *out_obj, *table_obj;
    Py_ssize_t tokens, units, row_len, cstride, plane, bias = 0;
    float scale[3], shift[3], tol = 0.05f;
    (void)self;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "Onnnnn(fff)(fff)OO|nf:patch_entropy_rows", kwlist, &rows_obj,
                                     &tokens, &units, &row_len, &cstride, &plane, &scale[0], &scale[1], &scale[2],
                                     &shift[0], &shift[1], &shift[2], &out_obj, &table_obj, &bias, &tol)) {
        return NULL;
    }
    if (bias != 0 && bias != 500) {
        PyErr_Format(PyExc_ValueError, "bias must be 0 (floor) or 500 (round), got %zd", bias);
        return NULL;
    }
    if (tokens <= 0 || units <= 0 || plane <= 0 || cstride < plane || row_len < 2 * cstride + plane) {
        PyErr_SetString(PyExc_ValueError, "bad row layout (tokens, units, plane > 0; 3 channels of `plane` values "
                                          "`cstride` apart must fit in row_len)");
        return NULL;
    }
    if (units > 1048576 / plane || tokens > PY_SSIZE_T_MAX / units / row_len) {
        PyErr_SetString(PyExc_ValueError, "token or row size too large");
        return NULL;
    }
    const Py_ssize_t n = units * plane;
    Py_buffer in, out, tab;
    if (get_buffer(rows_obj, &in, 0, "rows", 'f') < 0) {
        return NULL;
    }
    if (get_buffer(out_obj, &out, 1, "out", 'd') < 0) {
        PyBuffer_Release(&in);
        return NULL;
    }
    if (get_buffer(table_obj, &tab, 0, "table", 'd') < 0) {
        PyBuffer_Release(&in);
        PyBuffer_Release(&out);
        return NULL;
    }
    PyObject *result = NULL;
    uint8_t *graybuf = NULL;
    uint32_t *hist = NULL;
    Py_ssize_t bad = 0;
    if (in.len != tokens * units * row_len * (Py_ssize_t)sizeof(float)) {
        PyErr_Format(PyExc_ValueError, "rows holds %zd float32 items, expected tokens*units*row_len = %zd",
                     in.len / (Py_ssize_t)sizeof(float), tokens * units * row_len);
        goto done;
    }
    if (out.len != tokens * (Py_ssize_t)sizeof(double)) {
        PyErr_Format(PyExc_ValueError, "out holds %zd float64 items, expected tokens = %zd",
                     out.len / (Py_ssize_t)sizeof(double), tokens);
        goto done;
    }
    if (tab.len < (n + 1) * (Py_ssize_t)sizeof(double)) {
        PyErr_Format(PyExc_ValueError, "table holds %zd float64 items, expected at least units*plane + 1 = %zd",
                     tab.len / (Py_ssize_t)sizeof(double), n + 1);
        goto done;
    }
    graybuf = PyMem_Malloc((size_t)n);
    hist = PyMem_Calloc(256 * NSUB, sizeof(uint32_t));
    if (!graybuf || !hist) {
        PyErr_NoMemory();
        goto done;
    }
    Py_BEGIN_ALLOW_THREADS
    bad = run_rows_kernel((const float *)in.buf, tokens, units, row_len, cstride, plane, scale, shift, (float)bias,
                          tol, (double *)out.buf, (const double *)tab.buf, graybuf, hist);
    Py_END_ALLOW_THREADS
    result = PyLong_FromSsize_t(bad);

done:
    PyMem_Free(hist);
    PyMem_Free(graybuf);
    PyBuffer_Release(&tab);
    PyBuffer_Release(&out);
    PyBuffer_Release(&in);
    return result;
}

static PyObject *set_gray_impl(PyObject *self, PyObject *arg)
{
    (void)self;
    const char *name = PyUnicode_AsUTF8(arg);
    if (name == NULL) {
        return NULL;
    }
    const char *previous = gray_row_impl == gray_row_generic ? "generic" : "avx2";
    if (strcmp(name, "generic") == 0) {
        gray_row_impl = gray_row_generic;
        gray_rows_impl = gray_of_row;
    }
    else if (strcmp(name, "auto") == 0) {
        gray_row_impl = pick_gray_row();
        gray_rows_impl = pick_gray_rows();
    }
    else {
        PyErr_Format(PyExc_ValueError, "gray implementation must be 'generic' or 'auto', got '%s'", name);
        return NULL;
    }
    return PyUnicode_FromString(previous);
}

static PyMethodDef methods[] = {
    {"_set_gray_impl", set_gray_impl, METH_O,
     "_set_gray_impl(name) -> previous name: 'generic' forces the portable gray loop, 'auto' picks the fastest "
     "(for tests; not thread-safe)."},
    {"patch_entropy", (PyCFunction)(void (*)(void))patch_entropy, METH_VARARGS | METH_KEYWORDS, patch_entropy_doc},
    {"patch_entropy_rows", (PyCFunction)(void (*)(void))patch_entropy_rows, METH_VARARGS | METH_KEYWORDS,
     patch_entropy_rows_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "erase._entropy_kernel",
    .m_doc = "Fused grayscale + per-patch entropy kernel for ERASE Stage 1 (optional accelerator).",
    .m_size = -1,
    .m_methods = methods,
};

PyMODINIT_FUNC PyInit__entropy_kernel(void)
{
    gray_row_impl = pick_gray_row();
    gray_rows_impl = pick_gray_rows();
    return PyModule_Create(&module);
}
