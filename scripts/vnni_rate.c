/* How many 512-bit multiply-class instructions one core of this machine retires a
 * second, alone and mixed: the ceiling the many-row matrix kernels are held against in
 * the README (an AVX512-VNNI CPU is needed).
 *
 *     cc -O2 -march=native scripts/vnni_rate.c -o vnni_rate && ./vnni_rate
 *
 * Twelve independent accumulators, so that throughput, not latency, is measured. A pair
 * runs six of each type: if the two share execution ports, the pair retires at one
 * type's rate, otherwise at up to the sum. On AMD Zen 4 `vpdpbusd`, `vpmulld` and
 * `vfmadd` share them (one 512-bit instruction a cycle among them), while `vpaddd` runs
 * beside. */
#include <immintrin.h>
#include <stdio.h>
#include <time.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

#define TWELVE(A, B)                                                                      \
    a0 = A(a0); a1 = A(a1); a2 = A(a2); a3 = A(a3); a4 = A(a4); a5 = A(a5);              \
    a6 = B(a6); a7 = B(a7); a8 = B(a8); a9 = B(a9); a10 = B(a10); a11 = B(a11);
#define KEEP                                                                              \
    __asm__ volatile("" : "+v"(a0), "+v"(a1), "+v"(a2), "+v"(a3), "+v"(a4), "+v"(a5),     \
                     "+v"(a6), "+v"(a7), "+v"(a8), "+v"(a9), "+v"(a10), "+v"(a11));
#define DPBUSD(a) _mm512_dpbusd_epi32(a, w, x)
#define MULLD(a) _mm512_mullo_epi32(a, w)
#define ADDD(a) _mm512_add_epi32(a, w)
#define FMADD(a)                                                                          \
    _mm512_castps_si512(_mm512_fmadd_ps(_mm512_castsi512_ps(a), _mm512_castsi512_ps(w),   \
                                        _mm512_castsi512_ps(x)))
#define RUN(NAME, A, B)                                                                   \
    t = now();                                                                            \
    for (long n = 0; n < N; n++) { TWELVE(A, B) KEEP }                                    \
    dt = now() - t;                                                                       \
    printf("%-16s %6.2f G instructions/s\n", NAME, N * 12 / dt / 1e9);

int main(void) {
    __m512i a0 = _mm512_set1_epi32(0), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0,
            a7 = a0, a8 = a0, a9 = a0, a10 = a0, a11 = a0;
    __m512i w = _mm512_set1_epi32(3), x = _mm512_set1_epi32(5);
    __asm__ volatile("" : "+v"(w), "+v"(x));
    const long N = 100000000;
    double t, dt;
    RUN("vpdpbusd", DPBUSD, DPBUSD)
    RUN("vpmulld", MULLD, MULLD)
    RUN("vfmadd", FMADD, FMADD)
    RUN("vpaddd", ADDD, ADDD)
    RUN("vpdpbusd+vpmulld", DPBUSD, MULLD)
    RUN("vpdpbusd+vpaddd", DPBUSD, ADDD)
    return 0;
}
