#define _XOPEN_SOURCE 700
/*
 * nbref -- the nbtrace C reference simulator: nanoBragg's physics as stated in
 * docs/physics.md, written from that fact sheet in portable C99
 * (+ OpenMP when the compiler has it), instrumented with nbtrace_tap.h.
 *
 * Units inside: metres, radians, m^-1 for the scattering vector, Angstrom for
 * the unit cell until it is converted (physics.md 2.4.6).  Vectors are
 * double[3] (x, y, z), 0-based.  Deliberate differences from the original C
 * program are listed in README.md.
 */
#include <errno.h>
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "nbtrace_tap.h"

#ifndef M_PI
#define M_PI 3.14159265358979323846
#endif
#ifndef M_1_PI
#define M_1_PI 0.31830988618379067154
#endif

#define NBREF_VERSION "0.1.0"
#define RTD (180.0 * M_1_PI)
#define R_E_SQR 7.94079248018965e-30
#define AVOGADRO 6.02214179e23
#define DEFAULT_FLUENCE 125932015286227086360700780544.0
#define WATER_F 2.57
#define WATER_MW 18.0
#define SOURCE_DISTANCE 10.0
#define UNSET (-1.0)
#define MAX_TRACE 4096

typedef enum { MOSFLM, XDS, ADXV, DENZO, DIALS, CUSTOM } Convention;
typedef enum { PIVOT_BEAM, PIVOT_SAMPLE } Pivot;
typedef enum { SQUARE, ROUND, GAUSS, TOPHAT } Shape;

static const char *CONVENTION_NAMES[] = {"MOSFLM", "XDS", "ADXV", "DENZO", "DIALS", "CUSTOM"};

/* ------------------------------------------------------------ errors ---- */

static void die(const char *fmt, ...)
{
    va_list ap;
    fputs("nbref: error: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(2);
}

static void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size);
    if (p == NULL)
        die("out of memory: allocating %zu x %zu bytes (%.3g GB) failed (hint: use a smaller detector)", n, size,
            (double)n * (double)size / 1e9);
    return p;
}

/* ------------------------------------------------------------ vectors --- */

static double dot3(const double *a, const double *b) { return a[0] * b[0] + a[1] * b[1] + a[2] * b[2]; }

static double norm3(const double *a) { return sqrt(dot3(a, a)); }

static void cross3(const double *a, const double *b, double *out)
{
    double t[3];
    t[0] = a[1] * b[2] - a[2] * b[1];
    t[1] = a[2] * b[0] - a[0] * b[2];
    t[2] = a[0] * b[1] - a[1] * b[0];
    memcpy(out, t, sizeof t);
}

static void scale3(const double *a, double s, double *out)
{
    out[0] = a[0] * s; out[1] = a[1] * s; out[2] = a[2] * s;
}

/* Unit vector of a; returns the original length. A zero vector stays zero. */
static double unitize3(const double *a, double *out)
{
    double m = norm3(a);
    if (m != 0.0) {
        out[0] = a[0] / m; out[1] = a[1] / m; out[2] = a[2] / m;
    } else {
        out[0] = a[0]; out[1] = a[1]; out[2] = a[2];
    }
    return m;
}

/* XYZ(v; rx, ry, rz) = Rz Ry Rx v, each rotation skipped at exactly 0 (physics.md notation). */
static void rotate_xyz(const double *v, double *out, double rx, double ry, double rz)
{
    double x = v[0], y = v[1], z = v[2], t0, t1, t2;
    if (rx != 0) {
        t1 = y * cos(rx) + z * (-sin(rx));
        t2 = y * sin(rx) + z * cos(rx);
        y = t1; z = t2;
    }
    if (ry != 0) {
        t0 = x * cos(ry) + y * 0 + z * sin(ry);
        t2 = x * (-sin(ry)) + y * 0 + z * cos(ry);
        x = t0; z = t2;
    }
    if (rz != 0) {
        t0 = x * cos(rz) + y * (-sin(rz));
        t1 = x * sin(rz) + y * cos(rz);
        x = t0; y = t1;
    }
    out[0] = x; out[1] = y; out[2] = z;
}

/* Rodrigues rotation about k, k used as given (not normalized), angle phi in rad. */
static void rotate_axis(const double *v, double *out, const double *k, double phi)
{
    double s = sin(phi), c = cos(phi), t[3];
    double d = (k[0] * v[0] + k[1] * v[1] + k[2] * v[2]) * (1.0 - c);
    t[0] = k[0] * d + v[0] * c + (-k[2] * v[1] + k[1] * v[2]) * s;
    t[1] = k[1] * d + v[1] * c + (+k[2] * v[0] - k[0] * v[2]) * s;
    t[2] = k[2] * d + v[2] * c + (-k[1] * v[0] + k[0] * v[1]) * s;
    memcpy(out, t, sizeof t);
}

static void rotate_umat(const double *v, double *out, const double *u)
{
    double t[3];
    t[0] = u[0] * v[0] + u[1] * v[1] + u[2] * v[2];
    t[1] = u[3] * v[0] + u[4] * v[1] + u[5] * v[2];
    t[2] = u[6] * v[0] + u[7] * v[1] + u[8] * v[2];
    memcpy(out, t, sizeof t);
}

/* ------------------------------------------------------------ RNG (7.4) - */

#define RAN_IA 16807
#define RAN_IM 2147483647
#define RAN_AM (1.0 / RAN_IM)
#define RAN_IQ 127773
#define RAN_IR 2836
#define RAN_NTAB 32
#define RAN_NDIV (1 + (RAN_IM - 1) / RAN_NTAB)
#define RAN_RNMX (1.0 - 1.2e-7)

/* Park-Miller + Bays-Durham shuffle; one static table shared by every stream, as in the original. */
static float ran1(long *idum)
{
    static long iy = 0;
    static long iv[RAN_NTAB];
    long k;
    int j;
    float temp;
    if (*idum <= 0 || !iy) {
        *idum = (-(*idum) < 1) ? 1 : -(*idum);
        for (j = RAN_NTAB + 7; j >= 0; j--) {
            k = *idum / RAN_IQ;
            *idum = RAN_IA * (*idum - k * RAN_IQ) - RAN_IR * k;
            if (*idum < 0) *idum += RAN_IM;
            if (j < RAN_NTAB) iv[j] = *idum;
        }
        iy = iv[0];
    }
    k = *idum / RAN_IQ;
    *idum = RAN_IA * (*idum - k * RAN_IQ) - RAN_IR * k;
    if (*idum < 0) *idum += RAN_IM;
    j = (int)(iy / RAN_NDIV);
    iy = iv[j];
    iv[j] = *idum;
    temp = (float)(RAN_AM * iy);
    return temp > RAN_RNMX ? (float)RAN_RNMX : temp;
}

/* Random rotation on a cap of angle `spread` (rad, float32 as in physics.md 2.7), row-major. */
static void mosaic_umat(float spread, double *u, long *seed)
{
    double r1 = 2.0 * ran1(seed) - 1.0;
    double r2 = 2.0 * ran1(seed) - 1.0;
    double r3 = 2.0 * ran1(seed) - 1.0;
    double xyrad = sqrt(1.0 - r2 * r2);
    double rot = spread * powf((float)(1.0 - r3 * r3), (float)(1.0 / 3.0));
    double v1 = xyrad * sin(M_PI * r1), v2 = xyrad * cos(M_PI * r1), v3 = r2;
    double c = cos(rot), t = 1.0 - c, s = sin(rot);
    u[0] = c + t * v1 * v1;
    u[1] = t * v1 * v2 - s * v3;
    u[2] = t * v1 * v3 + s * v2;
    u[3] = t * v1 * v2 + s * v3;
    u[4] = c + t * v2 * v2;
    u[5] = t * v2 * v3 - s * v1;
    u[6] = t * v1 * v3 - s * v2;
    u[7] = t * v2 * v3 + s * v1;
    u[8] = c + t * v3 * v3;
}

/* lnGamma, Lanczos 6-term (physics.md 7.3): double inside, float32 result. */
static float gammln(float xx)
{
    static const double cof[6] = {76.18009172947146, -86.50532032941677, 24.01409824083091,
                                  -1.231739572450155, 0.1208650973866179e-2, -0.5395239384953e-5};
    double x = xx, y = xx, tmp = x + 5.5, ser = 1.000000000190015;
    int j;
    tmp -= (x + 0.5) * log(tmp);
    for (j = 0; j < 6; j++) ser += cof[j] / ++y;
    return (float)(-tmp + log(2.5066282746310005 * ser / x));
}

static float gaussdev(long *idum)
{
    static int have_spare = 0;
    static float spare;
    float fac, rsq, v1, v2;
    if (have_spare) {
        have_spare = 0;
        return spare;
    }
    do {
        v1 = (float)(2.0 * ran1(idum) - 1.0);
        v2 = (float)(2.0 * ran1(idum) - 1.0);
        rsq = v1 * v1 + v2 * v2;
    } while (rsq >= 1.0 || rsq == 0);
    fac = (float)sqrt(-2.0 * log(rsq) / rsq);
    spare = v1 * fac;
    have_spare = 1;
    return v2 * fac;
}

/* Poisson deviate, float32 locals (physics.md 7.3). */
static float poidev(float xm, long *idum)
{
    float em, t, y, sq, alxm, g;
    if (xm > 1.0e6) return (float)(xm + sqrt(xm) * gaussdev(idum));
    if (xm < 12.0) {
        g = (float)exp(-xm);
        em = -1;
        t = 1.0f;
        do {
            ++em;
            t *= ran1(idum);
        } while (t > g);
        return em;
    }
    sq = (float)sqrt(2.0 * xm);
    alxm = (float)log(xm);
    g = xm * alxm - gammln((float)(xm + 1.0));
    do {
        do {
            y = (float)tan(M_PI * ran1(idum));
            em = sq * y + xm;
        } while (em < 0.0);
        em = (float)floor(em);
        t = (float)(0.9 * (1.0 + y * y) * exp(em * alxm - gammln((float)(em + 1.0)) - g));
    } while (ran1(idum) > t);
    return em;
}

/* ------------------------------------------------------------ config ---- */

typedef struct {
    int have_cell;
    double cell[6];               /* A, deg */
    const char *matfile, *hklfile, *sourcefile;
    int have_misset;
    double misset[3];             /* rad */
    double default_F;
    int Na, Nb, Nc;               /* raw -N values (interpolation auto-rule uses them) */
    double sample_x, sample_y, sample_z;   /* m */
    Shape shape;
    double fudge;
    double lambda0;               /* m */
    double dispersion, dispstep; int dispsteps;
    double hdivrange, vdivrange, hdivstep, vdivstep; int hdivsteps, vdivsteps;
    int round_div;
    double polarization; int nopolar;
    double fluence, flux, exposure, beamsize;
    double water;                 /* m */
    double phi0, osc, phistep; int phisteps;
    double mosaic_spread; int mosaic_domains; long mosaic_seed; int mosaic_given;
    long seed;
    double pixel;                 /* m */
    int fpixels, spixels;
    double detsize_f, detsize_s;  /* m */
    double distance, close_distance;  /* m; UNSET */
    int distance_given, close_given;  /* the flags, not an -img/-mask header */
    double Xbeam, Ybeam, Xclose, Yclose, ORGX, ORGY;  /* NAN when not given */
    Convention convention;
    Pivot pivot;
    double fdet[3], sdet[3], odet[3], beam[3], polar_vec[3], spindle[3], twotheta_axis[3];
    double rotx, roty, rotz, twotheta;
    int curved, point_pixel;
    double thick, mu; int thicksteps; int mu_given;
    int oversample, os_thick, os_polar, os_omega;
    int roi[4]; int roi_given;
    double dmin;
    int interpolate;              /* -1 auto, 0, 1 */
    const char *floatfile, *intfile, *noisefile, *pgmfile;
    double intscale, adc, pgmscale;
    int emulate_phi0;
    int ntrace; int trace_s[MAX_TRACE], trace_f[MAX_TRACE];
    int trace_roi_given; int trace_roi[4];
    const char *trace_dump;
    const char *imgfile, *maskfile;
    unsigned short *mask;         /* SIZE1 x SIZE2 of -mask, 0 = skip the pixel; NULL without -mask */
    int mask_f, mask_s;
} Config;

static void config_defaults(Config *c)
{
    static const double x[3] = {1, 0, 0}, z[3] = {0, 0, 1}, my[3] = {0, -1, 0}, py[3] = {0, 1, 0};
    memset(c, 0, sizeof *c);
    c->Na = c->Nb = c->Nc = 1;
    c->shape = SQUARE;
    c->fudge = 1.0;
    c->lambda0 = 1e-10;
    c->dispersion = 0.0; c->dispstep = UNSET; c->dispsteps = -1;
    c->hdivrange = c->vdivrange = c->hdivstep = c->vdivstep = UNSET;
    c->hdivsteps = c->vdivsteps = -1;
    c->round_div = 1;
    c->fluence = DEFAULT_FLUENCE; c->exposure = 1.0; c->beamsize = 1e-4;
    c->osc = UNSET; c->phistep = UNSET; c->phisteps = -1;
    c->mosaic_spread = UNSET; c->mosaic_domains = -1; c->mosaic_seed = -12345678;
    c->seed = -(long)time(NULL);
    c->pixel = 1e-4;
    c->detsize_f = c->detsize_s = 0.1024;
    c->distance = 0.1; c->close_distance = UNSET;
    c->Xbeam = c->Ybeam = c->Xclose = c->Yclose = c->ORGX = c->ORGY = NAN;
    c->convention = MOSFLM; c->pivot = PIVOT_BEAM;
    memcpy(c->beam, x, sizeof x); memcpy(c->fdet, z, sizeof z); memcpy(c->sdet, my, sizeof my);
    memcpy(c->odet, x, sizeof x); memcpy(c->polar_vec, z, sizeof z); memcpy(c->spindle, z, sizeof z);
    memcpy(c->twotheta_axis, py, sizeof py);   /* CUSTOM's initial 2theta axis is +y (physics.md 5.2) */
    c->thicksteps = -1; c->mu = UNSET;
    c->oversample = -1;
    c->interpolate = -1;
    c->adc = 40.0;
    c->trace_dump = "taps.npz";
}

/* Argument cursor: `i` is the flag being parsed; take_* consume the tokens after it. */
typedef struct { int argc; char **argv; int i; } Args;

static const char *flag_name(const Args *a) { return a->argv[a->i]; }

static const char *take_str(Args *a, const char *hint)
{
    if (a->i + 1 >= a->argc) die("%s needs an argument, got nothing (hint: %s)", flag_name(a), hint);
    return a->argv[++a->i];
}

/* `flag` is the flag whose value `tok` is, for the message. */
static double parse_num_or_die(const char *flag, const char *tok, const char *hint)
{
    char *end;
    double v;
    errno = 0;
    v = strtod(tok, &end);
    if (end == tok || *end != '\0' || errno == ERANGE || isnan(v) || isinf(v))
        die("%s needs a number, got '%s' (hint: %s)", flag, tok, hint);
    return v;
}

static double take_num(Args *a, const char *hint)
{
    const char *flag = flag_name(a);
    if (a->i + 1 >= a->argc) die("%s needs a number, got nothing (hint: %s)", flag, hint);
    return parse_num_or_die(flag, a->argv[++a->i], hint);
}

static long take_int(Args *a, const char *hint)
{
    char *end;
    long v;
    const char *tok, *flag = flag_name(a);
    if (a->i + 1 >= a->argc) die("%s needs an integer, got nothing (hint: %s)", flag, hint);
    tok = a->argv[++a->i];
    errno = 0;
    v = strtol(tok, &end, 10);
    if (end == tok || *end != '\0' || errno == ERANGE || v > INT_MAX || v < INT_MIN)
        die("%s needs an integer, got '%s' (hint: %s)", flag, tok, hint);
    return v;
}

static void take_vec3(Args *a, double *v, const char *hint)
{
    int k;
    for (k = 0; k < 3; k++) v[k] = take_num(a, hint);
}

/* Range-checked values: physics.md gives no rule for them, and the kernel would divide by zero, allocate a
   negative size or silently fall back to a default. */
static double take_positive(Args *a, const char *unit, const char *example)
{
    const char *flag = flag_name(a);
    double v = take_num(a, example);
    if (!(v > 0)) die("%s: must be > 0 %s, got %g (hint: %s)", flag, unit, v, example);
    return v;
}

static double take_nonnegative(Args *a, const char *unit, const char *example)
{
    const char *flag = flag_name(a);
    double v = take_num(a, example);
    if (v < 0) die("%s: must be >= 0 %s, got %g (hint: %s)", flag, unit, v, example);
    return v;
}

static int take_count(Args *a, int min, const char *what, const char *example)
{
    const char *flag = flag_name(a);
    long v = take_int(a, example);
    if (v < min) die("%s: %s must be >= %d, got %ld (hint: %s)", flag, what, min, v, example);
    return (int)v;
}

static int is(const Args *a, const char *name) { return strcmp(a->argv[a->i], name) == 0; }

static int is_any(const Args *a, const char *const *names)
{
    for (; *names; names++)
        if (is(a, *names)) return 1;
    return 0;
}

static void parse_cell(Args *a, Config *c)
{
    int n = 0;
    /* as in the original, the list ends early at the next '-' token; a, then b = c = a, angles 90 */
    while (n < 6 && a->i + 1 < a->argc && a->argv[a->i + 1][0] != '-') {
        c->cell[n] = parse_num_or_die("-cell", a->argv[++a->i], "-cell a b c alpha beta gamma, in Angstrom and degrees");
        n++;
    }
    /* the list stops at a '-' token, so a negative length or angle would surface as an unknown flag */
    if (n < 6 && a->i + 1 < a->argc) {
        char *end;
        const char *tok = a->argv[a->i + 1];
        (void)strtod(tok, &end);
        if (end != tok && *end == '\0')
            die("-cell: value %d is %s, lengths and angles must be positive (hint: -cell 100 100 100 90 90 90; "
                "0 or a missing b, c or angle takes the default)", n + 1, tok);
    }
    if (n == 0) die("-cell needs at least one number, got %s (hint: -cell 100 100 100 90 90 90)",
                    a->i + 1 < a->argc ? a->argv[a->i + 1] : "nothing");
    c->have_cell = 1;
}

static void parse_misset(Args *a, Config *c)
{
    if (a->i + 1 < a->argc && strstr(a->argv[a->i + 1], "rand"))
        die("-misset random is not supported by the reference (hint: give three angles, -misset 10 20 30)");
    take_vec3(a, c->misset, "-misset rotx roty rotz in degrees");
    c->misset[0] /= RTD; c->misset[1] /= RTD; c->misset[2] /= RTD;
    c->have_misset = 1;
}

static void parse_detector_abs(Args *a, Config *c)
{
    const char *flag = flag_name(a), *tok = take_str(a, "attenuation depth in um, or inf");
    if (strcmp(tok, "inf") == 0 || strcmp(tok, "0") == 0) {
        /* "inf" or 0 mean no absorption and also zero the thickness (argv-order dependent, as in C) */
        c->mu = 0.0; c->thick = 0.0;
    } else {
        double depth = parse_num_or_die(flag, tok, "attenuation depth in um, or inf");
        if (depth == 0.0) { c->mu = 0.0; c->thick = 0.0; }
        else c->mu = 1.0 / (depth * 1e-6);
    }
    c->mu_given = 1;
}

static void parse_roi(Args *a, int *roi, const char *hint)
{
    int k;
    for (k = 0; k < 4; k++) roi[k] = (int)take_int(a, hint);
}

static void parse_trace_pixel(Args *a, Config *c)
{
    if (c->ntrace >= MAX_TRACE) die("too many -trace_pixel flags (hint: at most %d; use -trace_roi)", MAX_TRACE);
    c->trace_s[c->ntrace] = (int)take_int(a, "-trace_pixel SLOW FAST, pixel indices");
    c->trace_f[c->ntrace] = (int)take_int(a, "-trace_pixel SLOW FAST, pixel indices");
    c->ntrace++;
}

static void set_custom_vec(Args *a, Config *c, double *v)
{
    take_vec3(a, v, "three numbers x y z");
    c->convention = CUSTOM;
}

/* A direction nanoBragg would silently turn into a zero vector (-polar_vector and -odet_vector keep a
   meaning then: no polarization basis, an odet rebuilt from fdet x sdet). */
static void set_custom_dir(Args *a, Config *c, double *v)
{
    const char *flag = flag_name(a);
    set_custom_vec(a, c, v);
    if (v[0] == 0.0 && v[1] == 0.0 && v[2] == 0.0)
        die("%s 0 0 0 is a zero vector, not a direction (hint: e.g. %s 0 0 1)", flag, flag);
}

/* Geometry/beam flags; returns 0 if the flag is not one of them. */
static int parse_geometry_flag(Args *a, Config *c)
{
    static const char *const detpix_f[] = {"-detpixels_f", "-detpixels_x", NULL};
    static const char *const detpix_s[] = {"-detpixels_s", "-detpixels_y", NULL};
    if (is(a, "-distance")) { c->distance = take_num(a, "mm") / 1000.0; c->pivot = PIVOT_BEAM; c->distance_given = 1; }
    else if (is(a, "-close_distance")) {
        c->close_distance = take_positive(a, "mm", "e.g. -close_distance 100") / 1000.0;
        c->pivot = PIVOT_SAMPLE;
        c->close_given = 1;
    }
    else if (is(a, "-detsize")) { c->detsize_f = c->detsize_s = take_num(a, "mm") / 1000.0; }
    else if (is(a, "-detsize_f")) { c->detsize_f = take_num(a, "mm") / 1000.0; }
    else if (is(a, "-detsize_s")) { c->detsize_s = take_num(a, "mm") / 1000.0; }
    else if (is(a, "-detpixels")) { c->fpixels = c->spixels = take_count(a, 1, "pixel count", "e.g. -detpixels 1024"); }
    else if (is_any(a, detpix_f)) { c->fpixels = take_count(a, 1, "pixel count", "e.g. -detpixels_f 1024"); }
    else if (is_any(a, detpix_s)) { c->spixels = take_count(a, 1, "pixel count", "e.g. -detpixels_s 1024"); }
    else if (is(a, "-pixel") || is(a, "-pixel_size")) { c->pixel = take_positive(a, "mm", "e.g. -pixel 0.1") / 1000.0; }
    else if (is(a, "-Xbeam")) { c->Xbeam = take_num(a, "mm") / 1000.0; c->pivot = PIVOT_BEAM; }
    else if (is(a, "-Ybeam")) { c->Ybeam = take_num(a, "mm") / 1000.0; c->pivot = PIVOT_BEAM; }
    else if (is(a, "-Xclose")) { c->Xclose = take_num(a, "mm") / 1000.0; c->pivot = PIVOT_SAMPLE; }
    else if (is(a, "-Yclose")) { c->Yclose = take_num(a, "mm") / 1000.0; c->pivot = PIVOT_SAMPLE; }
    else if (is(a, "-ORGX")) { c->ORGX = take_num(a, "pixels"); c->pivot = PIVOT_SAMPLE; }
    else if (is(a, "-ORGY")) { c->ORGY = take_num(a, "pixels"); c->pivot = PIVOT_SAMPLE; }
    else if (is(a, "-mosflm")) { c->convention = MOSFLM; c->pivot = PIVOT_BEAM; }
    else if (is(a, "-denzo")) { c->convention = DENZO; c->pivot = PIVOT_BEAM; }
    else if (is(a, "-adxv")) { c->convention = ADXV; c->pivot = PIVOT_BEAM; }
    else if (is(a, "-xds")) { c->convention = XDS; c->pivot = PIVOT_SAMPLE; }
    else if (is(a, "-dials")) { c->convention = DIALS; c->pivot = PIVOT_SAMPLE; }
    else if (is(a, "-fdet_vector")) set_custom_dir(a, c, c->fdet);
    else if (is(a, "-sdet_vector")) set_custom_dir(a, c, c->sdet);
    else if (is(a, "-odet_vector")) set_custom_vec(a, c, c->odet);
    else if (is(a, "-beam_vector")) set_custom_dir(a, c, c->beam);
    else if (is(a, "-polar_vector")) set_custom_vec(a, c, c->polar_vec);
    else if (is(a, "-spindle_axis")) set_custom_dir(a, c, c->spindle);
    else if (is(a, "-pix0_vector")) { double ignored[3]; set_custom_vec(a, c, ignored); }
    else if (is(a, "-twotheta_axis")) {
        set_custom_dir(a, c, c->twotheta_axis);
        /* the original also takes 2theta from the axis' x component and pivots on the sample */
        c->twotheta = c->twotheta_axis[0] / RTD;
        c->pivot = PIVOT_SAMPLE;
    }
    else if (is(a, "-twotheta")) { c->twotheta = take_num(a, "degrees") / RTD; c->pivot = PIVOT_SAMPLE; }
    else if (is(a, "-detector_rotx")) { c->rotx = take_num(a, "degrees") / RTD; }
    else if (is(a, "-detector_roty")) { c->roty = take_num(a, "degrees") / RTD; }
    else if (is(a, "-detector_rotz")) { c->rotz = take_num(a, "degrees") / RTD; }
    else if (is(a, "-pivot")) {
        const char *p = take_str(a, "beam or sample");
        if (strcmp(p, "beam") == 0) c->pivot = PIVOT_BEAM;
        else if (strcmp(p, "sample") == 0) c->pivot = PIVOT_SAMPLE;
        else die("-pivot needs 'beam' or 'sample', got '%s' (hint: -pivot sample)", p);
    }
    else if (is(a, "-curved_det")) { c->curved = 1; }
    else if (is(a, "-point_pixel")) { c->point_pixel = 1; }
    else if (is(a, "-detector_thick")) { c->thick = take_nonnegative(a, "um", "sensor thickness, e.g. -detector_thick 450") * 1e-6; }
    else if (is(a, "-detector_abs") || is(a, "-detector_absorb") || is(a, "-detector_absorption")) parse_detector_abs(a, c);
    else if (is(a, "-thicksteps") || is(a, "-detector_thicksteps")) { c->thicksteps = (int)take_int(a, "layer count"); }
    else if (is(a, "-oversample")) {
        c->oversample = take_count(a, 0, "subpixels per axis", "0 or no flag picks it automatically, e.g. -oversample 2");
    }
    else if (is(a, "-oversample_thick")) { c->os_thick = 1; }
    else if (is(a, "-oversample_polar")) { c->os_polar = 1; }
    else if (is(a, "-oversample_omega")) { c->os_omega = 1; }
    else if (is(a, "-roi")) { parse_roi(a, c->roi, "-roi xmin xmax ymin ymax, pixel indices, inclusive"); c->roi_given = 1; }
    else return 0;
    return 1;
}

/* Beam, crystal and sampling flags; returns 0 if the flag is not one of them. */
static int parse_physics_flag(Args *a, Config *c)
{
    static const char *const lambda_f[] = {"-lambda", "-wave", NULL};
    static const char *const mosaic_f[] = {"-mosaic", "-mosaic_spread", "-mosaicity", NULL};
    static const char *const size_f[] = {"-samplesize", "-sample_size", "-xtalsize", "-xtal_size", NULL};
    static const char *const tophat_f[] = {"-tophat_xtal", "-tophat_spots", "-binary_spots", NULL};
    static const char *const size_x[] = {"-sample_thick", "-sample_x", "-xtal_thick", "-xtal_x", NULL};
    static const char *const size_y[] = {"-sample_width", "-sample_y", "-width", "-xtal_width", "-xtal_y", NULL};
    static const char *const size_z[] = {"-sample_height", "-sample_z", "-height", "-xtal_height", "-xtal_z", NULL};
    /* read and stored by the original, with no effect on the image (physics.md 8) */
    static const char *const unused_num[] = {"-density", "-sample_den", "-MW", "-molecules", "-misset_seed", NULL};
    static const char *const unused_file[] = {"-stol", "-4stol", "-Q", "-stolout", "-dump", NULL};
    if (is(a, "-cell")) parse_cell(a, c);
    else if (is(a, "-mat")) c->matfile = take_str(a, "a MOSFLM matrix file");
    else if (is(a, "-hkl")) c->hklfile = take_str(a, "a text file of h k l F lines");
    else if (is(a, "-sourcefile")) c->sourcefile = take_str(a, "a text file of X Y Z weight lambda(m) lines");
    else if (is(a, "-misset")) parse_misset(a, c);
    else if (is(a, "-default_F")) c->default_F = take_num(a, "structure factor, electrons");
    else if (is(a, "-N")) c->Na = c->Nb = c->Nc = (int)take_int(a, "unit cells per axis");
    else if (is(a, "-Na")) c->Na = (int)take_int(a, "unit cells along a");
    else if (is(a, "-Nb")) c->Nb = (int)take_int(a, "unit cells along b");
    else if (is(a, "-Nc")) c->Nc = (int)take_int(a, "unit cells along c");
    else if (is_any(a, size_f)) c->sample_x = c->sample_y = c->sample_z = take_num(a, "mm") / 1000.0;
    else if (is_any(a, size_x)) c->sample_x = take_num(a, "mm") / 1000.0;
    else if (is_any(a, size_y)) c->sample_y = take_num(a, "mm") / 1000.0;
    else if (is_any(a, size_z)) c->sample_z = take_num(a, "mm") / 1000.0;
    else if (is_any(a, unused_num)) (void)take_num(a, "parsed for compatibility; it has no effect");
    else if (is_any(a, unused_file)) (void)take_str(a, "parsed for compatibility; it has no effect");
    else if (is(a, "-square_xtal")) c->shape = SQUARE;
    else if (is(a, "-round_xtal")) c->shape = ROUND;
    else if (is(a, "-gauss_xtal")) c->shape = GAUSS;
    else if (is_any(a, tophat_f)) c->shape = TOPHAT;
    else if (is(a, "-fudge")) c->fudge = take_num(a, "shape width factor");
    else if (is_any(a, lambda_f)) c->lambda0 = take_positive(a, "Angstrom", "e.g. -lambda 1") / 1e10;
    else if (is(a, "-energy")) c->lambda0 = (12398.42 / take_positive(a, "eV", "e.g. -energy 12398.42 for 1 A")) / 1e10;
    else if (is(a, "-dispersion")) c->dispersion = take_num(a, "percent") / 100.0;
    else if (is(a, "-dispsteps")) c->dispsteps = (int)take_int(a, "wavelength count");
    else if (is(a, "-divergence")) c->hdivrange = c->vdivrange = take_num(a, "mrad") / 1000.0;
    else if (is(a, "-hdivrange")) c->hdivrange = take_num(a, "mrad") / 1000.0;
    else if (is(a, "-vdivrange")) c->vdivrange = take_num(a, "mrad") / 1000.0;
    else if (is(a, "-hdivstep")) c->hdivstep = take_num(a, "mrad") / 1000.0;
    else if (is(a, "-vdivstep")) c->vdivstep = take_num(a, "mrad") / 1000.0;
    else if (is(a, "-hdivsteps")) c->hdivsteps = (int)take_int(a, "count");
    else if (is(a, "-vdivsteps")) c->vdivsteps = (int)take_int(a, "count");
    else if (is(a, "-divsteps")) c->hdivsteps = c->vdivsteps = (int)take_int(a, "count");
    else if (is(a, "-round_div")) c->round_div = 1;
    else if (is(a, "-square_div")) c->round_div = 0;
    else if (is(a, "-polar")) {
        c->polarization = take_num(a, "Kahn factor, 0..1");
        c->nopolar = 0;   /* as in the original: -polar after -nopolar switches polarization back on */
    }
    else if (is(a, "-nopolar")) c->nopolar = 1;
    else if (is(a, "-fluence")) c->fluence = take_num(a, "photons/m^2");
    else if (is(a, "-flux")) c->flux = take_num(a, "photons/s");
    else if (is(a, "-exposure")) c->exposure = take_num(a, "seconds");
    else if (is(a, "-beamsize")) c->beamsize = take_num(a, "mm") / 1000.0;
    else if (is(a, "-water")) c->water = take_num(a, "um") / 1e6;
    else if (is(a, "-phi")) c->phi0 = take_num(a, "degrees") / RTD;
    else if (is(a, "-osc")) c->osc = take_num(a, "degrees") / RTD;
    else if (is(a, "-phistep")) c->phistep = take_num(a, "degrees") / RTD;
    else if (is(a, "-phisteps")) c->phisteps = (int)take_int(a, "count");
    else if (is_any(a, mosaic_f)) { c->mosaic_spread = take_num(a, "degrees") / RTD; c->mosaic_given = 1; }
    else if (is(a, "-mosaic_domains") || is(a, "-mosaic_dom")) c->mosaic_domains = (int)take_int(a, "count");
    else if (is(a, "-mosaic_seed")) c->mosaic_seed = -take_int(a, "integer seed");
    else if (is(a, "-seed")) c->seed = -take_int(a, "integer seed");
    else if (is(a, "-dmin")) c->dmin = take_num(a, "Angstrom") * 1e-10;
    else if (is(a, "-interpolate")) c->interpolate = 1;
    else if (is(a, "-nointerpolate")) c->interpolate = 0;
    else return 0;
    return 1;
}

static int parse_output_flag(Args *a, Config *c)
{
    if (is(a, "-floatfile") || is(a, "-floatimage")) c->floatfile = take_str(a, "output file name");
    else if (is(a, "-intfile") || is(a, "-intimage")) c->intfile = take_str(a, "output file name");
    else if (is(a, "-noisefile") || is(a, "-noiseimage")) c->noisefile = take_str(a, "output file name");
    else if (is(a, "-nonoise")) c->noisefile = NULL;
    else if (is(a, "-pgmfile") || is(a, "-pgmimage")) c->pgmfile = take_str(a, "output file name");
    else if (is(a, "-pgmscale")) c->pgmscale = take_num(a, "pgm scale factor");
    else if (is(a, "-nopgm")) c->pgmfile = NULL;
    else if (is(a, "-printout_pixel")) { (void)take_int(a, "fast pixel"); (void)take_int(a, "slow pixel"); }
    else if (is(a, "-scale")) c->intscale = take_num(a, "int image scale factor");
    else if (is(a, "-adc")) c->adc = take_num(a, "ADC offset, counts");
    else if (is(a, "-trace_pixel")) parse_trace_pixel(a, c);
    else if (is(a, "-trace_roi")) {
        parse_roi(a, c->trace_roi, "-trace_roi xmin xmax ymin ymax (fast min, fast max, slow min, slow max)");
        c->trace_roi_given = 1;
    }
    else if (is(a, "-trace_dump")) c->trace_dump = take_str(a, "an .npz file name");
    else if (is(a, "-img") || is(a, "-mask")) (void)take_str(a, "an SMV image; read before the other flags");
    else if (is(a, "-emulate_phi0_carryover")) c->emulate_phi0 = 1;
    else if (is(a, "-noprogress") || is(a, "-progress") || is(a, "-printout") || is(a, "-coherent")) {
        /* accepted for compatibility; no effect on any output here */
    }
    else if (is(a, "-dtype")) {
        const char *d = take_str(a, "float64");
        if (strcmp(d, "float64") != 0)
            die("-dtype %s is not available in the C reference (hint: it always computes in float64)", d);
    }
    else return 0;
    return 1;
}

/* ---- SMV headers of -img / -mask (physics.md 5.11), applied before the other flags ---- */

typedef struct { char *text; long header_bytes; int width, height; } SmvHeader;

/* The original's lookup: the LAST occurrence of `key` anywhere (even inside another key), then the
   value after the next '='. NAN when the key is absent. */
static double smv_value(const SmvHeader *h, const char *key)
{
    const char *p = h->text, *hit;
    int found = 0;
    while ((hit = strstr(p, key)) != NULL) { p = hit + strlen(key); found = 1; }
    if (!found) return NAN;
    p = strchr(p, '=');
    return p == NULL ? 0.0 : atof(p + 1);
}

static SmvHeader read_smv_header(const char *path, FILE *fp)
{
    SmvHeader h;
    char first[513];
    if (fread(first, 1, 512, fp) != 512) die("%s:1: shorter than an SMV header (hint: -img/-mask take an SMV image)", path);
    first[512] = '\0';
    if (strncmp(first, "{\nHEADER_BYT", 12) != 0)
        die("%s:1: not an SMV (ADSC) image: it does not start with '{ HEADER_BYTES' (hint: -img/-mask take SMV files)", path);
    h.text = first;
    h.header_bytes = (long)smv_value(&h, "HEADER_BYTES");
    if (h.header_bytes < 512 || h.header_bytes > (1L << 24))
        die("%s:2: HEADER_BYTES=%ld is not a usable header size (hint: a valid SMV header has >= 512)", path, h.header_bytes);
    h.text = (char *)xcalloc((size_t)h.header_bytes + 1, 1);
    if (fseek(fp, 0, SEEK_SET) != 0 || fread(h.text, 1, (size_t)h.header_bytes, fp) != (size_t)h.header_bytes)
        die("%s:1: cannot read its %ld-byte header (hint: the file is truncated)", path, h.header_bytes);
    h.width = (int)smv_value(&h, "SIZE1");
    h.height = (int)smv_value(&h, "SIZE2");
    if (h.width <= 0 || h.height <= 0)
        die("%s:1: SMV header gives SIZE1=%d SIZE2=%d (hint: both must be positive)", path, h.width, h.height);
    return h;
}

static void apply_smv_header(Config *c, const SmvHeader *h, int is_mask)
{
    double v, detsize_s;
    c->fpixels = h->width;
    c->spixels = h->height;
    if (!isnan(v = smv_value(h, "PIXEL_SIZE"))) c->pixel = v / 1000.0;
    detsize_s = c->pixel * c->spixels;
    if (!isnan(v = smv_value(h, "DISTANCE"))) c->distance = v / 1000.0;
    if (!isnan(v = smv_value(h, "CLOSE_DISTANCE"))) c->close_distance = v / 1000.0;
    if (!isnan(v = smv_value(h, "WAVELENGTH"))) c->lambda0 = v / 1e10;
    if (!isnan(v = smv_value(h, "BEAM_CENTER_X"))) c->Xbeam = v / 1000.0;
    /* the mask's Y is flipped, the img's is not (as in the original) */
    if (!isnan(v = smv_value(h, "BEAM_CENTER_Y"))) c->Ybeam = is_mask ? detsize_s - v / 1000.0 : v / 1000.0;
    if (!isnan(v = smv_value(h, "ORGX"))) c->ORGX = v;
    if (!isnan(v = smv_value(h, "ORGY"))) c->ORGY = v;
    if (!isnan(v = smv_value(h, "PHI"))) c->phi0 = v / RTD;
    if (!isnan(v = smv_value(h, "OSC_RANGE"))) c->osc = v / RTD;
    /* TWOTHETA is read into an unused variable by the original: ignored */
}

static void read_smv(Config *c, const char *path, int is_mask)
{
    FILE *fp = fopen(path, "rb");
    SmvHeader h;
    size_t n;
    if (fp == NULL) die("%s:0: cannot open %s file: %s (hint: check the path)", path, is_mask ? "-mask" : "-img", strerror(errno));
    h = read_smv_header(path, fp);
    apply_smv_header(c, &h, is_mask);
    if (is_mask) {
        n = (size_t)h.width * h.height;
        c->mask = (unsigned short *)xcalloc(n, sizeof(unsigned short));
        if (fread(c->mask, sizeof(unsigned short), n, fp) != n)
            die("%s:0: pixel data shorter than SIZE1 x SIZE2 = %d x %d (hint: the file is truncated)", path, h.width, h.height);
        c->mask_f = h.width;
        c->mask_s = h.height;
    }
    free(h.text);
    fclose(fp);
}

/* -mask, then -img, whatever their argv order; every other flag then overrides their headers. */
static void read_image_headers(int argc, char **argv, Config *c)
{
    int i;
    for (i = 1; i + 1 < argc; i++) {
        if (strcmp(argv[i], "-mask") == 0) c->maskfile = argv[i + 1];
        if (strcmp(argv[i], "-img") == 0) c->imgfile = argv[i + 1];
    }
    if (c->maskfile) read_smv(c, c->maskfile, 1);
    if (c->imgfile) read_smv(c, c->imgfile, 0);
}

static void usage(void)
{
    puts("usage: nbref -cell a b c al be ga | -mat FILE  -default_F F | -hkl FILE  [nanoBragg flags]\n"
         "             [-floatfile F] [-intfile F] [-noisefile F] [-pgmfile F]\n"
         "             [-trace_pixel SLOW FAST ...] [-trace_roi XMIN XMAX YMIN YMAX -trace_dump F.npz]\n"
         "             [-emulate_phi0_carryover]\n"
         "nanoBragg's flags, units and defaults (mm, Angstrom, degrees, mrad, um), matched exactly.\n"
         "Trace text goes to stdout, the run summary to stderr. See simulator/c/README.md.");
}

static void parse_args(int argc, char **argv, Config *c)
{
    Args a;
    a.argc = argc; a.argv = argv;
    for (a.i = 1; a.i < argc; a.i++) {
        if (is(&a, "-h") || is(&a, "-help") || is(&a, "--help")) {
            usage();
            exit(0);
        }
        if (parse_geometry_flag(&a, c) || parse_physics_flag(&a, c) || parse_output_flag(&a, c)) continue;
        if (argv[a.i][0] == '-')
            die("argv[%d]: unknown flag '%s' (hint: flags are exact names; see simulator/c/README.md)", a.i, argv[a.i]);
        die("argv[%d]: unexpected argument '%s' (hint: it follows no flag that takes a value)", a.i, argv[a.i]);
    }
}

/* Cross-flag checks, after the -img/-mask headers and every flag have been applied; the values a header
   can set (pixel, lambda, distance) are checked here rather than at their flag. */
static void check_config(const Config *c)
{
    const char *from_header = " (from the -img/-mask header)";
    if (!(c->lambda0 > 0) || isinf(c->lambda0))
        die("-lambda: must be > 0 Angstrom, got %g%s (hint: e.g. -lambda 1)", c->lambda0 * 1e10, from_header);
    if (!(c->pixel > 0))
        die("-pixel: must be > 0 mm, got %g%s (hint: e.g. -pixel 0.1)", c->pixel * 1000.0, from_header);
    /* -close_distance overrides -distance (physics.md 5.5), so a zero distance is harmless with it */
    if (!(c->distance > 0) && c->close_distance == UNSET)
        die("-distance: must be > 0 mm, got %g%s (hint: e.g. -distance 100, or give -close_distance)",
            c->distance * 1000.0, c->distance_given ? "" : from_header);
    if (c->flux != 0.0 && c->exposure > 0.0 && c->beamsize == 0.0)
        die("-beamsize: 0 mm with -flux divides the flux by a zero beam area (hint: give the beam size, e.g. "
            "-beamsize 0.1, or use -fluence)");
}

/* ------------------------------------------------------------ setup ----- */

typedef struct {
    /* crystal: a0, b0, c0 in m (phi-rotated per step); reciprocal a_star.. static, 1/Angstrom (2.4.6) */
    double a0[3], b0[3], c0[3], a_star[3], b_star[3], c_star[3];
    double Na, Nb, Nc, fudge;
    Shape shape;
    /* structure factors: grid of (h_range+1)(k_range+1)(l_range+1), one padding plane per axis */
    double *Fhkl;
    int h_min, h_max, k_min, k_max, l_min, l_max, h_range, k_range, l_range;
    long hkls;
    double default_F;
    char hkl_desc[4200];
    /* sources: unit vectors pointing from the sample to the source, wavelengths in m */
    int nsources;
    double *src, *src_lambda;
    /* detector */
    int fpixels, spixels;
    double pixel, detsize_f, detsize_s;
    double fdet[3], sdet[3], odet[3], pix0[3], beam[3], polar_vec[3], spindle[3], twotheta_axis[3];
    double distance, close_distance, ratio, Fbeam, Sbeam, Fclose, Sclose, Xbeam, Ybeam;
    double Fbeam0, Sbeam0, distance0;  /* as the real build prints them: before the detector rotations */
    Convention convention;
    Pivot pivot;
    int curved, point_pixel;
    int oversample, os_thick, os_polar, os_omega;
    int thicksteps;
    double thick, thickstep, mu;
    int roi[4];
    const unsigned short *mask;   /* fpixels x spixels, 0 = not computed; NULL = none */
    /* beam and scale */
    double lambda0, dmin, water, I_bg, fluence, polarization;
    int nopolar;
    /* rotation */
    int phisteps, domains, steps, emulate_phi0;
    double phi0, phistep, osc, mosaic_spread, twotheta;
    double *umats;
} Setup;

/* Auto count/range/step selection of physics.md 4.6; `thick` selects the thickness column. */
static void auto_steps(int *n, double *r, double *d, int thick)
{
    if (*n <= 0) {
        if (*r < 0 && *d <= 0) { *n = 1; *r = 0; *d = 0; }
        else if (*r < 0) { *r = *d; *n = 2; }
        else if (*d <= 0) { *n = 2; *d = thick ? *r / 2.0 : *r; }
        else *n = (int)ceil(*r / *d);
    } else {
        if (*r < 0 && *d <= 0) { *r = thick ? 0.5e-6 : 1.0; *d = *r / *n; }
        else if (*r < 0) { *r = *d; *n = 2; }
        else if (*d <= 0) { if (*n < 2) *n = 2; *d = *r / (*n - 1); }
    }
    if (*r <= 0 || *d <= 0 || *n <= 0) { *n = 1; *r = 0; *d = 0; }
}

/* physics.md 2.1: reciprocal basis from -cell (Angstrom, rad); returns V in A^3. */
static double cell_to_reciprocal(const double *cell_in, double *as, double *bs, double *cs)
{
    double a = cell_in[0], b = cell_in[1], c = cell_in[2];
    double al = cell_in[3] / RTD, be = cell_in[4] / RTD, ga = cell_in[5] / RTD;
    double s, skew, V, Vs, as_len, bs_len, cs_len, sin_gs, cos_as, cos_bs, cos_gs;
    if (b <= 0) b = a;
    if (c <= 0) c = a;
    if (al <= 0) al = M_PI / 2;
    if (be <= 0) be = M_PI / 2;
    if (ga <= 0) ga = M_PI / 2;
    s = (al + be + ga) / 2.0;
    skew = fabs(sin(s) * sin(s - al) * sin(s - be) * sin(s - ga));
    V = 2.0 * a * b * c * sqrt(skew);
    if (V <= 0) V = DBL_MIN;
    Vs = 1.0 / V;
    as_len = b * c * sin(al) * Vs;
    bs_len = c * a * sin(be) * Vs;
    cs_len = a * b * sin(ga) * Vs;
    if (as_len <= 0) as_len = fabs(as_len) > 0 ? fabs(as_len) : DBL_MIN;
    if (bs_len <= 0) bs_len = fabs(bs_len) > 0 ? fabs(bs_len) : DBL_MIN;
    if (cs_len <= 0) cs_len = fabs(cs_len) > 0 ? fabs(cs_len) : DBL_MIN;
    sin_gs = c * Vs / (as_len * bs_len);
    if (sin_gs > 1) sin_gs = 1;
    if (sin_gs < -1) sin_gs = -1;
    cos_as = (cos(be) * cos(ga) - cos(al)) / (sin(be) * sin(ga));
    cos_bs = (cos(ga) * cos(al) - cos(be)) / (sin(ga) * sin(al));
    cos_gs = (cos(al) * cos(be) - cos(ga)) / (sin(al) * sin(be));
    if (cos_as * cos_as > 1) cos_as = 1;
    if (cos_bs * cos_bs > 1) cos_bs = 1;
    if (cos_gs * cos_gs > 1) cos_gs = 1;
    as[0] = as_len; as[1] = 0; as[2] = 0;
    bs[0] = bs_len * cos_gs; bs[1] = bs_len * sin_gs; bs[2] = 0;
    cs[0] = cs_len * cos_bs;
    cs[1] = cs_len * (cos_as - cos_bs * cos_gs) / sin_gs;
    /* not the textbook 1/c: kept as the original writes it (physics.md 2.1 step 4) */
    cs[2] = cs_len * (V / (a * b * c * sin_gs));
    return V;
}

/* physics.md 2.2: nine numbers, row r = lab component r of (a*, b*, c*), times 1e-10/lambda0. */
static void read_mat(const char *path, double lambda0, double *as, double *bs, double *cs)
{
    FILE *fp = fopen(path, "r");
    char line[4096], *tok, *end;
    double v[9], scale = 1e-10 / lambda0;
    int n = 0, lineno = 0, k;
    if (fp == NULL) die("%s:0: cannot open -mat file: %s (hint: check the path)", path, strerror(errno));
    while (n < 9 && fgets(line, sizeof line, fp) != NULL) {
        lineno++;
        for (tok = strtok(line, " \t\r\n"); tok != NULL && n < 9; tok = strtok(NULL, " \t\r\n")) {
            v[n] = strtod(tok, &end);
            if (end == tok || *end != '\0')
                die("%s:%d: -mat expects numbers, got '%s' (hint: three lines of a* b* c* components)", path,
                    lineno, tok);
            n++;
        }
    }
    if (ferror(fp)) die("%s:%d: read error: %s (hint: check the file)", path, lineno, strerror(errno));
    fclose(fp);
    if (n < 9) die("%s:%d: -mat needs 9 numbers, found %d (hint: a MOSFLM A matrix has 3 lines of 3)", path, lineno, n);
    for (k = 0; k < 3; k++) {
        as[k] = v[3 * k + 0] * scale;
        bs[k] = v[3 * k + 1] * scale;
        cs[k] = v[3 * k + 2] * scale;
    }
}

static void rescale_to(double *v, double length)
{
    double m = norm3(v);
    if (m != 0.0) scale3(v, length / m, v);
}

/* physics.md 2.1-2.5: orientation, real space in m, crystal size. */
static void setup_crystal(const Config *cfg, Setup *S)
{
    double as[3], bs[3], cs[3], A[3], B[3], C[3], a[3], b[3], c[3], V_cell = 0, Vs, V;
    double cell[6];
    memcpy(cell, cfg->cell, sizeof cell);
    if (!cfg->have_cell && cfg->matfile == NULL)
        die("no crystal given (hint: add -cell a b c alpha beta gamma, or -mat FILE)");
    if (cfg->have_cell) {
        if (cell[0] <= 0) die("-cell: a must be > 0 Angstrom, got %g (hint: -cell 100 100 100 90 90 90)", cell[0]);
        if (cell[1] <= 0) cell[1] = cell[0];
        if (cell[2] <= 0) cell[2] = cell[0];
        V_cell = cell_to_reciprocal(cell, as, bs, cs);
    }
    if (cfg->matfile != NULL) read_mat(cfg->matfile, cfg->lambda0, as, bs, cs);
    if (cfg->have_misset) {
        rotate_xyz(as, as, cfg->misset[0], cfg->misset[1], cfg->misset[2]);
        rotate_xyz(bs, bs, cfg->misset[0], cfg->misset[1], cfg->misset[2]);
        rotate_xyz(cs, cs, cfg->misset[0], cfg->misset[1], cfg->misset[2]);
    }
    cross3(as, bs, A);
    cross3(bs, cs, B);
    cross3(cs, as, C);
    Vs = dot3(as, B);
    if (cfg->have_cell) {
        rescale_to(B, cell[0] / V_cell);
        rescale_to(C, cell[1] / V_cell);
        rescale_to(A, cell[2] / V_cell);
        Vs = 1.0 / V_cell;
    }
    V = 1.0 / Vs;
    scale3(B, V, a);
    scale3(C, V, b);
    scale3(A, V, c);
    cross3(b, c, S->a_star); scale3(S->a_star, Vs, S->a_star);
    cross3(c, a, S->b_star); scale3(S->b_star, Vs, S->b_star);
    cross3(a, b, S->c_star); scale3(S->c_star, Vs, S->c_star);
    scale3(a, 1e-10, S->a0);
    scale3(b, 1e-10, S->b0);
    scale3(c, 1e-10, S->c0);
}

static void setup_crystal_size(const Config *cfg, Setup *S)
{
    double sy = cfg->sample_y, sz = cfg->sample_z;
    int Na = cfg->Na, Nb = cfg->Nb, Nc = cfg->Nc;
    if (cfg->beamsize >= 0) {
        if (cfg->beamsize < sy) sy = cfg->beamsize;
        if (cfg->beamsize < sz) sz = cfg->beamsize;
    }
    if (cfg->sample_x > 0) Na = (int)ceil(cfg->sample_x / norm3(S->a0));
    if (sy > 0) Nb = (int)ceil(sy / norm3(S->b0));
    if (sz > 0) Nc = (int)ceil(sz / norm3(S->c0));
    S->Na = Na < 1 ? 1 : Na;
    S->Nb = Nb < 1 ? 1 : Nb;
    S->Nc = Nc < 1 ? 1 : Nc;
    S->shape = cfg->shape;
    S->fudge = cfg->fudge;
}

/* Whitespace-separated tokens of one line, at most `max`; returns the count (max+1 = too many). */
static int split_tokens(char *line, const char *delims, char **tok, int max)
{
    int n = 0;
    char *t;
    for (t = strtok(line, delims); t != NULL; t = strtok(NULL, delims)) {
        if (n == max) return max + 1;
        tok[n++] = t;
    }
    return n;
}

static int parse_int_token(const char *t, int *out)
{
    char *end;
    long v;
    errno = 0;
    v = strtol(t, &end, 10);
    if (end == t || *end != '\0' || errno == ERANGE || v > INT_MAX || v < INT_MIN) return 0;
    *out = (int)v;
    return 1;
}

typedef struct { int h, k, l; double F; } HklEntry;

/* Strict reader: every non-blank line is "h k l F" with integer indices; anything else is an error
   (the original silently stops or shifts columns, physics.md 3.1; see README.md). */
static HklEntry *read_hkl_entries(const char *path, long *count)
{
    FILE *fp = fopen(path, "r");
    char line[4096], *tok[5], *end;
    long n = 0, cap = 1024;
    int lineno = 0, ntok, k;
    HklEntry *e;
    if (fp == NULL) die("%s:0: cannot open -hkl file: %s (hint: check the path)", path, strerror(errno));
    e = (HklEntry *)xcalloc((size_t)cap, sizeof *e);
    while (fgets(line, sizeof line, fp) != NULL) {
        lineno++;
        if (strchr(line, '\n') == NULL && !feof(fp))
            die("%s:%d: line longer than %d characters (hint: one reflection per line)", path, lineno,
                (int)sizeof line - 2);
        ntok = split_tokens(line, " \t\r\n", tok, 4);
        if (ntok == 0) continue;
        if (ntok != 4)
            die("%s:%d: expected 4 columns 'h k l F', found %s%d (hint: remove headers and extra columns)", path,
                lineno, ntok > 4 ? "more than " : "", ntok > 4 ? 4 : ntok);
        if (n == cap) {
            HklEntry *bigger = (HklEntry *)xcalloc((size_t)cap * 2, sizeof *e);
            memcpy(bigger, e, (size_t)cap * sizeof *e);
            free(e);
            e = bigger;
            cap *= 2;
        }
        if (!parse_int_token(tok[0], &e[n].h) || !parse_int_token(tok[1], &e[n].k) || !parse_int_token(tok[2], &e[n].l)) {
            for (k = 0; k < 3 && parse_int_token(tok[k], &e[n].h); k++) {}
            die("%s:%d:%d: Miller index '%s' is not an integer (hint: write h k l as integers, e.g. 1 2 3 100.0)",
                path, lineno, (int)(tok[k] - line) + 1, tok[k]);
        }
        e[n].F = strtod(tok[3], &end);
        if (end == tok[3] || *end != '\0')
            die("%s:%d:%d: structure factor '%s' is not a number (hint: the 4th column is F)", path, lineno,
                (int)(tok[3] - line) + 1, tok[3]);
        n++;
    }
    if (ferror(fp)) die("%s:%d: read error: %s (hint: check the file)", path, lineno, strerror(errno));
    fclose(fp);
    if (n == 0) die("%s:%d: no reflections found (hint: lines of 'h k l F')", path, lineno);
    *count = n;
    return e;
}

static size_t hkl_index(const Setup *S, int h, int k, int l)
{
    return ((size_t)(h - S->h_min) * (S->k_range + 1) + (size_t)(k - S->k_min)) * (S->l_range + 1) + (size_t)(l - S->l_min);
}

static void setup_structure_factors(const Config *cfg, Setup *S)
{
    HklEntry *e;
    long n, i;
    int h, k, l;
    char resolved[4096];
    S->default_F = cfg->default_F;
    if (cfg->hklfile == NULL) {
        if (cfg->default_F == 0.0)
            die("no structure factors (hint: give -hkl FILE or -default_F F; Fdump.bin is never read)");
        S->hkls = 0;
        snprintf(S->hkl_desc, sizeof S->hkl_desc, "default_F:%.17g", cfg->default_F);
        return;
    }
    e = read_hkl_entries(cfg->hklfile, &n);
    S->h_min = S->h_max = e[0].h; S->k_min = S->k_max = e[0].k; S->l_min = S->l_max = e[0].l;
    for (i = 1; i < n; i++) {
        if (e[i].h < S->h_min) S->h_min = e[i].h;
        if (e[i].h > S->h_max) S->h_max = e[i].h;
        if (e[i].k < S->k_min) S->k_min = e[i].k;
        if (e[i].k > S->k_max) S->k_max = e[i].k;
        if (e[i].l < S->l_min) S->l_min = e[i].l;
        if (e[i].l > S->l_max) S->l_max = e[i].l;
    }
    S->h_range = S->h_max - S->h_min + 1;
    S->k_range = S->k_max - S->k_min + 1;
    S->l_range = S->l_max - S->l_min + 1;
    S->Fhkl = (double *)xcalloc((size_t)(S->h_range + 1) * (S->k_range + 1) * (S->l_range + 1), sizeof(double));
    if (cfg->default_F != 0.0)
        for (h = S->h_min; h <= S->h_max; h++)
            for (k = S->k_min; k <= S->k_max; k++)
                for (l = S->l_min; l <= S->l_max; l++) S->Fhkl[hkl_index(S, h, k, l)] = cfg->default_F;
    for (i = 0; i < n; i++) S->Fhkl[hkl_index(S, e[i].h, e[i].k, e[i].l)] = e[i].F;
    S->hkls = n;
    free(e);
    if (realpath(cfg->hklfile, resolved) == NULL) snprintf(resolved, sizeof resolved, "%s", cfg->hklfile);
    snprintf(S->hkl_desc, sizeof S->hkl_desc, "file:%s entries:%ld", resolved, n);
}

/* physics.md 4.3, with checked parsing: a non-numeric field is an error, not a zero. */
static void read_sourcefile(const Config *cfg, const double *beam, Setup *S)
{
    FILE *fp = fopen(cfg->sourcefile, "r");
    char line[4096], *tok[6], *end;
    int lineno = 0, ntok, k, cap = 64;
    double v[5];
    if (fp == NULL) die("%s:0: cannot open -sourcefile: %s (hint: check the path)", cfg->sourcefile, strerror(errno));
    S->src = (double *)xcalloc((size_t)cap * 3, sizeof(double));
    S->src_lambda = (double *)xcalloc((size_t)cap, sizeof(double));
    S->nsources = 0;
    while (fgets(line, sizeof line, fp) != NULL) {
        lineno++;
        ntok = split_tokens(line, " \t\r\n,;:!", tok, 5);
        if (ntok == 0) continue;
        if (ntok > 5)
            die("%s:%d: more than 5 columns (hint: X Y Z weight lambda_m per line)", cfg->sourcefile, lineno);
        v[0] = -SOURCE_DISTANCE * beam[0]; v[1] = -SOURCE_DISTANCE * beam[1]; v[2] = -SOURCE_DISTANCE * beam[2];
        v[3] = 1.0; v[4] = cfg->lambda0;
        for (k = 0; k < ntok; k++) {
            v[k] = strtod(tok[k], &end);
            if (end == tok[k] || *end != '\0')
                die("%s:%d:%d: '%s' is not a number (hint: no comments or headers; X Y Z weight lambda_m)",
                    cfg->sourcefile, lineno, (int)(tok[k] - line) + 1, tok[k]);
        }
        if (S->nsources == cap) {
            double *s2 = (double *)xcalloc((size_t)cap * 6, sizeof(double));
            double *l2 = (double *)xcalloc((size_t)cap * 2, sizeof(double));
            memcpy(s2, S->src, (size_t)cap * 3 * sizeof(double));
            memcpy(l2, S->src_lambda, (size_t)cap * sizeof(double));
            free(S->src); free(S->src_lambda);
            S->src = s2; S->src_lambda = l2;
            cap *= 2;
        }
        memcpy(&S->src[3 * S->nsources], v, 3 * sizeof(double));
        S->src_lambda[S->nsources] = v[4];   /* metres, used; the weight column is ignored */
        S->nsources++;
    }
    if (ferror(fp)) die("%s:%d: read error: %s (hint: check the file)", cfg->sourcefile, lineno, strerror(errno));
    fclose(fp);
    if (S->nsources == 0) die("%s:%d: no sources found (hint: X Y Z weight lambda_m per line)", cfg->sourcefile, lineno);
}

/* physics.md 4.1, 4.2: divergence grid x dispersion, order h, v, lambda. */
static void build_sources(const Config *cfg, const double *beam, const double *polar, Setup *S)
{
    double hr = cfg->hdivrange, vr = cfg->vdivrange, hd = cfg->hdivstep, vd = cfg->vdivstep;
    double dr = cfg->dispersion, dd = cfg->dispstep, vert[3], vec[3], tmp[3], hdiv, vdiv, test;
    int hn = cfg->hdivsteps, vn = cfg->vdivsteps, dn = cfg->dispsteps, i, j, k, n = 0;
    auto_steps(&hn, &hr, &hd, 0);
    auto_steps(&vn, &vr, &vd, 0);
    auto_steps(&dn, &dr, &dd, 0);
    cross3(beam, polar, vert);
    unitize3(vert, vert);
    S->src = (double *)xcalloc((size_t)hn * vn * dn * 3, sizeof(double));
    S->src_lambda = (double *)xcalloc((size_t)hn * vn * dn, sizeof(double));
    for (i = 0; i < hn; i++) {
        for (j = 0; j < vn; j++) {
            hdiv = hd * i - hr / 2.0;
            vdiv = vd * j - vr / 2.0;
            test = (hdiv * hdiv - hd * hd / 4.0 * (1 - hn % 2)) / hr / hr;
            test += (vdiv * vdiv - vd * vd / 4.0 * (1 - vn % 2)) / vr / vr;
            /* a zero range makes test NaN, which trims nothing (physics.md 4.2) */
            if (cfg->round_div && test * 4.0 > 1.1) continue;
            scale3(beam, -SOURCE_DISTANCE, vec);
            rotate_axis(vec, tmp, polar, vdiv);
            rotate_axis(tmp, vec, vert, hdiv);
            for (k = 0; k < dn; k++) {
                memcpy(&S->src[3 * n], vec, sizeof vec);
                S->src_lambda[n] = cfg->lambda0 * (1.0 + dd * k - dr / 2.0);
                n++;
            }
        }
    }
    S->nsources = n;
    if (n == 0) die("the divergence grid trimmed every source (hint: use -square_div or more steps)");
}

static void setup_sources(const Config *cfg, Setup *S)
{
    int i;
    if (cfg->sourcefile != NULL) read_sourcefile(cfg, S->beam, S);
    else build_sources(cfg, S->beam, S->polar_vec, S);
    for (i = 0; i < S->nsources; i++) unitize3(&S->src[3 * i], &S->src[3 * i]);
}

static void set3(double *v, double x, double y, double z) { v[0] = x; v[1] = y; v[2] = z; }

/* physics.md 5.2: convention vectors (CUSTOM keeps the user's / initial ones) and forced pivots. */
static void convention_vectors(Setup *S)
{
    switch (S->convention) {
    case MOSFLM:
    case DENZO:
        set3(S->beam, 1, 0, 0); set3(S->fdet, 0, 0, 1); set3(S->sdet, 0, -1, 0); set3(S->odet, 1, 0, 0);
        set3(S->twotheta_axis, 0, 0, -1); set3(S->polar_vec, 0, 0, 1); set3(S->spindle, 0, 0, 1);
        S->pivot = PIVOT_BEAM;
        break;
    case ADXV:
        set3(S->beam, 0, 0, 1); set3(S->fdet, 1, 0, 0); set3(S->sdet, 0, -1, 0); set3(S->odet, 0, 0, 1);
        set3(S->twotheta_axis, -1, 0, 0); set3(S->polar_vec, 1, 0, 0); set3(S->spindle, 1, 0, 0);
        S->pivot = PIVOT_BEAM;
        break;
    case XDS:
        set3(S->beam, 0, 0, 1); set3(S->fdet, 1, 0, 0); set3(S->sdet, 0, 1, 0); set3(S->odet, 0, 0, 1);
        set3(S->twotheta_axis, 1, 0, 0); set3(S->polar_vec, 1, 0, 0); set3(S->spindle, 1, 0, 0);
        S->pivot = PIVOT_SAMPLE;
        break;
    case DIALS:
        set3(S->beam, 0, 0, 1); set3(S->fdet, 1, 0, 0); set3(S->sdet, 0, 1, 0); set3(S->odet, 0, 0, 1);
        set3(S->twotheta_axis, 0, 1, 0); set3(S->polar_vec, 0, 1, 0); set3(S->spindle, 0, 1, 0);
        S->pivot = PIVOT_SAMPLE;
        break;
    case CUSTOM:
        break;
    }
}

/* physics.md 5.3: Fbeam/Sbeam (and CUSTOM's Fclose/Sclose) from the user's Xbeam/Ybeam. */
static void beam_centre(const Config *cfg, Setup *S)
{
    double px = S->pixel, Xb = cfg->Xbeam, Yb = cfg->Ybeam, Xc, Yc;
    S->Fclose = !isnan(cfg->ORGX) ? (cfg->ORGX - 0.5) * px : S->detsize_f / 2.0;
    S->Sclose = !isnan(cfg->ORGY) ? (cfg->ORGY - 0.5) * px : S->detsize_s / 2.0;
    Xc = !isnan(cfg->Xclose) ? cfg->Xclose : S->Fclose;
    Yc = !isnan(cfg->Yclose) ? cfg->Yclose : S->Sclose;
    switch (S->convention) {
    case MOSFLM:
    case DENZO:
        if (isnan(Xb)) Xb = (S->detsize_s + px) / 2.0;
        if (isnan(Yb)) Yb = (S->detsize_f + px) / 2.0;
        S->Fbeam = Yb + (S->convention == MOSFLM ? 0.5 * px : 0.0);
        S->Sbeam = Xb + (S->convention == MOSFLM ? 0.5 * px : 0.0);
        break;
    case ADXV:
        if (isnan(Xb)) Xb = (S->detsize_f + px) / 2.0;
        if (isnan(Yb)) Yb = (S->detsize_s - px) / 2.0;
        S->Fbeam = Xb;
        S->Sbeam = S->detsize_s - Yb;
        break;
    case XDS:
    case DIALS:
        if (isnan(Xb)) Xb = Xc;
        if (isnan(Yb)) Yb = Yc;
        S->Fbeam = Xb;
        S->Sbeam = Yb;
        break;
    case CUSTOM:
        if (isnan(Xb)) Xb = Xc;
        if (isnan(Yb)) Yb = Yc;
        S->Fbeam = Xb; S->Sbeam = Yb;
        S->Fclose = Xb; S->Sclose = Yb;
        break;
    }
    S->Xbeam = Xb;
    S->Ybeam = Yb;
}

static void normalize_vectors(Setup *S)
{
    unitize3(S->beam, S->beam);
    unitize3(S->fdet, S->fdet);
    unitize3(S->sdet, S->sdet);
    if (unitize3(S->odet, S->odet) != 1.0) {
        fprintf(stderr, "nbref: warning: odet_vector was not a unit vector; using fdet x sdet\n");
        cross3(S->fdet, S->sdet, S->odet);
        unitize3(S->odet, S->odet);
    }
    unitize3(S->polar_vec, S->polar_vec);
    unitize3(S->spindle, S->spindle);
}

/* physics.md 5.5: pivot, rotations, derived distances (2theta axis t used as given). */
static void detector_pipeline(const Config *cfg, Setup *S)
{
    double on[3], w[3];
    rotate_xyz(S->odet, on, cfg->rotx, cfg->roty, cfg->rotz);
    S->ratio = dot3(S->beam, on);
    if (S->ratio == 0) S->ratio = DBL_MIN;
    S->close_distance = cfg->close_distance;
    if (S->close_distance == UNSET) S->close_distance = fabs(S->ratio * cfg->distance);
    S->distance = S->close_distance / S->ratio;
    S->distance0 = S->distance;
    S->Fbeam0 = S->Fbeam;
    S->Sbeam0 = S->Sbeam;
    if (S->pivot == PIVOT_SAMPLE) {
        int k;
        for (k = 0; k < 3; k++)
            S->pix0[k] = -S->Fclose * S->fdet[k] - S->Sclose * S->sdet[k] + S->close_distance * S->odet[k];
        rotate_xyz(S->pix0, S->pix0, cfg->rotx, cfg->roty, cfg->rotz);
        rotate_axis(S->pix0, S->pix0, S->twotheta_axis, S->twotheta);
    }
    rotate_xyz(S->fdet, S->fdet, cfg->rotx, cfg->roty, cfg->rotz);
    rotate_xyz(S->sdet, S->sdet, cfg->rotx, cfg->roty, cfg->rotz);
    rotate_xyz(S->odet, S->odet, cfg->rotx, cfg->roty, cfg->rotz);
    rotate_axis(S->fdet, S->fdet, S->twotheta_axis, S->twotheta);
    rotate_axis(S->sdet, S->sdet, S->twotheta_axis, S->twotheta);
    rotate_axis(S->odet, S->odet, S->twotheta_axis, S->twotheta);
    if (S->pivot == PIVOT_BEAM) {
        int k;
        for (k = 0; k < 3; k++)
            S->pix0[k] = -S->Fbeam * S->fdet[k] - S->Sbeam * S->sdet[k] + S->distance * S->beam[k];
    }
    S->Fclose = -dot3(S->pix0, S->fdet);
    S->Sclose = -dot3(S->pix0, S->sdet);
    S->close_distance = dot3(S->pix0, S->odet);
    scale3(S->beam, S->close_distance / S->ratio, w);
    w[0] -= S->pix0[0]; w[1] -= S->pix0[1]; w[2] -= S->pix0[2];
    S->Fbeam = dot3(S->fdet, w);
    S->Sbeam = dot3(S->sdet, w);
    S->distance = S->close_distance / S->ratio;
}

/* physics.md 5.1; the count is checked in double so that a huge -detsize cannot overflow the int. */
static int pixel_count(double detsize, double pixel)
{
    double n = ceil(detsize / pixel - 0.5);
    if (!(n > 0))
        die("-detsize: %g mm holds no pixel of %g mm (hint: -detsize must be positive, e.g. -detsize 102.4)",
            detsize * 1000.0, pixel * 1000.0);
    if (n > INT_MAX)
        die("-detsize: %g mm holds %.3g pixels of %g mm per side, more than %d (hint: use a smaller -detsize)",
            detsize * 1000.0, n, pixel * 1000.0, INT_MAX);
    return (int)n;
}

/* -roi is inclusive (physics.md 5.11); min > max or a pixel off the detector is a typo, not a region. */
static void check_roi(const int *r, int fpixels, int spixels)
{
    if (r[0] > r[1] || r[2] > r[3])
        die("-roi: %d %d %d %d has a min greater than its max (hint: -roi xmin xmax ymin ymax, inclusive)", r[0],
            r[1], r[2], r[3]);
    if (r[0] < 0 || r[1] >= fpixels || r[2] < 0 || r[3] >= spixels)
        die("-roi: %d %d %d %d is not inside the %d x %d (fast x slow) detector (hint: 0 <= xmin <= xmax < %d and "
            "0 <= ymin <= ymax < %d)", r[0], r[1], r[2], r[3], fpixels, spixels, fpixels, spixels);
}

static void setup_detector(const Config *cfg, Setup *S)
{
    S->pixel = cfg->pixel;
    S->detsize_f = cfg->fpixels > 0 ? S->pixel * cfg->fpixels : cfg->detsize_f;
    S->detsize_s = cfg->spixels > 0 ? S->pixel * cfg->spixels : cfg->detsize_s;
    S->fpixels = pixel_count(S->detsize_f, S->pixel);
    S->spixels = pixel_count(S->detsize_s, S->pixel);
    S->convention = cfg->convention;
    S->pivot = cfg->pivot;
    memcpy(S->beam, cfg->beam, sizeof S->beam);
    memcpy(S->fdet, cfg->fdet, sizeof S->fdet);
    memcpy(S->sdet, cfg->sdet, sizeof S->sdet);
    memcpy(S->odet, cfg->odet, sizeof S->odet);
    memcpy(S->polar_vec, cfg->polar_vec, sizeof S->polar_vec);
    memcpy(S->spindle, cfg->spindle, sizeof S->spindle);
    memcpy(S->twotheta_axis, cfg->twotheta_axis, sizeof S->twotheta_axis);
    S->twotheta = cfg->twotheta;
    convention_vectors(S);
    beam_centre(cfg, S);
    normalize_vectors(S);
    detector_pipeline(cfg, S);
    S->curved = cfg->curved;
    S->point_pixel = cfg->point_pixel;
    if (cfg->mask != NULL && (cfg->mask_f != S->fpixels || cfg->mask_s != S->spixels))
        die("%s:0: the mask is %d x %d pixels but the detector is %d x %d (hint: drop the -detpixels/-detsize/-pixel "
            "flags that resize it)", cfg->maskfile, cfg->mask_f, cfg->mask_s, S->fpixels, S->spixels);
    S->mask = cfg->mask;
    if (cfg->roi_given) {
        check_roi(cfg->roi, S->fpixels, S->spixels);
        memcpy(S->roi, cfg->roi, sizeof S->roi);
    }
    else { S->roi[0] = 0; S->roi[1] = S->fpixels; S->roi[2] = 0; S->roi[3] = S->spixels; }
}

/* physics.md 2.6: phi steps from -phi/-osc/-phistep/-phisteps (left-edge samples). */
static void setup_phi(const Config *cfg, Setup *S)
{
    double osc = cfg->osc, step = cfg->phistep;
    int n = cfg->phisteps;
    if (n < 0) {
        if (osc < 0) {
            if (step <= 0) { n = 1; osc = 0; step = 0; }
            else { osc = step; n = 2; }
        } else {
            if (step <= 0) { n = 2; step = osc / 2.0; }
            else n = (int)ceil(osc / step);
        }
    } else {
        if (n == 0) n = 1;
        if (osc < 0) {
            if (step <= 0) { osc = 1.0 / RTD; step = osc / n; }
            else { osc = step; n = 2; }
        } else if (step <= 0) step = osc / n;
    }
    S->phisteps = n; S->osc = osc; S->phistep = step; S->phi0 = cfg->phi0;
}

/* physics.md 2.7: domain count auto-rule and the ran1-drawn rotations (domain 0 = identity). */
static void setup_mosaic(const Config *cfg, Setup *S)
{
    long seed = cfg->mosaic_seed;
    int d = cfg->mosaic_domains, n;
    S->mosaic_spread = cfg->mosaic_given ? cfg->mosaic_spread : 0.0;
    if (d <= 0) d = S->mosaic_spread > 0 ? 10 : 1;
    else if (S->mosaic_spread <= 0) d = 1;
    if (cfg->mosaic_domains <= 0 && S->mosaic_spread > 0)
        fprintf(stderr, "nbref: warning: -mosaic without -mosaic_domains: using 10 domains\n");
    S->domains = d;
    S->umats = (double *)xcalloc((size_t)d * 9, sizeof(double));
    for (n = 0; n < d; n++) mosaic_umat((float)S->mosaic_spread, &S->umats[9 * n], &seed);
    memset(S->umats, 0, 9 * sizeof(double));
    S->umats[0] = S->umats[4] = S->umats[8] = 1.0;   /* its three draws are still spent */
}

/* physics.md 5.9: recommended subpixels from the crystal extent; a smaller -oversample only warns. */
static void setup_oversample(const Config *cfg, Setup *S)
{
    double smax = norm3(S->a0) * S->Na;
    int recommended;
    if (norm3(S->b0) * S->Nb > smax) smax = norm3(S->b0) * S->Nb;
    if (norm3(S->c0) * S->Nc > smax) smax = norm3(S->c0) * S->Nc;
    {
        /* the original converts with (int): a value past INT_MAX, inf (distance 0) or nan becomes INT_MIN
           on x86, which its "<= 0" test then turns into 1; done explicitly here (the cast is undefined) */
        double want = ceil(3.0 * smax / (cfg->lambda0 * S->distance / S->pixel));
        recommended = (want >= 1.0 && want <= (double)INT_MAX) ? (int)want : 1;
    }
    if (cfg->oversample <= 0) S->oversample = recommended;
    else {
        S->oversample = cfg->oversample;
        if (S->oversample < recommended)
            fprintf(stderr, "nbref: warning: -oversample %d is below the recommended %d\n", S->oversample, recommended);
    }
    S->os_thick = cfg->os_thick; S->os_polar = cfg->os_polar; S->os_omega = cfg->os_omega;
}

/* physics.md 5.10: layers (T alone gives 2 of T/2) and mu (default 1/T). */
static void setup_thickness(const Config *cfg, Setup *S)
{
    double r = cfg->thick;
    S->thick = cfg->thick;
    S->thicksteps = cfg->thicksteps;
    S->thickstep = UNSET;
    auto_steps(&S->thicksteps, &r, &S->thickstep, 1);
    S->mu = cfg->mu;
    if (S->thick > 0 && S->mu < 0) S->mu = 1.0 / S->thick;
    if (S->mu < 0) S->mu = 0;
}

/* physics.md 4.5, 6: fluence (flux wins), water background, normalisation count. */
static void setup_scale(const Config *cfg, Setup *S)
{
    S->lambda0 = cfg->lambda0;
    S->dmin = cfg->dmin;
    S->water = cfg->water;
    S->polarization = cfg->polarization;
    S->nopolar = cfg->nopolar;
    S->fluence = cfg->fluence;
    if (cfg->flux != 0.0 && cfg->exposure > 0.0 && cfg->beamsize >= 0)
        S->fluence = cfg->flux * cfg->exposure / cfg->beamsize / cfg->beamsize;
    /* units inconsistent in the original (water in m, 1e6 factor); kept as is */
    S->I_bg = WATER_F * WATER_F * R_E_SQR * S->fluence * S->water * S->water * S->water * 1e6 * AVOGADRO / WATER_MW;
    S->steps = S->nsources * S->domains * S->phisteps * S->oversample * S->oversample;
    S->emulate_phi0 = cfg->emulate_phi0;
}

static void setup_sampling(const Config *cfg, Setup *S)
{
    setup_phi(cfg, S);
    setup_mosaic(cfg, S);
    setup_oversample(cfg, S);
    setup_thickness(cfg, S);
    setup_scale(cfg, S);
}

/* ------------------------------------------------------------ kernel ---- */

/* Tricubic interpolation is switched off for good at the first out-of-range lookup (physics.md 3.3), in
   the original's serial pixel order. The original shares that switch between OpenMP threads, so its image
   depends on thread timing. Here it is decided per pixel, the same way on every thread count:
   - a frame is probed first (every rendered pixel with interpolation on, in parallel); the first pixel in
     memory order with an out-of-range lookup is the cutoff: pixels before it interpolate, pixels after it
     do not, and the cutoff pixel interpolates until its own first out-of-range lookup;
   - trace-only runs compute their few pixels serially, in the order given, switching off at the first one. */
static int g_interp_requested = 0;
static long g_interp_cutoff = LONG_MAX;   /* memory-order index of the frame's first tripping pixel */
static int g_interp_sequential = 0;       /* trace-only: a tripping pixel switches the later ones off */
static int g_interp_sequential_off = 0;
static int g_interp_warned = 0;

static double sincg(double x, double N) { return x == 0.0 ? N : sin(x * N) / sin(x); }

static double sinc3(double x) { return x == 0.0 ? 1.0 : 3.0 * (sin(x) / x - cos(x)) / (x * x); }

/* 4-point Lagrange value at x; nodes xa, values ya (physics.md 3.3 term order). */
static double polint4(const double *xa, const double *ya, double x)
{
    double x0 = (x - xa[1]) * (x - xa[2]) * (x - xa[3]) * ya[0] / ((xa[0] - xa[1]) * (xa[0] - xa[2]) * (xa[0] - xa[3]));
    double x1 = (x - xa[0]) * (x - xa[2]) * (x - xa[3]) * ya[1] / ((xa[1] - xa[0]) * (xa[1] - xa[2]) * (xa[1] - xa[3]));
    double x2 = (x - xa[0]) * (x - xa[1]) * (x - xa[3]) * ya[2] / ((xa[2] - xa[0]) * (xa[2] - xa[1]) * (xa[2] - xa[3]));
    double x3 = (x - xa[0]) * (x - xa[1]) * (x - xa[2]) * ya[3] / ((xa[3] - xa[0]) * (xa[3] - xa[1]) * (xa[3] - xa[2]));
    return x0 + x1 + x2 + x3;
}

/* Tricubic: along l for each (h,k) node pair, then k, then h. */
static double tricubic(const Setup *S, double h, double k, double l)
{
    int hf = (int)floor(h), kf = (int)floor(k), lf = (int)floor(l), i, j, m;
    double hn[4], kn[4], ln[4], along_l[4], along_k[4], vals[4];
    for (i = 0; i < 4; i++) {
        hn[i] = hf - 1 + i; kn[i] = kf - 1 + i; ln[i] = lf - 1 + i;
    }
    for (i = 0; i < 4; i++) {
        for (j = 0; j < 4; j++) {
            for (m = 0; m < 4; m++) vals[m] = S->Fhkl[hkl_index(S, hf - 1 + i, kf - 1 + j, lf - 1 + m)];
            along_l[j] = polint4(ln, vals, l);
        }
        along_k[i] = polint4(kn, along_l, k);
    }
    return polint4(hn, along_k, h);
}

/* *interp: this pixel's switch; an out-of-range lookup turns it off (and sets *tripped). */
static double structure_factor(const Setup *S, double h, double k, double l, int h0, int k0, int l0, int *interp,
                               int *tripped)
{
    if (*interp) {
        if (h - S->h_min + 3 > S->h_range || h - 2 < S->h_min || k - S->k_min + 3 > S->k_range ||
            k - 2 < S->k_min || l - S->l_min + 3 > S->l_range || l - 2 < S->l_min) {
            *interp = 0;
            *tripped = 1;
        } else {
            return tricubic(S, h, k, l);
        }
    }
    if (S->hkls && h0 <= S->h_max && h0 >= S->h_min && k0 <= S->k_max && k0 >= S->k_min && l0 <= S->l_max &&
        l0 >= S->l_min)
        return S->Fhkl[hkl_index(S, h0, k0, l0)];
    return S->default_F;
}

/* Kahn factor (physics.md 4.4). Vectors are unit vectors already; K = 0 is the unpolarized form. */
static double polarization_factor(double K, const double *incident, const double *diffracted, const double *axis)
{
    double c = dot3(incident, diffracted), c2 = c * c, s2 = 1 - c2, psi = 0, B[3], E[3];
    if (K != 0.0) {
        cross3(axis, incident, B);
        unitize3(B, B);
        cross3(incident, B, E);
        unitize3(E, E);
        psi = -atan2(dot3(diffracted, B), dot3(diffracted, E));
    }
    return 0.5 * (1.0 + c2 - K * cos(2 * psi) * s2);
}

/* Lattice factor for fractional h,k,l (physics.md 2.8); per-axis factors for the trace. */
static double lattice_factor(const Setup *S, const double *hkl, const int *hkl0, double *fa, double *fb, double *fc)
{
    double Na = S->Na, Nb = S->Nb, Nc = S->Nc, F = 1.0, d[3], r2;
    int k;
    *fa = *fb = *fc = 1.0;
    if (S->shape == SQUARE) {
        if (Na > 1) { *fa = sincg(M_PI * hkl[0], Na); F *= *fa; }
        if (Nb > 1) { *fb = sincg(M_PI * hkl[1], Nb); F *= *fb; }
        if (Nc > 1) { *fc = sincg(M_PI * hkl[2], Nc); F *= *fc; }
        return F;
    }
    if (S->shape == ROUND) {
        double dh = hkl[0] - hkl0[0], dk = hkl[1] - hkl0[1], dl = hkl[2] - hkl0[2];
        r2 = dh * dh * Na * Na + dk * dk * Nb * Nb + dl * dl * Nc * Nc;
        return Na * Nb * Nc * 0.723601254558268 * sinc3(M_PI * sqrt(r2 * S->fudge));
    }
    for (k = 0; k < 3; k++)
        d[k] = (hkl[0] - hkl0[0]) * S->a_star[k] + (hkl[1] - hkl0[1]) * S->b_star[k] + (hkl[2] - hkl0[2]) * S->c_star[k];
    r2 = (d[0] * d[0] + d[1] * d[1] + d[2] * d[2]) * Na * Na * Nb * Nb * Nc * Nc;
    if (S->shape == GAUSS) return Na * Nb * Nc * exp(-(r2 / 0.63 * S->fudge));
    return Na * Nb * Nc * (r2 * S->fudge < 0.3969);
}

/* Orientation carried between passes, for -emulate_phi0_carryover only. */
typedef struct { double ap[3], bp[3], cp[3]; int valid; } Carry;

/* Pixel-level values the scaling block reports. */
typedef struct { double I, polar, omega, cap, cos2theta; int interp, tripped; } PixelSums;

static void subpixel_position(const Setup *S, int s, int f, int ss, int sf, int t, double *pos)
{
    double delta = S->pixel / S->oversample;
    double Fd = delta * (f * S->oversample + sf) + delta / 2.0;
    double Sd = delta * (s * S->oversample + ss) + delta / 2.0;
    double Od = t * S->thickstep;
    int k;
    for (k = 0; k < 3; k++) pos[k] = Fd * S->fdet[k] + Sd * S->sdet[k] + Od * S->odet[k] + S->pix0[k];
    if (S->curved) {
        double v[3], tmp[3];
        scale3(S->beam, S->distance, v);
        rotate_axis(v, tmp, S->sdet, pos[1] / S->distance);
        rotate_axis(tmp, pos, S->fdet, pos[2] / S->distance);
    }
}

static void orient_for_phi(const Setup *S, int m, Carry *carry, double *ap, double *bp, double *cp)
{
    double phi = S->phi0 + S->phistep * m;
    if (phi != 0.0) {
        rotate_axis(S->a0, ap, S->spindle, phi);
        rotate_axis(S->b0, bp, S->spindle, phi);
        rotate_axis(S->c0, cp, S->spindle, phi);
    } else if (S->emulate_phi0 && carry->valid) {
        memcpy(ap, carry->ap, 3 * sizeof(double));
        memcpy(bp, carry->bp, 3 * sizeof(double));
        memcpy(cp, carry->cp, 3 * sizeof(double));
    } else {
        memcpy(ap, S->a0, 3 * sizeof(double));
        memcpy(bp, S->b0, 3 * sizeof(double));
        memcpy(cp, S->c0, 3 * sizeof(double));
    }
    if (S->emulate_phi0) {
        memcpy(carry->ap, ap, 3 * sizeof(double));
        memcpy(carry->bp, bp, 3 * sizeof(double));
        memcpy(carry->cp, cp, 3 * sizeof(double));
        carry->valid = 1;
    }
}

/* What one subpixel pass hands to the trace: its geometry, for the block printed at source 0. */
typedef struct { const double *pos, *diffracted; double R; int first_block; } Subpixel;

/* The per-subpixel block of source 0 up to the -dmin test (the real build's gate: source == 0). */
static void emit_geometry(const Setup *S, const Subpixel *sp, const PixelSums *px, const double *incident,
                          double lambda, const double *q)
{
    NBT_VEC3("pix0_vector_meters", S->pix0);
    NBT_VEC3("fdet_vec", S->fdet);
    NBT_VEC3("sdet_vec", S->sdet);
    NBT_VEC3("pixel_pos_meters", sp->pos);
    NBT_SCALAR("R_distance_meters", sp->R);
    NBT_SCALAR("omega_pixel_sr", px->omega);   /* as cached for the pixel: the value the image uses */
    NBT_SCALAR("close_distance_meters", S->close_distance);
    NBT_SCALAR("obliquity_factor", S->close_distance / sp->R);
    NBT_VEC3("diffracted_vec", sp->diffracted);
    NBT_VEC3("incident_vec", incident);
    NBT_SCALAR("lambda_meters", lambda);
    NBT_SCALAR("lambda_angstroms", lambda * 1e10);
    NBT_VEC3("scattering_vec_A_inv", q);
    (void)S; (void)sp; (void)px; (void)incident; (void)lambda; (void)q;
}

/* The first pass (source 0, phi step 0, mosaic domain 0): orientation, h, k, l and, for the
   SQUARE shape (the only one the real build taps), the lattice factors. */
static void emit_first_pass(const Setup *S, const double *a, const double *b, const double *c, const double *hkl,
                            const int *hkl0, double fa, double fb, double fc, double F_latt)
{
    double v[3];
    scale3(a, 1e10, v); NBT_VEC3("rot_a_angstroms", v);
    scale3(b, 1e10, v); NBT_VEC3("rot_b_angstroms", v);
    scale3(c, 1e10, v); NBT_VEC3("rot_c_angstroms", v);
    NBT_VEC3("rot_a_star_A_inv", S->a_star);
    NBT_VEC3("rot_b_star_A_inv", S->b_star);
    NBT_VEC3("rot_c_star_A_inv", S->c_star);
    NBT_VEC3("hkl_frac", hkl);
    NBT_IVEC3("hkl_rounded", hkl0);
    if (S->shape == SQUARE) {
        NBT_SCALAR("F_latt_a", fa);
        NBT_SCALAR("F_latt_b", fb);
        NBT_SCALAR("F_latt_c", fc);
        NBT_SCALAR("F_latt", F_latt);
    }
    (void)S; (void)a; (void)b; (void)c; (void)hkl; (void)hkl0; (void)fa; (void)fb; (void)fc; (void)F_latt; (void)v;
}

/* TRACE_C_PHI, as the real build prints it: source 0, mosaic domain 0, every phi step, every subpixel. */
static void phi_line(int m, double phi, double k, double fb, double F_latt)
{
    NBT_LOOP_BEGIN("PHI");
    NBT_LOOP_INT("phi_tic", m);
    NBT_LOOP_NUM("phi_deg", phi * RTD);
    NBT_LOOP_NUM("k_frac", k);
    NBT_LOOP_NUM("F_latt_b", fb);
    NBT_LOOP_NUM("F_latt", F_latt);
    NBT_LOOP_END();
    (void)m; (void)phi; (void)k; (void)fb; (void)F_latt;
}

/* The real build's lines for source index 2 (phi step 0, domain 0) once its term was looked up, in the
   indexed loop form (PREFIX_SOURCE 2: name value) nbtrace reads as loop index source = 2. */
static void source2_lines(const PixelSums *px, const double *incident, const double *diffracted, double lambda,
                          double F_cell, double F_latt)
{
    if (!NBT_PRINTING) return;
    printf("TRACE_C_SOURCE 2: F_cell %.17g\n", F_cell);
    printf("TRACE_C_SOURCE 2: F_latt %.17g\n", F_latt);
    printf("TRACE_C_SOURCE 2: F_cell_squared %.17g\n", F_cell * F_cell);
    printf("TRACE_C_SOURCE 2: F_latt_squared %.17g\n", F_latt * F_latt);
    printf("TRACE_C_SOURCE 2: I_contribution %.17g\n", F_cell * F_cell * F_latt * F_latt);
    printf("TRACE_C_SOURCE 2: polar %.17g\n", px->polar);
    printf("TRACE_C_SOURCE 2: cos2theta %.17g\n", dot3(incident, diffracted));
    printf("TRACE_C_SOURCE 2: lambda_angstroms %.17g\n", lambda * 1e10);
    printf("TRACE_C_SOURCE 2: source_index 2\n");
}

/* Loop families of the first block (CONTRACTS 2.3), indexed so that none stands in for a tap the real
   build prints: per mosaic domain (source 0, phi step 0), per source (phi step 0, domain 0). */
static void first_block_loops(const Setup *S, int j, int m, int n, const double *incident, double lambda,
                              const double *hkl, double F_latt)
{
    if (m != 0) return;
    if (j == 0 && S->domains > 1) {
        NBT_LOOP_BEGIN("MOS");
        NBT_LOOP_INT("mos_tic", n);
        NBT_LOOP_INT("phi_tic", 0);
        NBT_LOOP_NUM("h_frac", hkl[0]);
        NBT_LOOP_NUM("k_frac", hkl[1]);
        NBT_LOOP_NUM("l_frac", hkl[2]);
        NBT_LOOP_NUM("F_latt", F_latt);
        NBT_LOOP_END();
    }
    if (n == 0 && S->nsources > 1) {
        NBT_LOOP_BEGIN("SOURCE");
        NBT_LOOP_INT("source", j);
        NBT_LOOP_INT("phi_tic", 0);
        NBT_LOOP_INT("mos_tic", 0);
        NBT_LOOP_NUM("lambda_meters", lambda);
        NBT_LOOP_NUM("incident_x", incident[0]);
        NBT_LOOP_NUM("incident_y", incident[1]);
        NBT_LOOP_NUM("incident_z", incident[2]);
        NBT_LOOP_NUM("h_frac", hkl[0]);
        NBT_LOOP_NUM("k_frac", hkl[1]);
        NBT_LOOP_NUM("l_frac", hkl[2]);
        NBT_LOOP_NUM("F_latt", F_latt);
        NBT_LOOP_END();
    }
    (void)incident; (void)lambda; (void)hkl; (void)F_latt;
}

/* Sum over sources, phi steps and mosaic domains for one subpixel; returns the new running I. The taps
   are printed where the real instrumented build prints them (trace-format.md, Quirks 2). */
static double sum_orientations(const Setup *S, const Subpixel *sp, double I, PixelSums *px, Carry *carry,
                               int tracing)
{
    double incident[3], q[3], ap[3], bp[3], cp[3], a[3], b[3], c[3], hkl[3], fa, fb, fc, F_latt, F_cell, lambda, stol;
    int hkl0[3], j, m, n, k, loops = tracing && sp->first_block && NBT_PRINTING;
    const double *diffracted = sp->diffracted;
    for (j = 0; j < S->nsources; j++) {
        for (k = 0; k < 3; k++) incident[k] = -S->src[3 * j + k];
        lambda = S->src_lambda[j];
        for (k = 0; k < 3; k++) q[k] = (diffracted[k] - incident[k]) / lambda;
        stol = 0.5 * norm3(q);
        if (tracing) {
            px->cos2theta = dot3(incident, diffracted);
            if (j == 0) emit_geometry(S, sp, px, incident, lambda, q);
        }
        if (S->dmin > 0.0 && stol > 0.0 && S->dmin > 0.5 / stol) continue;
        if (px->polar == 0.0 || S->os_polar) px->polar = polarization_factor(S->polarization, incident, diffracted, S->polar_vec);
        for (m = 0; m < S->phisteps; m++) {
            orient_for_phi(S, m, carry, ap, bp, cp);
            for (n = 0; n < S->domains; n++) {
                int first = tracing && j == 0 && m == 0 && n == 0;
                if (S->mosaic_spread > 0.0) {
                    rotate_umat(ap, a, &S->umats[9 * n]);
                    rotate_umat(bp, b, &S->umats[9 * n]);
                    rotate_umat(cp, c, &S->umats[9 * n]);
                } else {
                    memcpy(a, ap, sizeof a); memcpy(b, bp, sizeof b); memcpy(c, cp, sizeof c);
                }
                hkl[0] = dot3(a, q); hkl[1] = dot3(b, q); hkl[2] = dot3(c, q);
                for (k = 0; k < 3; k++) hkl0[k] = (int)ceil(hkl[k] - 0.5);
                F_latt = lattice_factor(S, hkl, hkl0, &fa, &fb, &fc);
                if (first) emit_first_pass(S, a, b, c, hkl, hkl0, fa, fb, fc, F_latt);
                if (tracing && NBT_PRINTING && j == 0 && n == 0 && S->shape == SQUARE)
                    phi_line(m, S->phi0 + S->phistep * m, hkl[1], fb, F_latt);
                if (loops) first_block_loops(S, j, m, n, incident, lambda, hkl, F_latt);
                if (F_latt == 0.0 && S->water == 0.0) continue;
                F_cell = structure_factor(S, hkl[0], hkl[1], hkl[2], hkl0[0], hkl0[1], hkl0[2], &px->interp,
                                          &px->tripped);
                if (first) NBT_SCALAR("F_cell", F_cell);
                if (tracing && j == 2 && m == 0 && n == 0) source2_lines(px, incident, diffracted, lambda, F_cell, F_latt);
                I += F_cell * F_cell * F_latt * F_latt;
                if (S->os_thick) I *= px->cap;
                if (S->os_polar) I *= px->polar;
                if (S->os_omega) I *= px->omega;
            }
        }
    }
    return I;
}

static void emit_scaling_block(const Setup *S, const PixelSums *px, double value)
{
    NBT_SCALAR("I_before_scaling", px->I);
    NBT_SCALAR("r_e_meters", sqrt(R_E_SQR));
    NBT_SCALAR("r_e_sqr", R_E_SQR);
    NBT_SCALAR("fluence_photons_per_m2", S->fluence);
    NBT_INT("steps", S->steps);
    NBT_INT("oversample_thick", S->os_thick);
    NBT_INT("oversample_polar", S->os_polar);
    NBT_INT("oversample_omega", S->os_omega);
    NBT_SCALAR("capture_fraction", px->cap);
    NBT_SCALAR("polar", px->polar);
    NBT_SCALAR("omega_pixel", px->omega);
    NBT_SCALAR("cos_2theta", px->cos2theta);
    NBT_SCALAR("I_pixel_final", value);
    NBT_SCALAR("floatimage_accumulated", (double)(float)value);
    (void)S; (void)px; (void)value;
}

static void interp_warning(void)
{
    if (g_interp_warned) return;
    g_interp_warned = 1;
    fprintf(stderr, "nbref: warning: a structure factor lookup is out of range for tricubic interpolation; "
                    "interpolation is off from there on (as in nanoBragg, in its pixel order)\n");
}

/* One pixel (physics.md 6) with interpolation starting as `interp`; *tripped says whether a lookup left the
   table. Returns the photon count in double; taps go through nbtrace_tap.h. */
static double render_pixel_ex(const Setup *S, int s, int f, Carry *carry, int interp, int *tripped)
{
    PixelSums px;
    Subpixel sp;
    double pos[3], diffracted[3], R, omega_sub, value, rho;
    int t, ss, sf, tracing = NBT_ACTIVE;
    px.interp = interp;
    px.tripped = 0;
    px.I = S->I_bg;
    px.polar = S->nopolar ? 1.0 : 0.0;
    px.omega = 0.0;
    px.cos2theta = 0.0;
    px.cap = 0.0;
    sp.pos = pos;
    sp.diffracted = diffracted;
    for (t = 0; t < S->thicksteps; t++) {
        px.cap = S->thick == 0.0 ? 1.0 : 0.0;
        for (ss = 0; ss < S->oversample; ss++) {
            for (sf = 0; sf < S->oversample; sf++) {
                subpixel_position(S, s, f, ss, sf, t, pos);
                R = unitize3(pos, diffracted);
                omega_sub = S->point_pixel ? 1.0 / R / R : S->pixel * S->pixel / R / R * S->close_distance / R;
                if (px.omega == 0.0 || S->os_omega) px.omega = omega_sub;
                if (px.cap == 0.0 || S->os_thick) {
                    rho = dot3(diffracted, S->odet);
                    px.cap = exp(-t * S->thickstep * S->mu / rho) - exp(-(t + 1) * S->thickstep * S->mu / rho);
                }
                sp.R = R;
                sp.first_block = t == 0 && ss == 0 && sf == 0;
                px.I = sum_orientations(S, &sp, px.I, &px, carry, tracing);
            }
        }
        if (tracing && NBT_PRINTING && S->thicksteps > 1) {
            NBT_LOOP_BEGIN("LAYER");
            NBT_LOOP_INT("layer", t);
            NBT_LOOP_NUM("capture_fraction", px.cap);
            NBT_LOOP_END();
        }
    }
    value = R_E_SQR * S->fluence * px.I / S->steps;
    if (!S->os_thick) value *= px.cap;
    if (!S->os_polar) value *= px.polar;
    if (!S->os_omega) value *= px.omega;
    if (tracing) emit_scaling_block(S, &px, value);
    *tripped = px.tripped;
    return value;
}

/* One pixel, interpolating as the run's rule says (see g_interp_requested). */
static double render_pixel(const Setup *S, int s, int f, Carry *carry)
{
    long idx = (long)s * S->fpixels + f;
    int tripped = 0, interp = g_interp_requested && !g_interp_sequential_off && idx <= g_interp_cutoff;
    double v = render_pixel_ex(S, s, f, carry, interp, &tripped);
    if (tripped && g_interp_sequential) {
        g_interp_sequential_off = 1;
        interp_warning();
    }
    return v;
}

/* ------------------------------------------------------------ driver ---- */

static int in_roi(const Setup *S, int s, int f)
{
    return f >= S->roi[0] && f <= S->roi[1] && s >= S->roi[2] && s <= S->roi[3];
}

/* Pixels the frame renders: inside the ROI and not zero in the mask. */
static int rendered(const Setup *S, int s, int f)
{
    return in_roi(S, s, f) && (S->mask == NULL || S->mask[(size_t)s * S->fpixels + f] != 0);
}

static void check_trace_requests(const Config *cfg, const Setup *S)
{
    int i;
    for (i = 0; i < cfg->ntrace; i++)
        if (cfg->trace_s[i] < 0 || cfg->trace_s[i] >= S->spixels || cfg->trace_f[i] < 0 || cfg->trace_f[i] >= S->fpixels)
            die("-trace_pixel %d %d is outside the %d x %d (slow x fast) detector (hint: slow first, then fast; "
                "0-based)", cfg->trace_s[i], cfg->trace_f[i], S->spixels, S->fpixels);
    if (cfg->trace_roi_given) {
        const int *r = cfg->trace_roi;
        if (r[0] < 0 || r[1] >= S->fpixels || r[0] > r[1] || r[2] < 0 || r[3] >= S->spixels || r[2] > r[3])
            die("-trace_roi %d %d %d %d is not inside the detector (hint: xmin xmax ymin ymax with 0 <= xmin <= xmax < "
                "%d and 0 <= ymin <= ymax < %d)", r[0], r[1], r[2], r[3], S->fpixels, S->spixels);
    }
}

static void join_argv(int argc, char **argv, char *buf, size_t cap, int json)
{
    size_t n = 0;
    int i;
    const char *p;
    buf[0] = '\0';
    for (i = 1; i < argc && n + 8 < cap; i++) {
        if (json) n += (size_t)snprintf(buf + n, cap - n, "%s\"", i > 1 ? ", " : "");
        else if (i > 1) buf[n++] = ' ';
        for (p = argv[i]; *p && n + 8 < cap; p++) {
            if (json && (*p == '"' || *p == '\\')) buf[n++] = '\\';
            if (json && (unsigned char)*p < 0x20) { n += (size_t)snprintf(buf + n, cap - n, "\\u%04x", *p); continue; }
            buf[n++] = *p;
        }
        if (json) buf[n++] = '"';
        buf[n] = '\0';
    }
}

/* What the run read from disk, by absolute path, for the trace's provenance. */
static void print_input_files(const Config *cfg)
{
    const char *keys[] = {"mat_file", "sourcefile", "img_file", "mask_file"};
    const char *paths[4];
    char resolved[4096];
    int i;
    paths[0] = cfg->matfile; paths[1] = cfg->sourcefile; paths[2] = cfg->imgfile; paths[3] = cfg->maskfile;
    for (i = 0; i < 4; i++) {
        if (paths[i] == NULL) continue;
        if (realpath(paths[i], resolved) == NULL) snprintf(resolved, sizeof resolved, "%s", paths[i]);
        NBT_SETUP_STR(keys[i], resolved);
    }
    (void)keys; (void)resolved;
}

static void print_setup_block(int argc, char **argv, const Setup *S)
{
    static char joined[65536];
    NBT_SETUP_STR("producer", "nbtrace-c-reference " NBREF_VERSION);
    NBT_SETUP_STR("dtype", "float64");
    join_argv(argc, argv, joined, sizeof joined, 0);
    NBT_SETUP_STR("argv", joined);
    NBT_SETUP_STR("structure_factors", S->hkl_desc);
    NBT_SETUP_STR("detector_convention", CONVENTION_NAMES[S->convention]);
    NBT_SETUP_STR("pivot", S->pivot == PIVOT_BEAM ? "BEAM" : "SAMPLE");
    {
        char px[64];
        snprintf(px, sizeof px, "%d %d", S->fpixels, S->spixels);
        NBT_SETUP_STR("detector_pixels", px);
    }
    NBT_SETUP_NUM("pixel_size_m", S->pixel);
    NBT_SETUP_NUM("distance_m", S->distance0);
    NBT_SETUP_NUM("Fbeam_m", S->pivot == PIVOT_BEAM ? S->Fbeam0 : S->Fbeam);
    NBT_SETUP_NUM("Sbeam_m", S->pivot == PIVOT_BEAM ? S->Sbeam0 : S->Sbeam);
    NBT_SETUP_VEC3("pix0_vector", S->pix0);
    NBT_SETUP_INT("oversample", S->oversample);
    NBT_SETUP_INT("steps", S->steps);
    NBT_SETUP_INT("phisteps", S->phisteps);
    NBT_SETUP_INT("mosaic_domains", S->domains);
    NBT_SETUP_INT("sources", S->nsources);
    NBT_SETUP_INT("thicksteps", S->thicksteps);
    /* beyond CONTRACTS 2.1 only when it matters, so a diff against a port flags it */
    if (S->emulate_phi0) NBT_SETUP_INT("emulate_phi0_carryover", 1);
    (void)argc; (void)argv; (void)joined;
}

static void print_summary(const Setup *S)
{
    fprintf(stderr, "nbref %s: %s convention, %s pivot, %d x %d pixels of %g mm, distance %g mm\n", NBREF_VERSION,
            CONVENTION_NAMES[S->convention], S->pivot == PIVOT_BEAM ? "BEAM" : "SAMPLE", S->fpixels, S->spixels,
            S->pixel * 1000, S->distance * 1000);
    fprintf(stderr, "  crystal %gx%gx%g cells; %d source(s), %d phi step(s), %d mosaic domain(s), %dx%d subpixels, "
                    "%d layer(s): steps=%d\n", S->Na, S->Nb, S->Nc, S->nsources, S->phisteps, S->domains,
            S->oversample, S->oversample, S->thicksteps, S->steps);
    fprintf(stderr, "  structure factors: %s; interpolation %s\n", S->hkl_desc, g_interp_requested ? "on" : "off");
}

/* The orientation the last phi step leaves behind, which the original's phi = 0 passes reuse. */
static void carry_after_full_pass(const Setup *S, Carry *carry)
{
    double ap[3], bp[3], cp[3];
    Carry scratch;
    memset(&scratch, 0, sizeof scratch);
    orient_for_phi(S, S->phisteps - 1, &scratch, ap, bp, cp);
    memcpy(carry->ap, ap, sizeof ap); memcpy(carry->bp, bp, sizeof bp); memcpy(carry->cp, cp, sizeof cp);
    carry->valid = 1;
}

static void trace_one(const Setup *S, int s, int f, Carry *carry, float *img)
{
    double v;
    NBT_PIXEL_BEGIN(s, f);
    v = render_pixel(S, s, f, carry);
    NBT_PIXEL_END();
    if (img != NULL && rendered(S, s, f)) img[(size_t)s * S->fpixels + f] = (float)v;
}

/* Is (s, f) the first pixel a full frame renders, in memory order? */
static int first_roi_pixel(const Setup *S, int s, int f)
{
    int ss, ff;
    for (ss = 0; ss < S->spixels; ss++)
        for (ff = 0; ff < S->fpixels; ff++)
            if (rendered(S, ss, ff)) return ss == s && ff == f;
    return 0;
}

/* Traced pixels, serially, in request order then region scan order (each pixel once). */
static void trace_pixels(const Config *cfg, const Setup *S, float *img, Carry *carry)
{
    int i, j, s, f, dup;
    for (i = 0; i < cfg->ntrace; i++) {
        for (dup = 0, j = 0; j < i; j++) dup |= cfg->trace_s[j] == cfg->trace_s[i] && cfg->trace_f[j] == cfg->trace_f[i];
        if (!dup) trace_one(S, cfg->trace_s[i], cfg->trace_f[i], carry, img);
    }
    if (!cfg->trace_roi_given) return;
    for (s = cfg->trace_roi[2]; s <= cfg->trace_roi[3]; s++)
        for (f = cfg->trace_roi[0]; f <= cfg->trace_roi[1]; f++) {
            for (dup = 0, j = 0; j < cfg->ntrace; j++) dup |= cfg->trace_s[j] == s && cfg->trace_f[j] == f;
            if (!dup) trace_one(S, s, f, carry, img);
        }
}

/* Full frame inside the ROI. Traced pixels are left for the serial trace pass (same kernel). */
/* The memory-order index of the first rendered pixel with an out-of-range lookup when every pixel starts
   with interpolation on (LONG_MAX: none). Parallel; the minimum does not depend on the thread count. */
static long interp_cutoff(const Setup *S)
{
    long best = LONG_MAX;
    int s;
    if (!g_interp_requested) return LONG_MAX;
    if (S->emulate_phi0) {
        Carry carry;
        int f, tripped;
        memset(&carry, 0, sizeof carry);
        for (s = 0; s < S->spixels; s++)
            for (f = 0; f < S->fpixels; f++) {
                if (!rendered(S, s, f)) continue;
                /* the carry-over moves on with every pixel: probe them in order, up to the first trip */
                (void)render_pixel_ex(S, s, f, &carry, 1, &tripped);
                if (tripped) return (long)s * S->fpixels + f;
            }
        return LONG_MAX;
    }
#ifdef _OPENMP
#pragma omp parallel for schedule(dynamic, 1) reduction(min : best)
#endif
    for (s = 0; s < S->spixels; s++) {
        Carry carry;
        int f, tripped;
        long idx;
        memset(&carry, 0, sizeof carry);
        for (f = 0; f < S->fpixels; f++) {
            idx = (long)s * S->fpixels + f;
            if (idx >= best || !rendered(S, s, f)) continue;
            (void)render_pixel_ex(S, s, f, &carry, 1, &tripped);
            if (tripped) { best = idx; break; }
        }
    }
    return best;
}

static void render_frame(const Setup *S, float *img, int skip_traced)
{
    int s;
    g_interp_cutoff = interp_cutoff(S);
    if (g_interp_cutoff != LONG_MAX) interp_warning();
    if (S->emulate_phi0) {
        /* the carry-over depends on pixel order, so this mode is single-threaded, in memory order */
        Carry carry;
        int f;
        memset(&carry, 0, sizeof carry);
        for (s = 0; s < S->spixels; s++)
            for (f = 0; f < S->fpixels; f++) {
                if (!rendered(S, s, f)) continue;
                NBT_PIXEL_BEGIN(s, f);
                img[(size_t)s * S->fpixels + f] = (float)render_pixel(S, s, f, &carry);
                NBT_PIXEL_END();
            }
        return;
    }
#ifdef _OPENMP
#pragma omp parallel for schedule(dynamic, 1)
#endif
    for (s = 0; s < S->spixels; s++) {
        Carry carry;
        int f;
        memset(&carry, 0, sizeof carry);
        for (f = 0; f < S->fpixels; f++) {
            if (!rendered(S, s, f)) continue;
            if (skip_traced && NBT_IS_TRACED(s, f)) continue;
            img[(size_t)s * S->fpixels + f] = (float)render_pixel(S, s, f, &carry);
        }
    }
    (void)skip_traced;
}

/* ------------------------------------------------------------ output ---- */

static void write_or_die(const void *p, size_t size, size_t n, FILE *fp, const char *path)
{
    if (fwrite(p, size, n, fp) != n) die("%s:0: write failed: %s (hint: check free space and permissions)", path, strerror(errno));
}

static FILE *open_out(const char *path)
{
    FILE *fp = fopen(path, "wb");
    if (fp == NULL) die("%s:0: cannot create output file: %s (hint: check the directory exists and is writable)", path,
                        strerror(errno));
    return fp;
}

static void close_out(FILE *fp, const char *path)
{
    if (fclose(fp) != 0) die("%s:0: write failed on close: %s (hint: check free space)", path, strerror(errno));
}

static void write_floatfile(const char *path, const float *img, size_t n)
{
    FILE *fp = open_out(path);
    write_or_die(img, sizeof(float), n, fp, path);
    close_out(fp, path);
}

static void write_smv(const char *path, const Setup *S, const unsigned short *data)
{
    char hdr[1024];
    int n;
    const unsigned short one = 1;
    double orgx = S->Fclose / S->pixel + 0.5, orgy = S->Sclose / S->pixel + 0.5;
    FILE *fp;
    n = snprintf(hdr, sizeof hdr,
                 "{\nHEADER_BYTES=512;\nDIM=2;\nBYTE_ORDER=%s;\nTYPE=unsigned_short;\n"
                 "SIZE1=%d;\nSIZE2=%d;\nPIXEL_SIZE=%g;\nDISTANCE=%g;\nWAVELENGTH=%g;\n"
                 "BEAM_CENTER_X=%g;\nBEAM_CENTER_Y=%g;\nADXV_CENTER_X=%g;\nADXV_CENTER_Y=%g;\n"
                 "MOSFLM_CENTER_X=%g;\nMOSFLM_CENTER_Y=%g;\nDENZO_X_BEAM=%g;\nDENZO_Y_BEAM=%g;\n"
                 "DIALS_ORIGIN=%g,%g,%g\nXDS_ORGX=%g;\nXDS_ORGY=%g;\nCLOSE_DISTANCE=%g;\n"
                 "PHI=%g;\nOSC_START=%g;\nOSC_RANGE=%g;\nTWOTHETA=%g;\nDETECTOR_SN=000;\nBEAMLINE=fake;\n}\f",
                 *(const unsigned char *)&one ? "little_endian" : "big_endian", S->fpixels, S->spixels,
                 S->pixel * 1000.0, S->distance * 1000.0, S->lambda0 * 1e10, S->Xbeam * 1000.0, S->Ybeam * 1000.0,
                 S->Fbeam * 1000.0, (S->detsize_s - S->Sbeam) * 1000.0, (S->Sbeam - 0.5 * S->pixel) * 1000.0,
                 (S->Fbeam - 0.5 * S->pixel) * 1000.0, S->Sbeam * 1000.0, S->Fbeam * 1000.0, 1000.0 * S->pix0[2],
                 1000.0 * S->pix0[1], -1000.0 * S->pix0[0], orgx, orgy, S->close_distance * 1000.0, S->phi0 * RTD,
                 S->phi0 * RTD, S->osc * RTD, S->twotheta * RTD);
    if (n < 0 || n > 512) die("%s:0: SMV header would exceed 512 bytes (hint: this is a bug in nbref)", path);
    memset(hdr + n, ' ', (size_t)(512 - n));
    fp = open_out(path);
    write_or_die(hdr, 1, 512, fp, path);
    write_or_die(data, sizeof(unsigned short), (size_t)S->fpixels * S->spixels, fp, path);
    close_out(fp, path);
}

static float max_in_roi(const Setup *S, const float *img)
{
    float m = 0.0f;
    int s, f, seen = 0;
    for (s = 0; s < S->spixels; s++)
        for (f = 0; f < S->fpixels; f++)
            if (in_roi(S, s, f) && (!seen || img[(size_t)s * S->fpixels + f] > m)) {
                m = img[(size_t)s * S->fpixels + f];
                seen = 1;
            }
    return m;
}

/* physics.md 7.2: noiseless int image, round to nearest in float32, clipped, ADC offset in-ROI only. */
static void write_intfile(const char *path, const Setup *S, const float *img, double scale_flag, double adc)
{
    size_t n = (size_t)S->fpixels * S->spixels, i;
    unsigned short *data = (unsigned short *)xcalloc(n, sizeof *data);
    float max_I = max_in_roi(S, img);
    double scale = scale_flag > 0 ? scale_flag : (max_I > 0 ? 55000.0 / max_I : 1.0);
    float x;
    for (i = 0; i < n; i++) {
        if (!in_roi(S, (int)(i / S->fpixels), (int)(i % S->fpixels))) continue;
        x = (float)(img[i] * scale + adc);
        if (x < 0) x = 0;
        if (x > 65535) x = 65535;
        data[i] = (unsigned short)floorf(x + 0.5f);
    }
    fprintf(stderr, "  intfile scale %g (max pixel %g photons)\n", scale, (double)max_I);
    write_smv(path, S, data);
    free(data);
}

/* physics.md 7.2/7.3: Poisson photons + ADC, truncated to uint16, in memory order. */
static void write_noisefile(const char *path, const Setup *S, const float *img, long seed, double adc)
{
    size_t n = (size_t)S->fpixels * S->spixels, i;
    unsigned short *data = (unsigned short *)xcalloc(n, sizeof *data);
    long overloads = 0;
    float y;
    for (i = 0; i < n; i++) {
        if (!in_roi(S, (int)(i / S->fpixels), (int)(i % S->fpixels))) continue;
        y = (float)(poidev(img[i], &seed) + adc);
        if (y > 65535) { y = 65535; overloads++; }
        data[i] = (unsigned short)y;
    }
    fprintf(stderr, "  noisefile: %ld overloads\n", overloads);
    write_smv(path, S, data);
    free(data);
}

/* rmsd of the in-ROI pixels about their mean, with the original's N <= 1 guards (physics.md 7.1). */
static double roi_rmsd(const Setup *S, const float *img)
{
    double sum = 0, sumsqr = 0, avg, d;
    long n = 0;
    int s, f;
    for (s = 0; s < S->spixels; s++)
        for (f = 0; f < S->fpixels; f++)
            if (in_roi(S, s, f)) { sum += img[(size_t)s * S->fpixels + f]; n++; }
    avg = sum / (n <= 0 ? 1 : n);
    for (s = 0; s < S->spixels; s++)
        for (f = 0; f < S->fpixels; f++)
            if (in_roi(S, s, f)) { d = img[(size_t)s * S->fpixels + f] - avg; sumsqr += d * d; }
    return sqrt(sumsqr / ((n <= 1 ? 2 : n) - 1));
}

/* physics.md 7.2: 8-bit greymap, truncated, clipped at 255 only. */
static void write_pgm(const char *path, const Setup *S, const float *img, double pgmscale, double intscale)
{
    size_t n = (size_t)S->fpixels * S->spixels, i;
    unsigned char *data = (unsigned char *)xcalloc(n, 1);
    float max_I = max_in_roi(S, img);
    double rmsd = roi_rmsd(S, img), scale = pgmscale, test;
    FILE *fp;
    if (scale <= 0.0) {
        scale = intscale > 0 ? intscale : (max_I > 0 ? 55000.0 / max_I : 1.0);
        if (rmsd > 0.0) scale = 250.0 / (5.0 * rmsd);
    }
    for (i = 0; i < n; i++) {
        if (!in_roi(S, (int)(i / S->fpixels), (int)(i % S->fpixels))) continue;
        test = img[i] * scale;
        data[i] = (unsigned char)(test > 255.0 ? 255.0 : test);
    }
    fp = open_out(path);
    if (fprintf(fp, "P5\n%d %d\n# pixels scaled by %lg\n255\n", S->fpixels, S->spixels, scale) < 0)
        die("%s:0: write failed: %s (hint: check free space and permissions)", path, strerror(errno));
    write_or_die(data, 1, n, fp, path);
    close_out(fp, path);
    free(data);
}

static void write_region_dump(int argc, char **argv, const Config *cfg)
{
    static char meta[70000], args[65536];
    join_argv(argc, argv, args, sizeof args, 1);
    snprintf(meta, sizeof meta, "{\"producer\": \"nbtrace-c-reference %s\", \"dtype\": \"float64\", \"argv\": [%s]}",
             NBREF_VERSION, args);
    if (NBT_REGION_WRITE(cfg->trace_dump, meta) != 0)
        die("%s:0: cannot write the region dump: %s (hint: check the directory exists and is writable)",
            cfg->trace_dump, strerror(errno));
    (void)meta; (void)args;
}

static double physical_memory_bytes(void)
{
#if defined(_SC_PHYS_PAGES) && defined(_SC_PAGESIZE)
    long pages = sysconf(_SC_PHYS_PAGES), size = sysconf(_SC_PAGESIZE);
    if (pages > 0 && size > 0) return (double)pages * (double)size;
#endif
    return 0.0;   /* unknown: only an allocation failure will tell */
}

/* With an image flag the whole frame is held as float32, plus one uint16/uint8 copy while a file is
   written; refuse up front what cannot fit, before any trace text or file is produced. */
static void check_image_memory(const Config *cfg, const Setup *S)
{
    double n = (double)S->fpixels * (double)S->spixels, need = n * sizeof(float), have = physical_memory_bytes();
    if (cfg->intfile || cfg->noisefile) need += n * sizeof(unsigned short);
    else if (cfg->pgmfile) need += n;
    if (need > (double)(SIZE_MAX / 2) || (have > 0 && need > have))
        die("-detpixels: a %d x %d pixel image needs %.3g GB, more than the %.3g GB of memory here (hint: use fewer "
            "pixels, or trace pixels without an image flag)", S->fpixels, S->spixels, need / 1e9, have / 1e9);
}

static void setup_all(int argc, char **argv, Config *cfg, Setup *S)
{
    config_defaults(cfg);
    read_image_headers(argc, argv, cfg);
    parse_args(argc, argv, cfg);
    check_config(cfg);
    setup_crystal(cfg, S);
    setup_crystal_size(cfg, S);
    setup_structure_factors(cfg, S);
    setup_detector(cfg, S);
    if (cfg->floatfile || cfg->intfile || cfg->noisefile || cfg->pgmfile) check_image_memory(cfg, S);
    check_trace_requests(cfg, S);
    setup_sources(cfg, S);
    setup_sampling(cfg, S);
    /* auto-rule on the raw -N values, before the sample-size conversion (physics.md 3.3) */
    g_interp_requested = cfg->interpolate >= 0 ? cfg->interpolate : (cfg->Na <= 2 || cfg->Nb <= 2 || cfg->Nc <= 2);
    if (S->hkls == 0) g_interp_requested = 0;
}

static void start_tracing(int argc, char **argv, const Config *cfg, const Setup *S)
{
    int i;
    NBT_BEGIN("TRACE_C");
    for (i = 0; i < cfg->ntrace; i++) NBT_TRACE_PIXEL(cfg->trace_s[i], cfg->trace_f[i]);
    if (cfg->trace_roi_given)
        NBT_REGION_BEGIN(cfg->trace_roi[0], cfg->trace_roi[1], cfg->trace_roi[2], cfg->trace_roi[3]);
    print_setup_block(argc, argv, S);
    print_input_files(cfg);
    (void)i;
}

/* Only the traced pixels. In carry-over mode every pass but the frame's very first starts from the
   last phi step's orientation, whichever pixel it belongs to, so that state is set up first. */
static void trace_only(const Config *cfg, const Setup *S)
{
    Carry carry;
    memset(&carry, 0, sizeof carry);
    g_interp_sequential = 1;
    if (S->emulate_phi0) {
        int s0 = cfg->ntrace > 0 ? cfg->trace_s[0] : cfg->trace_roi[2];
        int f0 = cfg->ntrace > 0 ? cfg->trace_f[0] : cfg->trace_roi[0];
        if (!first_roi_pixel(S, s0, f0)) carry_after_full_pass(S, &carry);
    }
    trace_pixels(cfg, S, NULL, &carry);
}

static float *frame_with_traces(const Config *cfg, const Setup *S, int tracing)
{
    float *img = (float *)xcalloc((size_t)S->fpixels * S->spixels, sizeof(float));
    Carry carry;
    memset(&carry, 0, sizeof carry);
    render_frame(S, img, tracing);
    /* carry-over mode rendered (and traced) every pixel in order already */
    if (tracing && !S->emulate_phi0) trace_pixels(cfg, S, img, &carry);
    return img;
}

static void write_outputs(const Config *cfg, const Setup *S, const float *img)
{
    if (cfg->floatfile) write_floatfile(cfg->floatfile, img, (size_t)S->fpixels * S->spixels);
    if (cfg->intfile) write_intfile(cfg->intfile, S, img, cfg->intscale, cfg->adc);
    if (cfg->pgmfile) write_pgm(cfg->pgmfile, S, img, cfg->pgmscale, cfg->intscale);
    if (cfg->noisefile) write_noisefile(cfg->noisefile, S, img, cfg->seed, cfg->adc);
}

int main(int argc, char **argv)
{
    static Config cfg;
    static Setup S;
    int tracing, want_image;
    float *img = NULL;

    setup_all(argc, argv, &cfg, &S);
    tracing = cfg.ntrace > 0 || cfg.trace_roi_given;
    if (strcmp(cfg.trace_dump, "taps.npz") != 0 && !cfg.trace_roi_given)
        fprintf(stderr, "nbref: warning: -trace_dump %s without -trace_roi writes nothing\n", cfg.trace_dump);
#if !(defined(NBTRACE_ENABLE) || defined(TRACING))
    if (tracing) die("this nbref was built without tracing (hint: rebuild with -DNBTRACE_ENABLE, or nbtrace build-c)");
#endif
    print_summary(&S);
    want_image = cfg.floatfile != NULL || cfg.intfile != NULL || cfg.noisefile != NULL || cfg.pgmfile != NULL;
    if (!want_image && !tracing)
        fprintf(stderr, "nbref: note: no output requested (hint: add -floatfile FILE or -trace_pixel S F)\n");
    if (tracing) start_tracing(argc, argv, &cfg, &S);
    if (want_image) img = frame_with_traces(&cfg, &S, tracing);
    else if (tracing) trace_only(&cfg, &S);
    if (tracing) {
        if (cfg.trace_roi_given) write_region_dump(argc, argv, &cfg);
        NBT_END();
    }
    if (want_image) write_outputs(&cfg, &S, img);
    if (fflush(stdout) != 0) die("<stdout>:0: write failed: %s (hint: check the pipe or disk)", strerror(errno));
    free(img);
    return 0;
}
