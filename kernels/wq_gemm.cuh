/* wq_gemm.cuh - internal to kernels/: the weight-only dequant-matmul kernels, templated on the
 * weight format, instantiated by w4a16_gemm.cu (INT4), fp4_gemm.cu (NVFP4, MXFP4) and
 * fp8_gemm.cu (FP8 W8A16).
 *
 * Both kernels compute y[m, n] = x[m, k] . W^T with the weights as the A operand of
 * mma.sync.m16n8k16 (16 weight rows x 16 k per fragment, dequantized in registers from the
 * repacked layout of qf_cuda_internal.cuh) and the tokens as the n8 B operand, fp32 accumulation.
 *
 * GEMV (m <= 16, the memory-bound decode case).  A CTA is 4 warps x 2 row blocks = 128 weight
 * rows and a contiguous range of k chunks (split-K over blockIdx.y so that about 4 CTAs per SM
 * are in flight).  Each lane streams its 16 B (FP8: 32 B) per chunk with ld.global.nc
 * L1::no_allocate and an L2 evict-first policy, prefetching the next D chunks into registers
 * while it computes the current D, so every weight byte is read once with 128-bit loads.  The
 * m tokens (padded to 8 or 16) of the current 512-k slice of x sit in shared memory, read with
 * ldmatrix.x4 and reused by every row block of the CTA.
 *
 * TILED (larger m).  A CTA computes a 128 (rows) x 128 (tokens) tile with 4 warps of 64 x 64,
 * k in chunks of 64 through a 4-stage cp.async pipeline (x tile 16 KB XOR-swizzled for
 * conflict-free ldmatrix, repacked weights 4-8 KB, block scales 512 B per stage; 2 CTAs per
 * SM).  Per k16 step a warp dequantizes 4 A fragments and issues 32 MMAs.  CTAs are rasterized in
 * groups of 16 row tiles so that concurrently running CTAs share weights and activations in L2.
 *
 * Split-K: each split writes float32 partial sums [split, m, n] to context workspace, then the
 * last CTA of an output tile to arrive (an atomic counter per tile, reset by that CTA) adds the
 * splits in split order and writes bf16, so results do not depend on scheduling.
 */
#ifndef QF_WQ_GEMM_CUH
#define QF_WQ_GEMM_CUH

#include "qf_cuda_internal.cuh"

struct qf_wq_args {
    qf_wq_view v;
    const __nv_bfloat16 *x; /* [m, k] */
    __nv_bfloat16 *y;       /* [m, n] */
    int m;
    int ksplit;
    float *part; /* [ksplit, m, n] when ksplit > 1 */
    int *cnt;    /* one counter per output tile, zero on entry and on exit */
};

#define QF_GEMV_WARPS 4
#define QF_GEMV_RW 2    /* row blocks per warp */
#define QF_GEMV_SUBC 8  /* chunks of x staged in shared memory at a time (512 k) */
#define QF_GEMV_ROWS (QF_GEMV_WARPS * QF_GEMV_RW * QF_RB_ROWS)

namespace qfk {

__device__ __forceinline__ float epi_scale(const qf_wq_view &v, int row)
{
    return v.rs ? v.alpha * v.rs[row] : v.alpha;
}

/* ---- index maps shared with the CPU emulator (kernels/dev/emulate_wq.cu) ---------------------- */

/* Accumulator element i (0..3) of an m16n8 fragment held by `lane`: row and token offsets. */
QFK_HD void frag_c_pos(int lane, int i, int *drow, int *dtok)
{
    *drow = (lane >> 2) + 8 * (i >> 1);
    *dtok = 2 * (lane & 3) + (i & 1);
}
/* GEMV: the x row (token) and column of shared memory whose address `lane` gives to ldmatrix.x4
 * for token tile nt, chunk column xc, steps {0,1} (half 0) or {2,3} (half 1). */
QFK_HD void gemv_ldsm_src(int lane, int nt, int xc, int half, int *tok, int *col)
{
    *tok = nt * 8 + (lane & 7);
    *col = xc + 32 * half + (lane >> 3) * 8;
}
/* TILED: byte offset of 16-byte chunk ch (8 k) of token row tok in the XOR-swizzled x tile. */
QFK_HD int tile_x_off(int tok, int ch) { return tok * 128 + ((ch ^ (tok & 7)) << 4); }
/* TILED: the token row and chunk whose address `lane` gives to ldmatrix.x4 for token tiles
 * (2q, 2q+1) of warp column wc at k16 step j. */
QFK_HD void tile_ldsm_src(int lane, int wc, int q, int j, int *tok, int *ch)
{
    *tok = wc * 64 + (2 * q + (lane >> 4)) * 8 + (lane & 7);
    *ch = 2 * j + ((lane >> 3) & 1);
}

/* The k chunks [*kc0, *kc1) of split ks of ksplit (both kernels). */
QFK_HD void split_range(int kc, int ks, int ksplit, int *kc0, int *kc1)
{
    *kc0 = (int)((int64_t)kc * ks / ksplit);
    *kc1 = (int)((int64_t)kc * (ks + 1) / ksplit);
}
/* GEMV: the first chunk of the x slice staged in shared memory for the prefetch group starting at
 * chunk c0 of a split starting at kc0 (slices of QF_GEMV_SUBC chunks from kc0, which need not be a
 * multiple of QF_GEMV_SUBC); the group stages it when c0 equals it. */
QFK_HD int gemv_sub0(int kc0, int c0) { return kc0 + (c0 - kc0) / QF_GEMV_SUBC * QF_GEMV_SUBC; }

/* Called by every thread of a CTA after it wrote its partial sums for rows [n0, n0 + nrows) and
 * tokens [m0, m0 + ntok): the last split to arrive reduces and writes y. */
__device__ __forceinline__ void splitk_finalize(const qf_wq_args &p, int tile, int n0, int nrows, int m0, int ntok)
{
    __shared__ int s_last;
    __threadfence();
    __syncthreads();
    if (threadIdx.x == 0) s_last = atomicAdd(&p.cnt[tile], 1) == p.ksplit - 1;
    __syncthreads();
    if (!s_last) return;
    __threadfence();
    const int n = p.v.n, m = p.m;
    for (int idx = threadIdx.x; idx < nrows * ntok; idx += blockDim.x) {
        const int row = n0 + idx % nrows, tok = m0 + idx / nrows;
        if (row >= n || tok >= m) continue;
        float s = 0.0f;
        for (int ks = 0; ks < p.ksplit; ks++) s += __ldcg(p.part + ((size_t)ks * m + tok) * n + row);
        p.y[(size_t)tok * n + row] = __float2bfloat16_rn(s * epi_scale(p.v, row));
    }
    if (threadIdx.x == 0) p.cnt[tile] = 0;
}

/* Store one accumulator fragment (16 rows from row0, 8 tokens from tok0): direct bf16 output,
 * or the split's partial sums. */
__device__ __forceinline__ void store_frag(const qf_wq_args &p, const float (&c)[4], int row0, int tok0, int ks)
{
    const int lane = threadIdx.x & 31;
#pragma unroll
    for (int i = 0; i < 4; i++) {
        int dr, dt;
        frag_c_pos(lane, i, &dr, &dt);
        const int row = row0 + dr, tok = tok0 + dt;
        if (row >= p.v.n || tok >= p.m) continue;
        if (p.ksplit == 1) p.y[(size_t)tok * p.v.n + row] = __float2bfloat16_rn(c[i] * epi_scale(p.v, row));
        else p.part[((size_t)ks * p.m + tok) * p.v.n + row] = c[i];
    }
}

/* ---- GEMV ----------------------------------------------------------------------------------- */

template <int F, int MT> /* MT: n8 token tiles (m <= 8 * MT) */
__global__ void __launch_bounds__(QF_GEMV_WARPS * 32) qf_wq_gemv_kernel(const qf_wq_args p)
{
    constexpr int LW = Deq<F>::LW;
    constexpr int D = LW == 1 ? 4 : 2; /* chunks per prefetch group; divides QF_GEMV_SUBC */
    constexpr int RW = QF_GEMV_RW;
    constexpr int XP = QF_GEMV_SUBC * QF_CHUNK_K + 8; /* row pitch: +16 B keeps ldmatrix conflict-free */
    __shared__ __align__(16) __nv_bfloat16 xs[MT * 8][XP];

    const qf_wq_view &v = p.v;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, g = lane >> 2;
    const int rt = blockIdx.x, ks = blockIdx.y;
    int kc0, kc1;
    split_range(v.kc, ks, p.ksplit, &kc0, &kc1);
    const int rbw = rt * (QF_GEMV_WARPS * RW) + warp * RW; /* first row block of this warp */
    const uint64_t pol = evict_first_policy();

    float acc[RW][MT][4];
#pragma unroll
    for (int r = 0; r < RW; r++)
#pragma unroll
        for (int nt = 0; nt < MT; nt++)
#pragma unroll
            for (int i = 0; i < 4; i++) acc[r][nt][i] = 0.0f;

    struct Group {
        uint4 q[D][RW][LW];
        uint2 s[D][RW];
    };
    auto load = [&](Group &gr, int c0) {
#pragma unroll
        for (int d = 0; d < D; d++)
#pragma unroll
            for (int r = 0; r < RW; r++) {
                const int c = c0 + d, rb = rbw + r;
                const bool ok = c < kc1 && rb < v.rb;
#pragma unroll
                for (int l = 0; l < LW; l++)
                    gr.q[d][r][l] = ok ? ldg_stream(v.q + (((size_t)rb * v.kc + c) * 32 + lane) * LW + l, pol)
                                       : make_uint4(0u, 0u, 0u, 0u);
                gr.s[d][r] = ok ? load_sraw<F>(v, rb, c, g) : make_uint2(0u, 0u);
            }
    };

    Group cur, nxt;
    load(cur, kc0);
    for (int c0 = kc0; c0 < kc1; c0 += D) {
        load(nxt, c0 + D); /* in flight while this group computes */
        const int sub0 = gemv_sub0(kc0, c0);
        if (c0 == sub0) { /* stage x[:, sub0 .. sub0 + 8 chunks) */
            __syncthreads();
            const int cend = min(sub0 + QF_GEMV_SUBC, kc1), nvec = (cend - sub0) * (QF_CHUNK_K / 8);
            for (int i = threadIdx.x; i < MT * 8 * nvec; i += blockDim.x) {
                const int tok = i / nvec, vv = i % nvec;
                uint4 val = make_uint4(0u, 0u, 0u, 0u);
                if (tok < p.m) val = __ldg((const uint4 *)(p.x + (size_t)tok * v.k + (size_t)sub0 * QF_CHUNK_K) + vv);
                *(uint4 *)&xs[tok][vv * 8] = val;
            }
            __syncthreads();
        }
#pragma unroll
        for (int d = 0; d < D; d++) {
            const int c = c0 + d;
            if (c >= kc1) break;
            const int xc = (c - sub0) * QF_CHUNK_K;
            uint32_t b[MT][4][2]; /* [token tile][k16 step][register] */
#pragma unroll
            for (int nt = 0; nt < MT; nt++) {
                int tok, col;
                gemv_ldsm_src(lane, nt, xc, 0, &tok, &col);
                ldsm_x4(b[nt][0][0], b[nt][0][1], b[nt][1][0], b[nt][1][1], &xs[tok][col]);
                gemv_ldsm_src(lane, nt, xc, 1, &tok, &col);
                ldsm_x4(b[nt][2][0], b[nt][2][1], b[nt][3][0], b[nt][3][1], &xs[tok][col]);
            }
#pragma unroll
            for (int r = 0; r < RW; r++) {
                uint32_t words[4 * LW];
#pragma unroll
                for (int l = 0; l < LW; l++) {
                    words[4 * l] = cur.q[d][r][l].x, words[4 * l + 1] = cur.q[d][r][l].y;
                    words[4 * l + 2] = cur.q[d][r][l].z, words[4 * l + 3] = cur.q[d][r][l].w;
                }
#pragma unroll
                for (int j = 0; j < 4; j++) {
                    uint32_t a[4];
                    Deq<F>::step(words, cur.s[d][r], j, v.asym != 0, a);
#pragma unroll
                    for (int nt = 0; nt < MT; nt++) mma_bf16(acc[r][nt], a, b[nt][j][0], b[nt][j][1]);
                }
            }
        }
        cur = nxt;
    }

#pragma unroll
    for (int r = 0; r < RW; r++)
#pragma unroll
        for (int nt = 0; nt < MT; nt++) store_frag(p, acc[r][nt], (rbw + r) * QF_RB_ROWS, nt * 8, ks);
    if (p.ksplit > 1) splitk_finalize(p, rt, rt * QF_GEMV_ROWS, QF_GEMV_ROWS, 0, p.m);
}

/* ---- TILED ---------------------------------------------------------------------------------- */

#define QF_TILE_ROWS 128
#define QF_TILE_TOKS 128
#define QF_TILE_STAGES 4
#define QF_TILE_GROUP 16 /* row tiles per rasterization group */
#define QF_TILE_X_BYTES (QF_TILE_TOKS * QF_CHUNK_K * 2)
#define QF_TILE_S_BYTES (8 * 64)

template <int F> struct TileSmem {
    static constexpr int W_BYTES = 8 * 32 * 16 * Deq<F>::LW;
    static constexpr int STAGE = QF_TILE_X_BYTES + W_BYTES + QF_TILE_S_BYTES;
    static constexpr int TOTAL = QF_TILE_STAGES * STAGE;
};

template <int F> __global__ void __launch_bounds__(128, 2) qf_wq_tile_kernel(const qf_wq_args p)
{
    constexpr int LW = Deq<F>::LW;
    constexpr int W_BYTES = TileSmem<F>::W_BYTES, STAGE = TileSmem<F>::STAGE;
    extern __shared__ __align__(128) uint8_t qf_tile_smem[];

    const qf_wq_view &v = p.v;
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, g = lane >> 2;
    const int wr = warp >> 1, wc = warp & 1; /* warp tile: rows wr*64.., tokens wc*64.. */

    /* rasterization: groups of QF_TILE_GROUP row tiles, token tiles inside a group */
    const int tt_count = (p.m + QF_TILE_TOKS - 1) / QF_TILE_TOKS, rt_count = (v.rb + 7) / 8;
    const int bid = blockIdx.x, grp = bid / (QF_TILE_GROUP * tt_count);
    const int first_rt = grp * QF_TILE_GROUP, grows = min(rt_count - first_rt, QF_TILE_GROUP);
    const int within = bid - grp * QF_TILE_GROUP * tt_count;
    const int rt = first_rt + within % grows, tt = within / grows;
    const int rb0 = rt * 8, m0 = tt * QF_TILE_TOKS;

    const int ks = blockIdx.y;
    int kc0, kc1;
    split_range(v.kc, ks, p.ksplit, &kc0, &kc1);
    const int eb = F == QF_WFMT_INT4 ? (v.asym ? 64 : 32) : F == QF_WFMT_NVFP4 ? 64 : 32;

    auto load_stage = [&](int slot, int c) {
        uint8_t *st = qf_tile_smem + slot * STAGE;
#pragma unroll
        for (int i = 0; i < QF_TILE_TOKS * 8 / 128; i++) { /* x: 128 tokens x 8 chunks of 16 B */
            const int idx = tid + i * 128, tok = idx >> 3, ch = idx & 7;
            const bool ok = m0 + tok < p.m;
            const __nv_bfloat16 *src = p.x + (size_t)(ok ? m0 + tok : 0) * v.k + (size_t)c * QF_CHUNK_K + ch * 8;
            cp_async16(st + tile_x_off(tok, ch), src, ok);
        }
#pragma unroll
        for (int i = 0; i < 2 * LW; i++) { /* weights: 8 row blocks x 32 lanes x LW x 16 B */
            const int idx = tid + i * 128, rbl = idx / (32 * LW), rem = idx % (32 * LW);
            const bool ok = rb0 + rbl < v.rb;
            const uint4 *src = v.q + ((size_t)(ok ? rb0 + rbl : 0) * v.kc + c) * 32 * LW + rem;
            cp_async16(st + QF_TILE_X_BYTES + idx * 16, src, ok);
        }
        if (F != QF_WFMT_FP8) { /* block scales: 8 row blocks x eb bytes, at a 64 B stride */
            const int per = eb / 16;
            if (tid < 8 * per) {
                const int rbl = tid / per, part = tid % per;
                const bool ok = rb0 + rbl < v.rb;
                const size_t entry = F == QF_WFMT_INT4 ? (size_t)(rb0 + rbl) * v.ng + c / v.cpg
                                                       : (size_t)(rb0 + rbl) * v.kc + c;
                cp_async16(st + QF_TILE_X_BYTES + W_BYTES + rbl * 64 + part * 16,
                           v.s + (ok ? entry * eb + part * 16 : 0), ok);
            }
        }
    };

    float acc[4][8][4];
#pragma unroll
    for (int r = 0; r < 4; r++)
#pragma unroll
        for (int nt = 0; nt < 8; nt++)
#pragma unroll
            for (int i = 0; i < 4; i++) acc[r][nt][i] = 0.0f;

#pragma unroll
    for (int s = 0; s < QF_TILE_STAGES - 1; s++) {
        if (kc0 + s < kc1) load_stage(s, kc0 + s);
        cp_async_commit();
    }
    for (int c = kc0; c < kc1; c++) {
        cp_async_wait<QF_TILE_STAGES - 2>();
        __syncthreads(); /* stage c landed for all threads; stage c - 1 is free */
        {
            const int cn = c + QF_TILE_STAGES - 1;
            if (cn < kc1) load_stage((cn - kc0) % QF_TILE_STAGES, cn);
            cp_async_commit();
        }
        const uint8_t *st = qf_tile_smem + ((c - kc0) % QF_TILE_STAGES) * STAGE;
        uint32_t words[4][4 * LW];
        uint2 sraw[4];
#pragma unroll
        for (int r = 0; r < 4; r++) {
            const int rbl = wr * 4 + r;
#pragma unroll
            for (int l = 0; l < LW; l++) {
                const uint4 q = *(const uint4 *)(st + QF_TILE_X_BYTES + ((rbl * 32 + lane) * LW + l) * 16);
                words[r][4 * l] = q.x, words[r][4 * l + 1] = q.y, words[r][4 * l + 2] = q.z, words[r][4 * l + 3] = q.w;
            }
            const uint8_t *se = st + QF_TILE_X_BYTES + W_BYTES + rbl * 64;
            if (F == QF_WFMT_NVFP4 || (F == QF_WFMT_INT4 && v.asym)) sraw[r] = *(const uint2 *)(se + 8 * g);
            else if (F != QF_WFMT_FP8) sraw[r] = make_uint2(*(const uint32_t *)(se + 4 * g), 0u);
            else sraw[r] = make_uint2(0u, 0u);
        }
#pragma unroll
        for (int j = 0; j < 4; j++) {
            uint32_t b[8][2];
#pragma unroll
            for (int q = 0; q < 4; q++) { /* token tiles 2q, 2q+1 of this warp */
                int tok, ch;
                tile_ldsm_src(lane, wc, q, j, &tok, &ch);
                ldsm_x4(b[2 * q][0], b[2 * q][1], b[2 * q + 1][0], b[2 * q + 1][1], st + tile_x_off(tok, ch));
            }
#pragma unroll
            for (int r = 0; r < 4; r++) {
                uint32_t a[4];
                Deq<F>::step(words[r], sraw[r], j, v.asym != 0, a);
#pragma unroll
                for (int nt = 0; nt < 8; nt++) mma_bf16(acc[r][nt], a, b[nt][0], b[nt][1]);
            }
        }
    }
    cp_async_wait<0>();

#pragma unroll
    for (int r = 0; r < 4; r++)
#pragma unroll
        for (int nt = 0; nt < 8; nt++)
            store_frag(p, acc[r][nt], (rb0 + wr * 4 + r) * QF_RB_ROWS, m0 + wc * 64 + nt * 8, ks);
    if (p.ksplit > 1) splitk_finalize(p, rt * tt_count + tt, rb0 * QF_RB_ROWS, QF_TILE_ROWS, m0, QF_TILE_TOKS);
}

} /* namespace qfk */

/* ---- host launcher ---------------------------------------------------------------------------- */

static inline int qf_clampi(int64_t x, int lo, int hi) { return (int)(x < lo ? lo : x > hi ? hi : x); }

/* Split of k for `units` CTAs (before splitting) when `slots` CTAs fit on the GPU at once.  Score:
 * the fraction of the last wave that is filled (memory-bound kernels lose a partial wave) times
 * the share of weight bytes in the traffic (each split adds partial sums of `part_bytes`, written
 * and read back).  The smallest split within 2 % of the best score wins; at most ks_max. */
static inline int qf_pick_ksplit(int64_t units, int64_t slots, int ks_max, double weight_bytes, double part_bytes)
{
    int best = 1;
    double best_e = -1.0;
    for (int ks = 1; ks <= ks_max && ks <= 64; ks++) {
        const int64_t ctas = units * ks, waves = (ctas + slots - 1) / slots;
        const double fill = (double)ctas / (double)(waves * slots);
        const double e = fill * weight_bytes / (weight_bytes + (ks > 1 ? ks * 2.0 * part_bytes : 0.0));
        if (e > best_e + 0.02) best = ks, best_e = e;
    }
    return best;
}

/* Launch shape of one weight-only call: output tiles (grid x) and the split of k (grid y), for a
 * GPU that holds `slots` CTAs of the kernel at once.  ksplit_req > 0 forces the split (clamped to
 * [1, kc]); 0 picks it.  Shared with the CPU emulator (kernels/dev/emulate_wq.cu). */
struct qf_wq_plan {
    int tiles, ksplit;
};
static inline qf_wq_plan qf_wq_plan_of(const qf_wq_view &v, int gemv, int64_t m, int ksplit_req, int64_t slots,
                                       double weight_bytes)
{
    qf_wq_plan pl;
    const int ks_max = v.kc / 4 > 1 ? v.kc / 4 : 1; /* >= 256 k per split */
    if (gemv) pl.tiles = (v.rb + QF_GEMV_WARPS * QF_GEMV_RW - 1) / (QF_GEMV_WARPS * QF_GEMV_RW);
    else pl.tiles = (int)(((int64_t)(v.rb + 7) / 8) * ((m + QF_TILE_TOKS - 1) / QF_TILE_TOKS));
    if (ksplit_req > 0) pl.ksplit = qf_clampi(ksplit_req, 1, v.kc);
    else if (!gemv && pl.tiles >= 4 * slots) pl.ksplit = 1;
    else pl.ksplit = qf_pick_ksplit(pl.tiles, slots, ks_max, weight_bytes, 4.0 * (double)m * (double)v.n);
    return pl;
}

template <int F> static qf_status qf_wq_run(qf_cuda_ctx *ctx, const qf_wq_call *call, qf_error *err)
{
    qf_wq_args p;
    p.v = qf_wq_view_of(call->w);
    p.x = (const __nv_bfloat16 *)call->x;
    p.y = (__nv_bfloat16 *)call->y;
    p.m = (int)call->m;
    p.part = NULL;
    p.cnt = (int *)ctx->cnt.p;
    const int sms = ctx->sm_count, gemv = call->path == QF_MM_GEMV;
    const int gemv_mt2 = p.m > 8;
    /* resident CTAs per SM, queried once per context (and device): also the point where the
     * TILED kernel's dynamic shared memory limit is raised on this device */
    int *per_sm = &ctx->occupancy[call->path == QF_MM_GEMV ? gemv_mt2 : 2][F];
    if (gemv) {
        if (!*per_sm && gemv_mt2)
            QF_CUDA_TRY(cudaOccupancyMaxActiveBlocksPerMultiprocessor(per_sm, qfk::qf_wq_gemv_kernel<F, 2>,
                                                                      QF_GEMV_WARPS * 32, 0));
        else if (!*per_sm)
            QF_CUDA_TRY(cudaOccupancyMaxActiveBlocksPerMultiprocessor(per_sm, qfk::qf_wq_gemv_kernel<F, 1>,
                                                                      QF_GEMV_WARPS * 32, 0));
    } else {
        if (!*per_sm) {
            QF_CUDA_TRY(cudaFuncSetAttribute(qfk::qf_wq_tile_kernel<F>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                             qfk::TileSmem<F>::TOTAL));
            QF_CUDA_TRY(cudaOccupancyMaxActiveBlocksPerMultiprocessor(per_sm, qfk::qf_wq_tile_kernel<F>, 128,
                                                                      qfk::TileSmem<F>::TOTAL));
        }
    }
    if (*per_sm < 1) *per_sm = 1;
    const int64_t slots = (int64_t)sms * *per_sm;
    const qf_wq_plan pl = qf_wq_plan_of(p.v, gemv, p.m, call->ksplit, slots, (double)call->w->bytes);
    const int tiles = pl.tiles;
    p.ksplit = pl.ksplit;
    const dim3 grid((unsigned)tiles, (unsigned)p.ksplit);
    if (p.ksplit > 1) {
        QF_TRY(qf_dbuf_reserve(&ctx->part, (size_t)p.ksplit * (size_t)p.m * (size_t)p.v.n * sizeof(float), 0, err));
        QF_TRY(qf_dbuf_reserve(&ctx->cnt, (size_t)tiles * sizeof(int), 1, err));
        p.part = (float *)ctx->part.p;
        p.cnt = (int *)ctx->cnt.p;
    }
    if (gemv) {
        if (gemv_mt2) qfk::qf_wq_gemv_kernel<F, 2><<<grid, QF_GEMV_WARPS * 32, 0, call->stream>>>(p);
        else qfk::qf_wq_gemv_kernel<F, 1><<<grid, QF_GEMV_WARPS * 32, 0, call->stream>>>(p);
        QF_CUDA_LAUNCHED("qf_wq_gemv_kernel");
    } else {
        qfk::qf_wq_tile_kernel<F><<<grid, 128, qfk::TileSmem<F>::TOTAL, call->stream>>>(p);
        QF_CUDA_LAUNCHED("qf_wq_tile_kernel");
    }
    return QF_OK;
}

#endif /* QF_WQ_GEMM_CUH */
