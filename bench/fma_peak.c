/* Single-core fp32 FMA ceiling of this CPU: loops of independent vfmadd231ps with their
 * operands in registers (8, 12 or 24 zmm accumulators, 12 ymm accumulators) or one operand
 * broadcast from L1 ({1to16}), timed by the thread's CPU time (best of 15), so other jobs on
 * a shared machine do not count. The GEMM's efficiency is quoted against the best line.
 *
 *     gcc -O2 -o /tmp/fma_peak bench/fma_peak.c && /tmp/fma_peak
 */
#include <stdio.h>
#include <time.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

#define Z(i) "vfmadd231ps %%zmm30, %%zmm31, %%zmm" #i "\n\t"
#define Y(i) "vfmadd231ps %%ymm14, %%ymm15, %%ymm" #i "\n\t"
#define ZB(i) "vfmadd231ps (%1)%{1to16%}, %%zmm31, %%zmm" #i "\n\t"
#define ZERO_Z "vxorps %%xmm30,%%xmm30,%%xmm30\n\tvxorps %%xmm31,%%xmm31,%%xmm31\n\t1:\n\t"
#define ZERO_Y "vxorps %%xmm14,%%xmm14,%%xmm14\n\tvxorps %%xmm15,%%xmm15,%%xmm15\n\t1:\n\t"
#define LOOP "dec %0\n\tjnz 1b"

static float one[16] __attribute__((aligned(64)));

/* Each loop body is 24 FMAs. */
static void zmm24(long n) {
    __asm__ volatile(ZERO_Z Z(0) Z(1) Z(2) Z(3) Z(4) Z(5) Z(6) Z(7) Z(8) Z(9) Z(10) Z(11) Z(12)
                         Z(13) Z(14) Z(15) Z(16) Z(17) Z(18) Z(19) Z(20) Z(21) Z(22) Z(23) LOOP
                     : "+r"(n)::"memory");
}
static void zmm12(long n) {
    __asm__ volatile(ZERO_Z Z(0) Z(1) Z(2) Z(3) Z(4) Z(5) Z(6) Z(7) Z(8) Z(9) Z(10) Z(11) Z(0)
                         Z(1) Z(2) Z(3) Z(4) Z(5) Z(6) Z(7) Z(8) Z(9) Z(10) Z(11) LOOP
                     : "+r"(n)::"memory");
}
static void zmm8(long n) {
    __asm__ volatile(ZERO_Z Z(0) Z(1) Z(2) Z(3) Z(4) Z(5) Z(6) Z(7) Z(0) Z(1) Z(2) Z(3) Z(4)
                         Z(5) Z(6) Z(7) Z(0) Z(1) Z(2) Z(3) Z(4) Z(5) Z(6) Z(7) LOOP
                     : "+r"(n)::"memory");
}
static void ymm12(long n) {
    __asm__ volatile(ZERO_Y Y(0) Y(1) Y(2) Y(3) Y(4) Y(5) Y(6) Y(7) Y(8) Y(9) Y(10) Y(11) Y(0)
                         Y(1) Y(2) Y(3) Y(4) Y(5) Y(6) Y(7) Y(8) Y(9) Y(10) Y(11) LOOP
                     : "+r"(n)::"memory");
}
static void zmm24_bcast(long n) {
    __asm__ volatile("vxorps %%xmm31,%%xmm31,%%xmm31\n\t1:\n\t" ZB(0) ZB(1) ZB(2) ZB(3) ZB(4)
                         ZB(5) ZB(6) ZB(7) ZB(8) ZB(9) ZB(10) ZB(11) ZB(12) ZB(13) ZB(14) ZB(15)
                             ZB(16) ZB(17) ZB(18) ZB(19) ZB(20) ZB(21) ZB(22) ZB(23) LOOP
                     : "+r"(n)
                     : "r"(one)
                     : "memory");
}

static void run(const char *name, void (*f)(long), int lanes) {
    long n = 5000000;
    double best = 1e9;
    for (int r = 0; r < 15; r++) {
        double t = now();
        f(n);
        t = now() - t;
        if (t < best) best = t;
    }
    double fmas = (double)n * 24;
    printf("%-34s %6.1f GFLOP/s  %5.2f G FMA instructions/s\n", name,
           fmas * lanes * 2 / best * 1e-9, fmas / best * 1e-9);
}

int main(void) {
    run("zmm, 24 accumulators", zmm24, 16);
    run("zmm, 12 accumulators", zmm12, 16);
    run("zmm, 8 accumulators", zmm8, 16);
    run("ymm, 12 accumulators", ymm12, 8);
    run("zmm, 24 acc, broadcast from L1", zmm24_bcast, 16);
    return 0;
}
