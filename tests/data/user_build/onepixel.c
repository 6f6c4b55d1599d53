/*
 * onepixel.c -- a user's own tiny instrumented "nanoBragg": the Bragg intensity of a few
 * pixels of the default MOSFLM geometry (BEAM pivot, no rotations, one source, no phi,
 * no mosaic, SQUARE lattice, default_F only). It exists to show that a user's build,
 * selected with NB_C_BIN, is captured and diffed exactly like the reference: it prints a
 * subset of the reference taps through simulator/c/nbtrace_tap.h and leaves the others
 * out on purpose (the diff report must list them as never emitted).
 *
 * Build:  cc -std=c99 -O2 -DNBTRACE_ENABLE -I simulator/c onepixel.c -lm -o onepixel
 * Run:    ./onepixel -lambda 0.5 -cell 100 100 100 90 90 90 -N 5 -default_F 100 \
 *                    -distance 500 -detpixels 512 -pixel 0.05 -trace_pixel 200 300
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nbtrace_tap.h"

/* strict C99 hides the POSIX names; the values are the glibc ones */
#ifndef M_PI
#define M_PI 3.14159265358979323846
#endif
#ifndef M_1_PI
#define M_1_PI 0.31830988618379067154
#endif

#define MAX_TRACED 64

/* Thomson r_e^2 (m^2) and the default fluence (photons/m^2), physics.md 1.1 */
static const double R_E_SQR = 7.94079248018965e-30;
static const double DEFAULT_FLUENCE = 125932015286227086360700780544.0;

typedef struct {
    double lambda_m, distance_m, pixel_m, default_F;
    double cell[6];          /* a b c (A), alpha beta gamma (deg) */
    int have_cell, N[3], fpixels, spixels, oversample;
    int ntraced, traced[MAX_TRACED][2];
} config;

static void die(const char *flag, const char *msg, const char *got)
{
    fprintf(stderr, "onepixel: error: %s %s%s%s%s\n", flag, msg, got ? ", got '" : "", got ? got : "",
            got ? "'" : "");
    exit(2);
}

static double number(int argc, char **argv, int i, const char *flag)
{
    char *end;
    double x;
    if (i >= argc) die(flag, "needs a number", NULL);
    errno = 0;
    x = strtod(argv[i], &end);
    if (end == argv[i] || *end != '\0' || errno) die(flag, "needs a number", argv[i]);
    return x;
}

static int integer(int argc, char **argv, int i, const char *flag)
{
    double x = number(argc, argv, i, flag);
    if (x != floor(x)) die(flag, "needs an integer", argv[i]);
    return (int)x;
}

static void parse(int argc, char **argv, config *c)
{
    int i, k, detpixels = 1024;
    c->lambda_m = 1e-10; c->distance_m = 0.1; c->pixel_m = 1e-4; c->default_F = 0;
    c->N[0] = c->N[1] = c->N[2] = 1; c->oversample = 0;
    for (i = 1; i < argc; i++) {
        const char *f = argv[i];
        if (!strcmp(f, "-lambda")) c->lambda_m = number(argc, argv, ++i, f) / 1e10;
        else if (!strcmp(f, "-distance")) c->distance_m = number(argc, argv, ++i, f) / 1000;
        else if (!strcmp(f, "-pixel")) c->pixel_m = number(argc, argv, ++i, f) / 1000;
        else if (!strcmp(f, "-detpixels")) detpixels = integer(argc, argv, ++i, f);
        else if (!strcmp(f, "-default_F")) c->default_F = number(argc, argv, ++i, f);
        else if (!strcmp(f, "-N")) { c->N[0] = c->N[1] = c->N[2] = integer(argc, argv, ++i, f); }
        else if (!strcmp(f, "-oversample")) c->oversample = integer(argc, argv, ++i, f);
        else if (!strcmp(f, "-cell")) {
            for (k = 0; k < 6; k++) c->cell[k] = number(argc, argv, ++i, f);
            c->have_cell = 1;
        } else if (!strcmp(f, "-trace_pixel")) {
            if (c->ntraced >= MAX_TRACED) die(f, "given too often", NULL);
            c->traced[c->ntraced][0] = integer(argc, argv, ++i, f);
            c->traced[c->ntraced][1] = integer(argc, argv, ++i, f);
            c->ntraced++;
        } else die(f, "is not a flag this demo knows", NULL);
    }
    if (!c->have_cell) die("-cell", "is required", NULL);
    if (c->default_F == 0) die("-default_F", "is required (this demo reads no hkl file)", NULL);
    c->fpixels = c->spixels = detpixels;
    for (k = 0; k < 3; k++) if (c->N[k] < 1) c->N[k] = 1;
}

static void cross(const double *u, const double *v, double *w)
{
    w[0] = u[1] * v[2] - u[2] * v[1];
    w[1] = u[2] * v[0] - u[0] * v[2];
    w[2] = u[0] * v[1] - u[1] * v[0];
}

static double dot(const double *u, const double *v) { return u[0] * v[0] + u[1] * v[1] + u[2] * v[2]; }

static void scale_to(double *v, double len)
{
    double n = sqrt(dot(v, v));
    int k;
    for (k = 0; k < 3; k++) v[k] *= len / n;
}

static double clamp_cos(double x) { return x * x > 1 ? 1 : x; }

/* Real-space a, b, c in metres from -cell (physics.md 2.1 then 2.4, in that order: the
 * non-textbook c*_z and the rescale of the cross products are what the reference does). */
static void real_space(const config *c, double abc[3][3])
{
    const double rtd = 180.0 * M_1_PI;
    double a = c->cell[0], b = c->cell[1], cc = c->cell[2];
    double al = c->cell[3] / rtd, be = c->cell[4] / rtd, ga = c->cell[5] / rtd;
    double s = (al + be + ga) / 2, skew, V, Vs, as, bs, cs, sgs, cas, cbs, cgs;
    double astar[3], bstar[3], cstar[3], A[3], B[3], C[3];
    int k;
    skew = fabs(sin(s) * sin(s - al) * sin(s - be) * sin(s - ga));
    V = 2 * a * b * cc * sqrt(skew);
    Vs = 1 / V;
    as = b * cc * sin(al) * Vs; bs = cc * a * sin(be) * Vs; cs = a * b * sin(ga) * Vs;
    sgs = cc * Vs / (as * bs);
    cas = clamp_cos((cos(be) * cos(ga) - cos(al)) / (sin(be) * sin(ga)));
    cbs = clamp_cos((cos(ga) * cos(al) - cos(be)) / (sin(ga) * sin(al)));
    cgs = clamp_cos((cos(al) * cos(be) - cos(ga)) / (sin(al) * sin(be)));
    astar[0] = as; astar[1] = 0; astar[2] = 0;
    bstar[0] = bs * cgs; bstar[1] = bs * sgs; bstar[2] = 0;
    cstar[0] = cs * cbs; cstar[1] = cs * (cas - cbs * cgs) / sgs; cstar[2] = cs * V / (a * b * cc * sgs);
    cross(astar, bstar, A); cross(bstar, cstar, B); cross(cstar, astar, C);
    scale_to(B, a / V); scale_to(C, b / V); scale_to(A, cc / V);
    for (k = 0; k < 3; k++) {
        abc[0][k] = B[k] * V * 1e-10;
        abc[1][k] = C[k] * V * 1e-10;
        abc[2][k] = A[k] * V * 1e-10;
    }
}

static double sincg(double x, double n) { return x == 0.0 ? n : sin(n * x) / sin(x); }

static int auto_oversample(const config *c, double abc[3][3])
{
    double smax = 0, ext;
    int k, rec;
    for (k = 0; k < 3; k++) {
        ext = sqrt(dot(abc[k], abc[k])) * c->N[k];
        if (ext > smax) smax = ext;
    }
    rec = (int)ceil(3 * smax / (c->lambda_m * c->distance_m / c->pixel_m));
    return rec <= 0 ? 1 : rec;
}

/* One pixel (slow s, fast f): prints the taps this demo knows, returns photons. */
static double pixel_value(const config *c, double abc[3][3], const double *pix0, int os, int s, int f)
{
    const double fdet[3] = {0, 0, 1}, sdet[3] = {0, -1, 0}, odet[3] = {1, 0, 0}, beam[3] = {1, 0, 0};
    const char *axis_tap[3] = {"F_latt_a", "F_latt_b", "F_latt_c"};
    const char *rot_tap[3] = {"rot_a_angstroms", "rot_b_angstroms", "rot_c_angstroms"};
    double delta = c->pixel_m / os, I = 0, omega = 0, polar = 0, close = dot(pix0, odet);
    int ss, sf, k, j;
    NBT_PIXEL_BEGIN(s, f);
    for (ss = 0; ss < os; ss++) for (sf = 0; sf < os; sf++) {
        double Fd = delta * (f * os + sf) + delta / 2, Sd = delta * (s * os + ss) + delta / 2;
        double P[3], d[3], q[3], hkl[3], R, Flatt = 1, Fa, ang[3];
        long h0[3];
        for (k = 0; k < 3; k++) P[k] = Fd * fdet[k] + Sd * sdet[k] + pix0[k];
        R = sqrt(dot(P, P));
        for (k = 0; k < 3; k++) d[k] = P[k] / R;
        /* Omega and polarization once per pixel, at the first subpixel (physics.md 9.1 #11-12) */
        if (omega == 0) omega = c->pixel_m * c->pixel_m / (R * R) * close / R;
        if (polar == 0) { double ct = dot(beam, d); polar = 0.5 * (1 + ct * ct); }
        for (k = 0; k < 3; k++) q[k] = (d[k] - beam[k]) / c->lambda_m;
        NBT_VEC3("pix0_vector_meters", pix0);
        NBT_VEC3("fdet_vec", fdet);
        NBT_VEC3("sdet_vec", sdet);
        NBT_VEC3("pixel_pos_meters", P);
        NBT_SCALAR("R_distance_meters", R);
        NBT_SCALAR("omega_pixel_sr", c->pixel_m * c->pixel_m / (R * R) * close / R);
        NBT_SCALAR("close_distance_meters", close);
        NBT_SCALAR("obliquity_factor", close / R);
        NBT_VEC3("diffracted_vec", d);
        NBT_VEC3("incident_vec", beam);
        NBT_SCALAR("lambda_meters", c->lambda_m);
        NBT_SCALAR("lambda_angstroms", c->lambda_m * 1e10);
        NBT_VEC3("scattering_vec_A_inv", q);
        for (j = 0; j < 3; j++) {
            for (k = 0; k < 3; k++) ang[k] = abc[j][k] * 1e10;
            NBT_VEC3(rot_tap[j], ang);
        }
        for (j = 0; j < 3; j++) {
            hkl[j] = dot(abc[j], q);
            h0[j] = (long)ceil(hkl[j] - 0.5);
        }
        NBT_VEC3("hkl_frac", hkl);
        NBT_IVEC3("hkl_rounded", h0);
        for (j = 0; j < 3; j++) {
            Fa = c->N[j] > 1 ? sincg(M_PI * hkl[j], c->N[j]) : 1.0;
            NBT_SCALAR(axis_tap[j], Fa);
            Flatt *= Fa;
        }
        NBT_SCALAR("F_latt", Flatt);
        NBT_SCALAR("F_cell", c->default_F);
        /* these only feed taps: keep a build with tracing compiled out warning-free */
        (void)h0; (void)ang; (void)rot_tap; (void)axis_tap;
        I += c->default_F * c->default_F * Flatt * Flatt;
    }
    {
        double value = R_E_SQR * DEFAULT_FLUENCE * I / (os * os) * polar * omega;
        /* the scaling block is deliberately partial: r_e, fluence, capture_fraction, ... are
         * never emitted, and the diff must say so */
        NBT_SCALAR("I_before_scaling", I);
        NBT_INT("steps", os * os);
        NBT_SCALAR("polar", polar);
        NBT_SCALAR("omega_pixel", omega);
        NBT_SCALAR("I_pixel_final", value);
        NBT_PIXEL_END();
        return value;
    }
}

int main(int argc, char **argv)
{
    config c;
    double abc[3][3], pix0[3], Fbeam, Sbeam, detsize_f, detsize_s;
    int i, os;
    memset(&c, 0, sizeof c);
    parse(argc, argv, &c);
    real_space(&c, abc);
    os = c.oversample > 0 ? c.oversample : auto_oversample(&c, abc);
    detsize_f = c.fpixels * c.pixel_m;
    detsize_s = c.spixels * c.pixel_m;
    /* MOSFLM: default beam centre (detsize + pixel)/2, then the +1/2 pixel shift (physics.md 5.3).
     * -DDEMO_DROP_HALF_PIXEL reproduces the port's incident 7, so a test can show that a bug in
     * a user's build is localised to pix0_vector_meters. */
#ifdef DEMO_DROP_HALF_PIXEL
    Fbeam = (detsize_f + c.pixel_m) / 2;
    Sbeam = (detsize_s + c.pixel_m) / 2;
#else
    Fbeam = (detsize_f + c.pixel_m) / 2 + c.pixel_m / 2;
    Sbeam = (detsize_s + c.pixel_m) / 2 + c.pixel_m / 2;
#endif
    /* BEAM pivot, unrotated MOSFLM axes: pix0 = -Fbeam f - Sbeam s + D b */
    pix0[0] = c.distance_m; pix0[1] = Sbeam; pix0[2] = -Fbeam;

    NBT_BEGIN("TRACE_C");
    NBT_SETUP_STR("producer", "onepixel-demo 1 (a user build)");
    NBT_SETUP_STR("dtype", "float64");
    NBT_SETUP_STR("detector_convention", "MOSFLM");
    NBT_SETUP_STR("pivot", "BEAM");
    {
        char dims[64];
        snprintf(dims, sizeof dims, "%d %d", c.fpixels, c.spixels);
        NBT_SETUP_STR("detector_pixels", dims);
    }
    NBT_SETUP_INT("oversample", os);
    for (i = 0; i < c.ntraced; i++) {
        int s = c.traced[i][0], f = c.traced[i][1];
        if (s < 0 || s >= c.spixels || f < 0 || f >= c.fpixels) {
            fprintf(stderr, "onepixel: error: -trace_pixel %d %d is outside the %dx%d detector\n", s, f,
                    c.spixels, c.fpixels);
            return 2;
        }
        (void)NBT_TRACE_PIXEL(s, f);
    }
    for (i = 0; i < c.ntraced; i++) pixel_value(&c, abc, pix0, os, c.traced[i][0], c.traced[i][1]);
    NBT_END();
    return 0;
}
