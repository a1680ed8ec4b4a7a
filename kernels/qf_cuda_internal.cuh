/* qf_cuda_internal.cuh - internal to kernels/: what the CUDA files share.
 *
 * The context (handles and grow-on-demand workspace), PTX wrappers (mma.sync, ldmatrix,
 * cp.async, streaming loads), and the repacked weight layout with its in-register dequantizers,
 * which repack.cu writes and the weight-only kernels (wq_gemm.cuh) read.
 *
 * Repacked layout (one per weight, k % 64 == 0).  Rows are cut into row blocks of 16 (RB =
 * ceil(n/16), padding rows are zero) and k into chunks of 64 (KC = k/64).  A (row block, chunk)
 * holds, for each of the 32 lanes of a warp, the operands of four m16n8k16 mma.sync A fragments
 * (k16 steps j = 0..3): lane (g = lane/4, t = lane%4) owns, per step, the elements
 *   e0 (g, 2t)  e1 (g, 2t+1)  e2 (g+8, 2t)  e3 (g+8, 2t+1)
 *   e4 (g, 2t+8)  e5 (g, 2t+9)  e6 (g+8, 2t+8)  e7 (g+8, 2t+9)      (row, column in the step)
 * so that A register i holds (e_2i, e_2i+1).  4-bit formats keep a step in one 32-bit word
 * (16 bytes per lane per chunk), FP8 in two (32 bytes), at
 *   values + ((rb * KC + kc) * 32 + lane) * LANE_BYTES.
 * Within a word the element order is chosen so that a few integer ops build a bf16x2:
 *   INT4   nibble (e>>1) + 4*(e&1) = the stored q_u;      (w >> 4i) & 0x000F000F | 0x43004300 = 128 + q_u
 *   FP4    nibble 3 - (e>>1) + 4*(e&1) = sign<<3 | code;  top nibble of each half -> sign, mag << 6
 *   FP8    byte of word 2j + (e>>2): {1, 3, 0, 2}[e&3];  byte 1/3 of each half -> sign, mag << 4
 * Scales are folded so that every dequantized value is one bf16 multiply (INT4: one subtract and
 * one multiply) and exact for FP4/FP8 (the per-tensor rest goes to the epilogue alpha):
 *   INT4   entry per (rb, group) of 32 B (sym: 8 x u32 {bf16 s[g], s[g+8]}) or 64 B (asym:
 *          8 x {s pair, bf16(128 + zp) pair}); w = ((128 + q_u) - (128 + zp_u)) * s, rounded to bf16.
 *   NVFP4  entry per (rb, kc) of 64 B: 8 x 8 bytes {b(g, step 0), b(g+8, 0), ..., b(g+8, 3)} where
 *          b = E5<<3 | m re-encodes |E4M3 scale| = 2^(E5-10) (1 + m/8) without subnormals;
 *          S = bf16 bits b*16 + 0x7580 = scale * 2^118; V = fp4 * 2^-126 (bit placement);
 *          w' = V * S = fp4 * scale * 2^-8, alpha = 256 / G.  Zero-scale blocks store zero values,
 *          negative scales flip the value signs.
 *   MXFP4  entry per (rb, kc) of 32 B: 8 x 4 bytes {e(g, blk 0), e(g+8, 0), e(g, 1), e(g+8, 1)}
 *          raw E8M0; S = bf16 bits (e + 118) << 7 = 2^(e-127) * 2^118 (needs e <= 136);
 *          w' = fp4 * 2^(e-127) * 2^-8, alpha = 256.
 *   FP8    no block scales; V = e4m3 * 2^-120 (bit placement), w = V * 2^120 exactly; the float32
 *          per-row scale (per-tensor scales are replicated) is applied in the epilogue.
 * The bf16 multiplies take subnormal bf16 inputs (FP4 codes +-0.5, E4M3 subnormals): sm_80+
 * bf16 arithmetic keeps subnormals (no .ftz form exists for bf16).
 */
#ifndef QF_CUDA_INTERNAL_CUH
#define QF_CUDA_INTERNAL_CUH

#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <stdint.h>
#include <string.h>

#include "qf_kernels.h"
#include "qf_cuda_check.h"
#include "qf_fmt.h"

/* ---- context ------------------------------------------------------------------------------ */

/* A device buffer that only grows.  reserve() reallocates (synchronizing) when too small. */
struct qf_dbuf {
    void *p;
    size_t cap;
};

#define QF_FP8_ALGO_CACHE 16

struct qf_fp8_plan { /* one cached cuBLASLt FP8 matmul configuration */
    int64_t m, n, k;
    int outer; /* 1: per-row/per-column scales in the epilogue (OUTER_VEC_32F); 0: fallback */
    cublasLtMatmulDesc_t op;
    cublasLtMatrixLayout_t a, b, d;
    cublasLtMatmulAlgo_t algo;
    unsigned long long used; /* LRU stamp; 0 = empty slot */
};

struct qf_cuda_ctx {
    int device;
    int sm_count;
    cublasHandle_t blas;
    cublasLtHandle_t lt;
    qf_dbuf lt_ws;   /* cuBLASLt workspace */
    qf_dbuf part;    /* float32 split-K partial sums */
    qf_dbuf cnt;     /* int split-K arrival counters: zero between calls (kernels reset them) */
    qf_dbuf deq;     /* bf16 dequantized weight panel (DEQUANT_CUBLAS path) */
    qf_dbuf act;     /* FP8 activation codes + per-token scales (W8A8) */
    qf_dbuf vec;     /* replicated per-tensor FP8 weight scale */
    qf_dbuf scratch; /* small device scalars: error flag, tensor absmax */
    qf_fp8_plan plans[QF_FP8_ALGO_CACHE];
    unsigned long long plan_clock;
    int occupancy[3][8]; /* [GEMV 1 tile, GEMV 2 tiles, TILED][format]: CTAs per SM, 0 = not queried */
};

/* Ensure b holds at least `bytes`; when zero is set, a (re)allocated buffer is zero-filled. */
qf_status qf_dbuf_reserve(qf_dbuf *b, size_t bytes, int zero, qf_error *err);

/* ---- the weight-only kernels (one function per format, in w4a16_gemm.cu / fp4_gemm.cu / fp8_gemm.cu) */
struct qf_wq_call {
    const qf_gpu_weight *w;
    const uint16_t *x;
    int64_t m;
    uint16_t *y;
    qf_mm_path path; /* GEMV or TILED (DEQUANT_CUBLAS is handled in matmul.cu) */
    int ksplit;
    cudaStream_t stream;
};
qf_status qf_wq_run_int4(qf_cuda_ctx *ctx, const qf_wq_call *c, qf_error *err);
qf_status qf_wq_run_nvfp4(qf_cuda_ctx *ctx, const qf_wq_call *c, qf_error *err);
qf_status qf_wq_run_mxfp4(qf_cuda_ctx *ctx, const qf_wq_call *c, qf_error *err);
qf_status qf_wq_run_fp8(qf_cuda_ctx *ctx, const qf_wq_call *c, qf_error *err);

/* Dequantize repacked rows [r0, r0 + rows) (r0 % 16 == 0) to bf16 out[rows, k] with alpha and
 * the per-row scale applied (repack.cu). */
qf_status qf_wq_dequant_panel(const qf_gpu_weight *w, int64_t r0, int64_t rows, uint16_t *out, cudaStream_t s,
                              qf_error *err);

/* y[m, n] = x[m, k] . W[n, k]^T in bf16 through cuBLAS (fp32 compute), W row-major with row
 * stride k, written into columns of y with row stride ldy (cuda_ctx.cu).  The bench baseline. */
qf_status qf_cuda_bf16_gemm(qf_cuda_ctx *ctx, const uint16_t *x, int64_t m, const uint16_t *w, int64_t n, int64_t k,
                            uint16_t *y, int64_t ldy, cudaStream_t s, qf_error *err);

/* ---- repacked layout constants ------------------------------------------------------------ */
#define QF_RB_ROWS 16 /* rows per row block */
#define QF_CHUNK_K 64 /* k per chunk */

static inline int64_t qf_rl_rowblocks(int64_t n) { return (n + QF_RB_ROWS - 1) / QF_RB_ROWS; }
static inline int qf_rl_lane_bytes(qf_wfmt f) { return f == QF_WFMT_FP8 ? 32 : 16; }
/* bytes of one block-scale entry (0: none) */
static inline int qf_rl_entry_bytes(qf_wfmt f, int asym)
{
    switch (f) {
    case QF_WFMT_INT4: return asym ? 64 : 32;
    case QF_WFMT_NVFP4: return 64;
    case QF_WFMT_MXFP4: return 32;
    default: return 0;
    }
}

/* The repacked weight as the kernels see it (host-built from a qf_gpu_weight). */
struct qf_wq_view {
    const uint4 *q;   /* values */
    const uint8_t *s; /* block scales (NULL for FP8) */
    const float *rs;  /* per-row scales (FP8) or NULL */
    float alpha;
    int n, k;
    int rb, kc; /* row blocks, k chunks */
    int ng, cpg; /* INT4: groups along k, chunks per group */
    int asym;
};
static inline qf_wq_view qf_wq_view_of(const qf_gpu_weight *w)
{
    qf_wq_view v;
    const uint8_t *base = (const uint8_t *)w->data;
    v.q = (const uint4 *)(base + w->q_offset);
    v.s = w->l.fmt == QF_WFMT_FP8 ? NULL : base + w->s_offset;
    v.rs = w->l.fmt == QF_WFMT_FP8 ? (const float *)(base + w->rs_offset) : NULL;
    v.alpha = w->alpha;
    v.n = (int)w->l.n;
    v.k = (int)w->l.k;
    v.rb = (int)qf_rl_rowblocks(w->l.n);
    v.kc = (int)(w->l.k / QF_CHUNK_K);
    v.ng = w->l.fmt == QF_WFMT_INT4 ? (int)(w->l.k / w->l.group_size) : 0;
    v.cpg = w->l.fmt == QF_WFMT_INT4 ? (int)(w->l.group_size / QF_CHUNK_K) : 1;
    v.asym = w->l.asym;
    return v;
}

/* ---- PTX wrappers --------------------------------------------------------------------------- */
namespace qfk {

__device__ __forceinline__ uint32_t smem_addr(const void *p) { return (uint32_t)__cvta_generic_to_shared(p); }

/* 16-byte async copy global -> shared; when !valid the destination is zero-filled and nothing is read. */
__device__ __forceinline__ void cp_async16(void *smem, const void *gmem, bool valid)
{
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem_addr(smem)), "l"(gmem),
                 "r"(valid ? 16 : 0)
                 : "memory");
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
template <int N> __device__ __forceinline__ void cp_async_wait()
{
    asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
}

__device__ __forceinline__ void ldsm_x4(uint32_t &r0, uint32_t &r1, uint32_t &r2, uint32_t &r3, const void *smem)
{
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r0), "=r"(r1), "=r"(r2), "=r"(r3)
                 : "r"(smem_addr(smem))
                 : "memory");
}

/* c += a . b, m16n8k16, bf16 inputs, f32 accumulators */
__device__ __forceinline__ void mma_bf16(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1)
{
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, "
                 "{%8, %9}, {%0, %1, %2, %3};\n"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

/* L2 policy for streamed weights: evict first, so activations and partial sums stay resident. */
__device__ __forceinline__ uint64_t evict_first_policy()
{
    uint64_t pol;
    asm volatile("createpolicy.fractional.L2::evict_first.b64 %0, 1.0;\n" : "=l"(pol));
    return pol;
}
/* 16-byte read-only load that does not allocate in L1 and is evicted first from L2. */
__device__ __forceinline__ uint4 ldg_stream(const uint4 *p, uint64_t pol)
{
    uint4 v;
    asm volatile("ld.global.nc.L1::no_allocate.L2::cache_hint.v4.u32 {%0, %1, %2, %3}, [%4], %5;\n"
                 : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
                 : "l"(p), "l"(pol));
    return v;
}

/* ---- bit and bf16 primitives, also compiled for the host ------------------------------------
 * kernels/dev/emulate_wq.cu runs the dequantization and repack code on the CPU against the
 * references with __CUDA_ARCH__ defined, i.e. it executes the DEVICE branches below, with the
 * intrinsics they call (__byte_perm, __hmul2, __hsub2, __ldg, atomicOr) emulated.  Keep every
 * device branch to plain C++ plus those intrinsics (add an emulation there for a new one); the
 * host branches only make the functions compile in host passes.  Pointer punning is done with
 * memcpy (same PTX under nvcc, defined behaviour for the host compiler). */
#define QFK_HD __host__ __device__ __forceinline__
#ifdef __CUDA_ARCH__
#define QFK_UNROLL _Pragma("unroll")
#else
#define QFK_UNROLL
#endif

/* PTX prmt / __byte_perm: byte i of the result is byte (sel >> 4i) & 7 of {b:a} (no sign mode) */
QFK_HD uint32_t prmt(uint32_t a, uint32_t b, uint32_t sel)
{
#ifdef __CUDA_ARCH__
    return __byte_perm(a, b, sel);
#else
    const uint64_t ab = (uint64_t)b << 32 | a;
    uint32_t r = 0;
    for (int i = 0; i < 4; i++) r |= (uint32_t)((ab >> (8 * ((sel >> (4 * i)) & 7))) & 0xff) << (8 * i);
    return r;
#endif
}

/* bf16x2 a * b and a - b, round to nearest even, subnormals kept (sm_80+ bf16 arithmetic has no
 * flush-to-zero form).  Host: the float product / difference of two bf16 is exact or rounded
 * once, then rounded to bf16 - the same single rounding. */
#ifndef __CUDA_ARCH__
static inline uint32_t qfk_host_bf16x2(uint32_t a, uint32_t b, int sub)
{
    uint32_t r = 0;
    for (int h = 0; h < 2; h++) {
        const float x = qf_bf16_to_f32((uint16_t)(a >> (16 * h))), y = qf_bf16_to_f32((uint16_t)(b >> (16 * h)));
        r |= (uint32_t)qf_f32_to_bf16(sub ? x - y : x * y) << (16 * h);
    }
    return r;
}
#endif
QFK_HD uint32_t bf16x2_mul(uint32_t a, uint32_t b)
{
#ifdef __CUDA_ARCH__
    __nv_bfloat162 x, y;
    memcpy(static_cast<void *>(&x), &a, 4), memcpy(static_cast<void *>(&y), &b, 4);
    const __nv_bfloat162 r = __hmul2(x, y);
    uint32_t u;
    memcpy(&u, static_cast<const void *>(&r), 4);
    return u;
#else
    return qfk_host_bf16x2(a, b, 0);
#endif
}
QFK_HD uint32_t bf16x2_sub(uint32_t a, uint32_t b)
{
#ifdef __CUDA_ARCH__
    __nv_bfloat162 x, y;
    memcpy(static_cast<void *>(&x), &a, 4), memcpy(static_cast<void *>(&y), &b, 4);
    const __nv_bfloat162 r = __hsub2(x, y);
    uint32_t u;
    memcpy(&u, static_cast<const void *>(&r), 4);
    return u;
#else
    return qfk_host_bf16x2(a, b, 1);
#endif
}
template <class T> QFK_HD T ldro(const T *p) /* read-only load: __ldg on the device */
{
#ifdef __CUDA_ARCH__
    return __ldg(p);
#else
    return *p;
#endif
}

/* ---- in-register dequantization of one k16 step of a lane's repacked chunk ----------------- */
/* words: the lane's chunk (4 words for 4-bit formats, 8 for FP8); sraw: its block-scale entry
 * slice (INT4 sym / MXFP4: .x; INT4 asym / NVFP4: .x and .y).  a: the four A registers. */
template <int F> struct Deq;

template <> struct Deq<QF_WFMT_INT4> {
    static constexpr int LW = 1; /* uint4 per lane per chunk */
    QFK_HD static void step(const uint32_t *words, uint2 sraw, int j, bool asym, uint32_t (&a)[4])
    {
        const uint32_t s_lo = prmt(sraw.x, 0, 0x1010), s_hi = prmt(sraw.x, 0, 0x3232);
        const uint32_t z_lo = asym ? prmt(sraw.y, 0, 0x1010) : 0x43084308u; /* bf16 136 = 128 + 8 */
        const uint32_t z_hi = asym ? prmt(sraw.y, 0, 0x3232) : 0x43084308u;
        const uint32_t w = words[j];
QFK_UNROLL
        for (int i = 0; i < 4; i++) {
            uint32_t v = ((w >> (4 * i)) & 0x000F000Fu) | 0x43004300u; /* bf16x2 (128 + q_u) */
            v = bf16x2_sub(v, (i & 1) ? z_hi : z_lo);                  /* exact: q_u - zp_u */
            a[i] = bf16x2_mul(v, (i & 1) ? s_hi : s_lo);
        }
    }
};

QFK_HD void fp4_step(uint32_t w, uint32_t s_lo, uint32_t s_hi, uint32_t (&a)[4])
{
QFK_UNROLL
    for (int i = 0; i < 4; i++) {
        const uint32_t q = w << (4 * i);
        const uint32_t v = (q & 0x80008000u) | ((q & 0x70007000u) >> 6); /* fp4 * 2^-126 as bf16x2 */
        a[i] = bf16x2_mul(v, (i & 1) ? s_hi : s_lo);
    }
}

template <> struct Deq<QF_WFMT_NVFP4> {
    static constexpr int LW = 1;
    QFK_HD static void step(const uint32_t *words, uint2 sraw, int j, bool, uint32_t (&a)[4])
    {
        const uint32_t sw = j < 2 ? sraw.x : sraw.y;
        const uint32_t sel = 0x4040u + 0x0202u * (uint32_t)(j & 1); /* bytes {b, 0, b, 0} */
        const uint32_t s_lo = prmt(sw, 0, sel) * 16u + 0x75807580u;
        const uint32_t s_hi = prmt(sw, 0, sel + 0x0101u) * 16u + 0x75807580u;
        fp4_step(words[j], s_lo, s_hi, a);
    }
};

template <> struct Deq<QF_WFMT_MXFP4> {
    static constexpr int LW = 1;
    QFK_HD static void step(const uint32_t *words, uint2 sraw, int j, bool, uint32_t (&a)[4])
    {
        const uint32_t sel = 0x4040u + 0x0202u * (uint32_t)(j >> 1);
        const uint32_t s_lo = prmt(sraw.x, 0, sel) * 128u + 0x3B003B00u;
        const uint32_t s_hi = prmt(sraw.x, 0, sel + 0x0101u) * 128u + 0x3B003B00u;
        fp4_step(words[j], s_lo, s_hi, a);
    }
};

template <> struct Deq<QF_WFMT_FP8> {
    static constexpr int LW = 2;
    QFK_HD static uint32_t e4m3x2(uint32_t w) /* bytes 1 and 3 -> e4m3 * 2^-120 */
    {
        return (w & 0x80008000u) | ((w & 0x7F007F00u) >> 4);
    }
    QFK_HD static void step(const uint32_t *words, uint2, int j, bool, uint32_t (&a)[4])
    {
        const uint32_t w0 = words[2 * j], w1 = words[2 * j + 1], two120 = 0x7B807B80u;
        a[0] = bf16x2_mul(e4m3x2(w0), two120);
        a[1] = bf16x2_mul(e4m3x2(w0 << 8), two120);
        a[2] = bf16x2_mul(e4m3x2(w1), two120);
        a[3] = bf16x2_mul(e4m3x2(w1 << 8), two120);
    }
};

/* Position of element e (0..7, see the layout comment) inside a lane's step: the nibble index in
 * the step's word (4-bit formats) or the byte index in the step's two words (FP8). */
QFK_HD int slot_of(int fmt, int e)
{
    if (fmt == QF_WFMT_INT4) return (e >> 1) + 4 * (e & 1);
    if (fmt == QF_WFMT_FP8) return 4 * (e >> 2) + (e & 1 ? 3 : 1) - ((e >> 1) & 1);
    return 3 - (e >> 1) + 4 * (e & 1); /* NVFP4, MXFP4 */
}

/* A lane's block-scale slice for (row block rb, chunk c); g = lane / 4. */
template <int F> QFK_HD uint2 load_sraw(const qf_wq_view &v, int rb, int c, int g)
{
    if (F == QF_WFMT_INT4) {
        const uint8_t *e = v.s + ((size_t)rb * v.ng + c / v.cpg) * (v.asym ? 64 : 32);
        return v.asym ? ldro((const uint2 *)(e + 8 * g)) : make_uint2(ldro((const uint32_t *)(e + 4 * g)), 0u);
    }
    if (F == QF_WFMT_NVFP4) return ldro((const uint2 *)(v.s + ((size_t)rb * v.kc + c) * 64 + 8 * g));
    if (F == QF_WFMT_MXFP4) return make_uint2(ldro((const uint32_t *)(v.s + ((size_t)rb * v.kc + c) * 32 + 4 * g)), 0u);
    return make_uint2(0u, 0u);
}

} /* namespace qfk */

#endif /* QF_CUDA_INTERNAL_CUH */
