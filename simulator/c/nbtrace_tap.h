/*
 * nbtrace_tap.h -- single-header tap library for nbtrace (C99).
 *
 * Emits named per-pixel values ("taps") in the canonical space dialect that
 * `nbtrace diff` reads:
 *
 *     TRACE_CONFIG: tracing pixel (spixel=S, fpixel=F)
 *     PREFIX: name v1 v2 v3          numbers with %.17g, so doubles round-trip
 *     PREFIX:key=value               setup block, printed once
 *     PREFIX_PHI phi_tic=0 k=v ...   loop lines
 *
 * and a binary region dump: an uncompressed ("stored") .npz whose members are
 * .npy arrays, one per tap, shape (ny, nx) or (ny, nx, 3); numpy.load reads it.
 *
 * Everything is compiled out -- every macro expands to nothing or to a
 * constant 0, its arguments are not evaluated, no symbol is emitted -- unless
 * NBTRACE_ENABLE (or TRACING) is defined before the include.
 *
 * Instrumenting an existing program (e.g. your own nanoBragg) in five lines:
 *
 *     #include "nbtrace_tap.h"                         // build with -DNBTRACE_ENABLE
 *     NBT_BEGIN("TRACE_C"); NBT_TRACE_PIXEL(200, 300);  // in main(), after parsing
 *     NBT_PIXEL_BEGIN(spixel, fpixel);                  // top of the pixel loop body
 *     NBT_NBVEC("pixel_pos_meters", pixel_pos);         // nanoBragg v[1..3] vectors
 *     NBT_SCALAR("F_latt", F_latt); NBT_PIXEL_END();    // anywhere inside / at the end
 *
 * Gating: only pixels registered with NBT_TRACE_PIXEL print, and only pixels
 * inside NBT_REGION_BEGIN's rectangle are recorded.  The "current pixel"
 * state is thread-local (GCC/Clang __thread, C11 _Thread_local), so an
 * OpenMP pixel loop may call the macros; output of two traced pixels computed
 * concurrently would interleave, so compute traced pixels in a serial pass.
 * Region recording keeps the FIRST value a tap takes in a pixel (for a
 * per-subpixel tap: layer 0, subpixel (0,0)).  Creating a region array on a
 * tap's first use is not thread-safe either: record regions serially too.
 * Its memory is (taps x pixels x components) doubles: keep regions modest.
 * All state is `static`, i.e. per translation unit: register pixels and emit
 * taps from the same .c file (nanoBragg is a single file).
 *
 * Macros (all no-ops when disabled):
 *   NBT_BEGIN(prefix)                 turn output on, set the prefix ("TRACE_C")
 *   NBT_TRACE_PIXEL(s, f)             register a pixel (slow, fast) to print (at most 4096)
 *   NBT_REGION_BEGIN(x0, x1, y0, y1)  record an inclusive fast/slow rectangle
 *   NBT_IS_TRACED(s, f)               1 if (s, f) prints or is recorded
 *   NBT_PIXEL_BEGIN(s, f) / NBT_PIXEL_END()
 *   NBT_ACTIVE                        1 inside a traced/recorded pixel
 *   NBT_PRINTING                      1 inside a printed pixel
 *   NBT_SCALAR(name, x)  NBT_INT(name, n)  NBT_VEC3(name, v)  NBT_IVEC3(name, v)
 *   NBT_NBVEC(name, v)   (v[1], v[2], v[3], nanoBragg's 1-based vectors)
 *   NBT_MAT33(name, m)   (row-major double[9], printed as nine numbers)
 *   NBT_SETUP_STR(key, s)  NBT_SETUP_NUM(key, x)  NBT_SETUP_INT(key, n)
 *   NBT_SETUP_VEC3(key, v)  NBT_SETUP_MAT33(key, m)
 *   NBT_LOOP_BEGIN(kind)  NBT_LOOP_INT(key, n)  NBT_LOOP_NUM(key, x)  NBT_LOOP_END()
 *   NBT_REGION_WRITE(path, meta_json) -> 0 on success, -1 (errno set) on failure
 *   NBT_END()                         free the region store
 *
 * The npz writer is also usable directly when enabled:
 *   nbt_npz *z = nbt_npz_open(path);
 *   nbt_npz_add(z, name, NBT_F64, data, ndim, shape);   (NBT_I64, NBT_U8 too)
 *   nbt_npz_close(z);                                     -> 0 or -1
 */
#ifndef NBTRACE_TAP_H
#define NBTRACE_TAP_H

#if defined(NBTRACE_ENABLE) || defined(TRACING)

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__GNUC__) || defined(__clang__)
#define NBT_TLS __thread
#define NBT_UNUSED __attribute__((unused))
#elif defined(__STDC_VERSION__) && __STDC_VERSION__ >= 201112L
#define NBT_TLS _Thread_local
#define NBT_UNUSED
#else
#define NBT_TLS
#define NBT_UNUSED
#endif

#define NBT_MAX_PIXELS 4096
#define NBT_MAX_TAPS 128
#define NBT_NAME_LEN 64

typedef struct {
    char name[NBT_NAME_LEN];
    int ncomp;                /* 1 scalar, 3 vector, 9 matrix */
    double *data;             /* npix * ncomp */
    unsigned char *written;   /* npix: first value wins */
} nbt_region_tap;

typedef struct {
    int on;
    char prefix[32];
    int npix;
    int pix_s[NBT_MAX_PIXELS];
    int pix_f[NBT_MAX_PIXELS];
    int region_on;
    int rx0, rx1, ry0, ry1;
    int ntaps;
    nbt_region_tap taps[NBT_MAX_TAPS];
} nbt_state_t;

static nbt_state_t nbt_state NBT_UNUSED;
static NBT_TLS int nbt_printing NBT_UNUSED;
static NBT_TLS long nbt_slot NBT_UNUSED = -1;

static NBT_UNUSED void nbt_begin(const char *prefix)
{
    nbt_state.on = 1;
    strncpy(nbt_state.prefix, prefix, sizeof nbt_state.prefix - 1);
}

static NBT_UNUSED void nbt_trace_pixel(int s, int f)
{
    if (nbt_state.npix >= NBT_MAX_PIXELS) {
        fprintf(stderr, "nbtrace_tap: more than %d traced pixels; ignoring (%d, %d)\n", NBT_MAX_PIXELS, s, f);
        return;
    }
    nbt_state.pix_s[nbt_state.npix] = s;
    nbt_state.pix_f[nbt_state.npix] = f;
    nbt_state.npix++;
}

static NBT_UNUSED void nbt_region_begin(int x0, int x1, int y0, int y1)
{
    nbt_state.region_on = 1;
    nbt_state.rx0 = x0; nbt_state.rx1 = x1;
    nbt_state.ry0 = y0; nbt_state.ry1 = y1;
}

static NBT_UNUSED int nbt_prints(int s, int f)
{
    int i;
    if (!nbt_state.on) return 0;
    for (i = 0; i < nbt_state.npix; i++)
        if (nbt_state.pix_s[i] == s && nbt_state.pix_f[i] == f) return 1;
    return 0;
}

static NBT_UNUSED long nbt_region_index(int s, int f)
{
    const nbt_state_t *st = &nbt_state;
    if (!st->region_on || f < st->rx0 || f > st->rx1 || s < st->ry0 || s > st->ry1) return -1;
    return (long)(s - st->ry0) * (st->rx1 - st->rx0 + 1) + (f - st->rx0);
}

static NBT_UNUSED int nbt_is_traced(int s, int f)
{
    return nbt_prints(s, f) || nbt_region_index(s, f) >= 0;
}

static NBT_UNUSED void nbt_pixel_begin(int s, int f)
{
    nbt_printing = nbt_prints(s, f);
    nbt_slot = nbt_region_index(s, f);
    if (nbt_printing) printf("TRACE_CONFIG: tracing pixel (spixel=%d, fpixel=%d)\n", s, f);
}

static NBT_UNUSED void nbt_pixel_end(void)
{
    if (nbt_printing) fflush(stdout);
    nbt_printing = 0;
    nbt_slot = -1;
}

static NBT_UNUSED long nbt_region_npix(void)
{
    const nbt_state_t *st = &nbt_state;
    return (long)(st->rx1 - st->rx0 + 1) * (st->ry1 - st->ry0 + 1);
}

static NBT_UNUSED nbt_region_tap *nbt_region_tap_for(const char *name, int ncomp)
{
    int i;
    long n;
    nbt_region_tap *t;
    for (i = 0; i < nbt_state.ntaps; i++)
        if (strcmp(nbt_state.taps[i].name, name) == 0) return &nbt_state.taps[i];
    if (nbt_state.ntaps >= NBT_MAX_TAPS) return NULL;
    n = nbt_region_npix();
    t = &nbt_state.taps[nbt_state.ntaps];
    t->data = (double *)calloc((size_t)n * ncomp, sizeof(double));
    t->written = (unsigned char *)calloc((size_t)n, 1);
    if (t->data == NULL || t->written == NULL) {
        free(t->data); free(t->written);
        return NULL;
    }
    strncpy(t->name, name, NBT_NAME_LEN - 1);
    t->ncomp = ncomp;
    nbt_state.ntaps++;
    return t;
}

static NBT_UNUSED void nbt_record(const char *name, const double *v, int ncomp)
{
    nbt_region_tap *t;
    int c;
    if (nbt_slot < 0) return;
    t = nbt_region_tap_for(name, ncomp);
    /* a tap whose arity changes between calls is a caller bug; keep the first */
    if (t == NULL || t->ncomp != ncomp || t->written[nbt_slot]) return;
    for (c = 0; c < ncomp; c++) t->data[nbt_slot * ncomp + c] = v[c];
    t->written[nbt_slot] = 1;
}

static NBT_UNUSED void nbt_emit(const char *name, const double *v, int ncomp)
{
    int c;
    if (nbt_printing) {
        printf("%s: %s", nbt_state.prefix, name);
        for (c = 0; c < ncomp; c++) printf(" %.17g", v[c]);
        putchar('\n');
    }
    nbt_record(name, v, ncomp);
}

static NBT_UNUSED void nbt_emit_int(const char *name, const long *v, int ncomp)
{
    double d[3];
    int c;
    if (nbt_printing) {
        printf("%s: %s", nbt_state.prefix, name);
        for (c = 0; c < ncomp; c++) printf(" %ld", v[c]);
        putchar('\n');
    }
    for (c = 0; c < ncomp && c < 3; c++) d[c] = (double)v[c];
    nbt_record(name, d, ncomp);
}

static NBT_UNUSED void nbt_scalar(const char *name, double x) { nbt_emit(name, &x, 1); }

static NBT_UNUSED void nbt_int(const char *name, long n) { nbt_emit_int(name, &n, 1); }

static NBT_UNUSED void nbt_vec3(const char *name, double x, double y, double z)
{
    double v[3];
    v[0] = x; v[1] = y; v[2] = z;
    nbt_emit(name, v, 3);
}

static NBT_UNUSED void nbt_ivec3(const char *name, long x, long y, long z)
{
    long v[3];
    v[0] = x; v[1] = y; v[2] = z;
    nbt_emit_int(name, v, 3);
}

static NBT_UNUSED void nbt_setup_head(const char *key)
{
    printf("%s:%s=", nbt_state.prefix, key);
}

static NBT_UNUSED void nbt_setup_str(const char *key, const char *s)
{
    if (!nbt_state.on) return;
    nbt_setup_head(key);
    printf("%s\n", s);
}

static NBT_UNUSED void nbt_setup_num(const char *key, double x)
{
    if (!nbt_state.on) return;
    nbt_setup_head(key);
    printf("%.17g\n", x);
}

static NBT_UNUSED void nbt_setup_int(const char *key, long n)
{
    if (!nbt_state.on) return;
    nbt_setup_head(key);
    printf("%ld\n", n);
}

static NBT_UNUSED void nbt_setup_vec3(const char *key, double x, double y, double z)
{
    if (!nbt_state.on) return;
    nbt_setup_head(key);
    printf("%.17g %.17g %.17g\n", x, y, z);
}

static NBT_UNUSED void nbt_setup_mat33(const char *key, const double *m)
{
    if (!nbt_state.on) return;
    nbt_setup_head(key);
    printf("[%.17g %.17g %.17g; %.17g %.17g %.17g; %.17g %.17g %.17g]\n",
           m[0], m[1], m[2], m[3], m[4], m[5], m[6], m[7], m[8]);
}

static NBT_UNUSED void nbt_loop_begin(const char *kind)
{
    if (nbt_printing) printf("%s_%s", nbt_state.prefix, kind);
}

static NBT_UNUSED void nbt_loop_int(const char *key, long n)
{
    if (nbt_printing) printf(" %s=%ld", key, n);
}

static NBT_UNUSED void nbt_loop_num(const char *key, double x)
{
    if (nbt_printing) printf(" %s=%.17g", key, x);
}

static NBT_UNUSED void nbt_loop_end(void)
{
    if (nbt_printing) putchar('\n');
}

/* ---------------------------------------------------------------- npz ---- */

typedef enum { NBT_F64, NBT_I64, NBT_U8 } nbt_dtype;

#define NBT_NPZ_MAX_MEMBERS 256

typedef struct {
    FILE *fp;
    int failed;
    uint32_t offset;
    int nmembers;
    char names[NBT_NPZ_MAX_MEMBERS][NBT_NAME_LEN + 8];
    uint32_t crcs[NBT_NPZ_MAX_MEMBERS];
    uint32_t sizes[NBT_NPZ_MAX_MEMBERS];
    uint32_t offsets[NBT_NPZ_MAX_MEMBERS];
} nbt_npz;

static NBT_UNUSED uint32_t nbt_crc32_update(uint32_t crc, const unsigned char *p, size_t n)
{
    /* bitwise reflected CRC-32 (poly 0xEDB88320): dumps are small, a table buys nothing */
    size_t i;
    int k;
    crc = ~crc;
    for (i = 0; i < n; i++) {
        crc ^= p[i];
        for (k = 0; k < 8; k++) crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
    }
    return ~crc;
}

static NBT_UNUSED void nbt_put16(unsigned char *b, unsigned v)
{
    b[0] = (unsigned char)(v & 0xff); b[1] = (unsigned char)((v >> 8) & 0xff);
}

static NBT_UNUSED void nbt_put32(unsigned char *b, uint32_t v)
{
    nbt_put16(b, v & 0xffffu); nbt_put16(b + 2, (v >> 16) & 0xffffu);
}

static NBT_UNUSED void nbt_npz_write(nbt_npz *z, const void *p, size_t n)
{
    if (z->failed) return;
    if (n && fwrite(p, 1, n, z->fp) != n) z->failed = errno ? errno : EIO;
    z->offset += (uint32_t)n;
}

static NBT_UNUSED nbt_npz *nbt_npz_open(const char *path)
{
    nbt_npz *z = (nbt_npz *)calloc(1, sizeof *z);
    if (z == NULL) return NULL;
    z->fp = fopen(path, "wb");
    if (z->fp == NULL) { free(z); return NULL; }
    return z;
}

static NBT_UNUSED int nbt_host_little_endian(void)
{
    const uint16_t one = 1;
    return *(const unsigned char *)&one == 1;
}

/* The .npy header: magic, version 1.0, little-endian length, a dict padded so the data start on a
   64-byte boundary (numpy's own alignment). Returns its length. */
static NBT_UNUSED size_t nbt_npy_header(char *buf, size_t cap, nbt_dtype t, int ndim, const long *shape)
{
    char dict[256], dims[96];
    const char *descr;
    size_t len, total, pad;
    int i, k = 0;
    char order = nbt_host_little_endian() ? '<' : '>';
    descr = t == NBT_F64 ? "f8" : t == NBT_I64 ? "i8" : "u1";
    dims[0] = '\0';
    for (i = 0; i < ndim; i++)
        k += snprintf(dims + k, sizeof dims - (size_t)k, "%ld,%s", shape[i], (ndim > 1 && i < ndim - 1) ? " " : "");
    if (ndim > 1 && k > 0 && dims[k - 1] == ',') dims[k - 1] = '\0';
    snprintf(dict, sizeof dict, "{'descr': '%c%s', 'fortran_order': False, 'shape': (%s), }",
             t == NBT_U8 ? '|' : order, descr, dims);
    len = strlen(dict);
    total = 10 + len + 1;
    pad = (64 - total % 64) % 64;
    if (total + pad > cap) return 0;
    memcpy(buf, "\x93NUMPY\x01\x00", 8);
    nbt_put16((unsigned char *)buf + 8, (unsigned)(len + pad + 1));
    memcpy(buf + 10, dict, len);
    memset(buf + 10 + len, ' ', pad);
    buf[10 + len + pad] = '\n';
    return total + pad;
}

/* Adds member NAME.npy. Returns 0, or -1 with errno set. */
static NBT_UNUSED int nbt_npz_add(nbt_npz *z, const char *name, nbt_dtype t, const void *data,
                                  int ndim, const long *shape)
{
    char hdr[512], fname[NBT_NAME_LEN + 8];
    unsigned char lh[30];
    size_t hlen, nbytes, elsize = t == NBT_U8 ? 1 : 8;
    long count = 1;
    uint32_t crc;
    int i;
    if (z == NULL || z->nmembers >= NBT_NPZ_MAX_MEMBERS || strlen(name) >= NBT_NAME_LEN) {
        errno = EINVAL;
        return -1;
    }
    for (i = 0; i < ndim; i++) count *= shape[i];
    nbytes = (size_t)count * elsize;
    hlen = nbt_npy_header(hdr, sizeof hdr, t, ndim, shape);
    if (hlen == 0 || hlen + nbytes > 0xFFFFFFFFu - z->offset) {
        errno = EFBIG;  /* no zip64: a region that large is not a trace */
        return -1;
    }
    snprintf(fname, sizeof fname, "%s.npy", name);
    crc = nbt_crc32_update(0, (const unsigned char *)hdr, hlen);
    crc = nbt_crc32_update(crc, (const unsigned char *)data, nbytes);

    memset(lh, 0, sizeof lh);
    nbt_put32(lh, 0x04034b50u);
    nbt_put16(lh + 4, 20);
    nbt_put16(lh + 10, 0);      /* time */
    nbt_put16(lh + 12, 0x21);   /* 1980-01-01 */
    nbt_put32(lh + 14, crc);
    nbt_put32(lh + 18, (uint32_t)(hlen + nbytes));
    nbt_put32(lh + 22, (uint32_t)(hlen + nbytes));
    nbt_put16(lh + 26, (unsigned)strlen(fname));
    strcpy(z->names[z->nmembers], fname);
    z->crcs[z->nmembers] = crc;
    z->sizes[z->nmembers] = (uint32_t)(hlen + nbytes);
    z->offsets[z->nmembers] = z->offset;
    z->nmembers++;
    nbt_npz_write(z, lh, sizeof lh);
    nbt_npz_write(z, fname, strlen(fname));
    nbt_npz_write(z, hdr, hlen);
    nbt_npz_write(z, data, nbytes);
    if (z->failed) { errno = z->failed; return -1; }
    return 0;
}

/* Writes the central directory and closes. Returns 0, or -1 with errno set; frees z either way. */
static NBT_UNUSED int nbt_npz_close(nbt_npz *z)
{
    unsigned char ch[46], end[22];
    uint32_t cd_start, cd_size;
    int i, err;
    if (z == NULL) { errno = EINVAL; return -1; }
    cd_start = z->offset;
    for (i = 0; i < z->nmembers; i++) {
        memset(ch, 0, sizeof ch);
        nbt_put32(ch, 0x02014b50u);
        nbt_put16(ch + 4, 20);
        nbt_put16(ch + 6, 20);
        nbt_put16(ch + 14, 0x21);
        nbt_put32(ch + 16, z->crcs[i]);
        nbt_put32(ch + 20, z->sizes[i]);
        nbt_put32(ch + 24, z->sizes[i]);
        nbt_put16(ch + 28, (unsigned)strlen(z->names[i]));
        nbt_put32(ch + 42, z->offsets[i]);
        nbt_npz_write(z, ch, sizeof ch);
        nbt_npz_write(z, z->names[i], strlen(z->names[i]));
    }
    cd_size = z->offset - cd_start;
    memset(end, 0, sizeof end);
    nbt_put32(end, 0x06054b50u);
    nbt_put16(end + 8, (unsigned)z->nmembers);
    nbt_put16(end + 10, (unsigned)z->nmembers);
    nbt_put32(end + 12, cd_size);
    nbt_put32(end + 16, cd_start);
    nbt_npz_write(z, end, sizeof end);
    err = z->failed;
    if (fclose(z->fp) != 0 && !err) err = errno ? errno : EIO;
    free(z);
    if (err) { errno = err; return -1; }
    return 0;
}

/* Dumps every recorded tap plus `roi` (int64 [xmin,xmax,ymin,ymax]) and `meta_json` (uint8). */
static NBT_UNUSED int nbt_region_write(const char *path, const char *meta_json)
{
    nbt_npz *z;
    const nbt_state_t *st = &nbt_state;
    long shape[3], roi[4], metalen;
    int i, rc = 0;
    if (!st->region_on) return 0;
    z = nbt_npz_open(path);
    if (z == NULL) return -1;
    shape[0] = st->ry1 - st->ry0 + 1;
    shape[1] = st->rx1 - st->rx0 + 1;
    for (i = 0; i < st->ntaps && rc == 0; i++) {
        shape[2] = st->taps[i].ncomp;
        rc = nbt_npz_add(z, st->taps[i].name, NBT_F64, st->taps[i].data, st->taps[i].ncomp > 1 ? 3 : 2, shape);
    }
    roi[0] = st->rx0; roi[1] = st->rx1; roi[2] = st->ry0; roi[3] = st->ry1;
    {
        int64_t roi64[4];
        for (i = 0; i < 4; i++) roi64[i] = roi[i];
        shape[0] = 4;
        if (rc == 0) rc = nbt_npz_add(z, "roi", NBT_I64, roi64, 1, shape);
    }
    metalen = (long)strlen(meta_json ? meta_json : "");
    shape[0] = metalen;
    if (rc == 0) rc = nbt_npz_add(z, "meta_json", NBT_U8, meta_json ? meta_json : "", 1, shape);
    if (rc != 0) {
        int e = errno;
        nbt_npz_close(z);
        errno = e;
        return -1;
    }
    return nbt_npz_close(z);
}

static NBT_UNUSED void nbt_end(void)
{
    int i;
    for (i = 0; i < nbt_state.ntaps; i++) {
        free(nbt_state.taps[i].data);
        free(nbt_state.taps[i].written);
    }
    nbt_state.ntaps = 0;
    fflush(stdout);
}

#define NBT_BEGIN(prefix) nbt_begin(prefix)
#define NBT_TRACE_PIXEL(s, f) nbt_trace_pixel((s), (f))
#define NBT_REGION_BEGIN(x0, x1, y0, y1) nbt_region_begin((x0), (x1), (y0), (y1))
#define NBT_IS_TRACED(s, f) nbt_is_traced((s), (f))
#define NBT_PIXEL_BEGIN(s, f) nbt_pixel_begin((s), (f))
#define NBT_PIXEL_END() nbt_pixel_end()
#define NBT_ACTIVE (nbt_printing || nbt_slot >= 0)
#define NBT_PRINTING (nbt_printing)
#define NBT_SCALAR(name, x) do { if (NBT_ACTIVE) nbt_scalar((name), (double)(x)); } while (0)
#define NBT_INT(name, n) do { if (NBT_ACTIVE) nbt_int((name), (long)(n)); } while (0)
#define NBT_VEC3(name, v) do { if (NBT_ACTIVE) nbt_vec3((name), (v)[0], (v)[1], (v)[2]); } while (0)
#define NBT_NBVEC(name, v) do { if (NBT_ACTIVE) nbt_vec3((name), (v)[1], (v)[2], (v)[3]); } while (0)
#define NBT_IVEC3(name, v) \
    do { if (NBT_ACTIVE) nbt_ivec3((name), (long)(v)[0], (long)(v)[1], (long)(v)[2]); } while (0)
#define NBT_MAT33(name, m) do { if (NBT_ACTIVE) nbt_emit((name), (m), 9); } while (0)
#define NBT_SETUP_STR(key, s) nbt_setup_str((key), (s))
#define NBT_SETUP_NUM(key, x) nbt_setup_num((key), (double)(x))
#define NBT_SETUP_INT(key, n) nbt_setup_int((key), (long)(n))
#define NBT_SETUP_VEC3(key, v) nbt_setup_vec3((key), (v)[0], (v)[1], (v)[2])
#define NBT_SETUP_MAT33(key, m) nbt_setup_mat33((key), (m))
#define NBT_LOOP_BEGIN(kind) nbt_loop_begin(kind)
#define NBT_LOOP_INT(key, n) nbt_loop_int((key), (long)(n))
#define NBT_LOOP_NUM(key, x) nbt_loop_num((key), (double)(x))
#define NBT_LOOP_END() nbt_loop_end()
#define NBT_REGION_WRITE(path, meta_json) nbt_region_write((path), (meta_json))
#define NBT_END() nbt_end()

#else /* tracing compiled out: nothing is evaluated, nothing is emitted */

#define NBT_BEGIN(prefix) ((void)0)
#define NBT_TRACE_PIXEL(s, f) ((void)0)
#define NBT_REGION_BEGIN(x0, x1, y0, y1) ((void)0)
#define NBT_IS_TRACED(s, f) (0)
#define NBT_PIXEL_BEGIN(s, f) ((void)0)
#define NBT_PIXEL_END() ((void)0)
#define NBT_ACTIVE (0)
#define NBT_PRINTING (0)
#define NBT_SCALAR(name, x) ((void)0)
#define NBT_INT(name, n) ((void)0)
#define NBT_VEC3(name, v) ((void)0)
#define NBT_NBVEC(name, v) ((void)0)
#define NBT_IVEC3(name, v) ((void)0)
#define NBT_MAT33(name, m) ((void)0)
#define NBT_SETUP_STR(key, s) ((void)0)
#define NBT_SETUP_NUM(key, x) ((void)0)
#define NBT_SETUP_INT(key, n) ((void)0)
#define NBT_SETUP_VEC3(key, v) ((void)0)
#define NBT_SETUP_MAT33(key, m) ((void)0)
#define NBT_LOOP_BEGIN(kind) ((void)0)
#define NBT_LOOP_INT(key, n) ((void)0)
#define NBT_LOOP_NUM(key, x) ((void)0)
#define NBT_LOOP_END() ((void)0)
#define NBT_REGION_WRITE(path, meta_json) (0)
#define NBT_END() ((void)0)

#endif /* NBTRACE_ENABLE || TRACING */
#endif /* NBTRACE_TAP_H */
