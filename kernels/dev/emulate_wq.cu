/* emulate_wq.cu - the weight-only kernels' data path executed on the CPU, for machines without a
 * GPU.  Built and run by `make test` ($(BUILD)/emulate_wq, needs nvcc, no GPU).
 *
 * What runs for real: the DEVICE branches of the production code's QFK_HD functions.  The host
 * pass of this file includes repack.cu and wq_gemm.cuh with __CUDA_ARCH__ defined, so the
 * `#ifdef __CUDA_ARCH__` side of every primitive (prmt, bf16x2_mul / _sub, ldro, qf_flag) is the
 * code executed here - the text the GPU compiler sees - with the few device intrinsics it calls
 * (__byte_perm, __hmul2, __hsub2, __ldg, atomicOr) defined below from the PTX ISA / CUDA
 * documentation.  (The host branches were what ran before, so a device branch that was wrong -
 * prmt calling itself instead of __byte_perm, leaving every INT4/NVFP4/MXFP4 scale an undefined
 * register on the GPU - went unnoticed.)  On top of those: the repack of a checkpoint weight
 * (qf_repack_lane / qf_repack_entry), the scale slice loads (load_sraw), the in-register
 * dequantizers (Deq<F>::step), the kernels' index maps (gemv_ldsm_src, gemv_sub0, split_range,
 * tile_x_off, tile_ldsm_src, frag_c_pos) and the host launcher's choice of grid and split
 * (qf_wq_plan_of, with qf_pick_ksplit).  Emulated from the PTX ISA: ldmatrix.x4 and
 * mma.m16n8k16.  Re-stated here: the loop structure of the GEMV and TILED kernels (prefetch groups,
 * x staging, stage layout, rasterization, row-block guards), and split-K as the GPU does it -
 * partial sums in a NaN-filled buffer, an arrival counter per output tile shared by all calls of a
 * case (as ctx->cnt), CTAs run in a shuffled order, the last arrival reducing its tile and resetting
 * the counter.  Outputs are pre-filled with NaN like tests/gpu_test_kernels.c, every run of that
 * test's matmul list (GEMV / TILED, automatic split for an H100 and for a small GPU, fixed splits)
 * is checked against qf_ref_matmul with its bound, and counters must be zero after every call.
 * The pipelining and synchronization are not emulated.  A watchdog turns a hang into a failure.
 */
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <utility>
#include <vector>

#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include "qf_cuda_check.h"
#include "qf_kernels.h"
#include "qf_fmt.h"

#ifndef __CUDA_ARCH__ /* host pass: device branches, device intrinsics emulated */
#define QFK_EMU_DEVICE_BRANCHES 1
/* __byte_perm(x, y, s) = prmt.b32 default mode: byte n of the result is byte ((s >> 4n) & 7) of
 * the 8-byte value {y:x} (x in bytes 0-3); the upper 16 bits of s are ignored. */
static uint32_t qfk_emu_byte_perm(uint32_t x, uint32_t y, uint32_t s)
{
    const uint64_t v = (uint64_t)y << 32 | x;
    uint32_t r = 0;
    for (int n = 0; n < 4; n++) r |= (uint32_t)((v >> (8 * ((s >> (4 * n)) & 7))) & 0xff) << (8 * n);
    return r;
}
/* mul.rn.bf16x2 / sub.rn.bf16x2: per half, the exact result rounded to nearest even, subnormals
 * kept.  The product of two bf16 is exact in float; the differences used (small integers) too. */
static __nv_bfloat162 qfk_emu_bf16x2(__nv_bfloat162 a, __nv_bfloat162 b, int sub)
{
    uint32_t ua, ub, ur = 0;
    memcpy(&ua, static_cast<const void *>(&a), 4), memcpy(&ub, static_cast<const void *>(&b), 4);
    for (int h = 0; h < 2; h++) {
        const float x = qf_bf16_to_f32((uint16_t)(ua >> (16 * h))), y = qf_bf16_to_f32((uint16_t)(ub >> (16 * h)));
        ur |= (uint32_t)qf_f32_to_bf16(sub ? x - y : x * y) << (16 * h);
    }
    __nv_bfloat162 r;
    memcpy(static_cast<void *>(&r), &ur, 4);
    return r;
}
static __nv_bfloat162 qfk_emu_hmul2(__nv_bfloat162 a, __nv_bfloat162 b) { return qfk_emu_bf16x2(a, b, 0); }
static __nv_bfloat162 qfk_emu_hsub2(__nv_bfloat162 a, __nv_bfloat162 b) { return qfk_emu_bf16x2(a, b, 1); }
template <class T> static T qfk_emu_ldg(const T *p) { return *p; }
static int qfk_emu_atomic_or(int *p, int v)
{
    const int old = *p;
    *p |= v;
    return old;
}
#define __CUDA_ARCH__ 900
#define __byte_perm qfk_emu_byte_perm
#define __hmul2 qfk_emu_hmul2
#define __hsub2 qfk_emu_hsub2
#define __ldg qfk_emu_ldg
#define atomicOr qfk_emu_atomic_or
#endif

#include "../repack.cu"
#include "../wq_gemm.cuh"

#ifdef QFK_EMU_DEVICE_BRANCHES
#undef __CUDA_ARCH__
#undef __byte_perm
#undef __hmul2
#undef __hsub2
#undef __ldg
#undef atomicOr
#endif

using std::vector;

/* ---- PTX semantics ------------------------------------------------------------------------------ */

/* ldmatrix.sync.aligned.m8n8.x4.shared.b16: src[lane] = the row address lane gives */
static void emu_ldsm_x4(const uint16_t *const src[32], uint32_t out[32][4])
{
    for (int l = 0; l < 32; l++)
        for (int i = 0; i < 4; i++) {
            const uint16_t *row = src[8 * i + l / 4];
            out[l][i] = row[2 * (l % 4)] | (uint32_t)row[2 * (l % 4) + 1] << 16;
        }
}

static float bf(uint32_t reg, int h) { return qf_bf16_to_f32((uint16_t)(reg >> (16 * h))); }

/* mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32: c[lane][i] += (A . B) at the lane's slots */
static void emu_mma(const uint32_t a[32][4], const uint32_t b[32][2], float c[32][4])
{
    float A[16][16], B[16][8];
    for (int l = 0; l < 32; l++) {
        const int g = l >> 2, t = l & 3;
        for (int i = 0; i < 4; i++)
            for (int h = 0; h < 2; h++) A[g + 8 * (i & 1)][2 * t + h + 8 * (i >> 1)] = bf(a[l][i], h);
        for (int i = 0; i < 2; i++)
            for (int h = 0; h < 2; h++) B[2 * t + h + 8 * i][g] = bf(b[l][i], h);
    }
    for (int l = 0; l < 32; l++)
        for (int i = 0; i < 4; i++) {
            const int row = (l >> 2) + 8 * (i >> 1), col = 2 * (l & 3) + (i & 1);
            float s = 0;
            for (int kk = 0; kk < 16; kk++) s += A[row][kk] * B[kk][col];
            c[l][i] += s;
        }
}

/* ---- host repack (the device kernels' per-thread functions, looped) ------------------------------- */

struct HostRepacked {
    vector<uint8_t> buf;
    qf_gpu_weight gw;
    int flag = 0;
};

template <int F> static void host_repack(const qf_ct_weight &w, HostRepacked &r)
{
    qf_repack_sections sec = {0, 0, 0, 0};
    qf_error err = {QF_OK, {0}};
    if (qf_repack_plan(&w.l, &sec, &err) != QF_OK) {
        fprintf(stderr, "plan: %s\n", err.msg);
        exit(2);
    }
    r.buf.assign(sec.total, 0xEE);
    const int rbs = (int)qf_rl_rowblocks(w.l.n), kc = (int)(w.l.k / QF_CHUNK_K);
    const int ng = F == QF_WFMT_INT4 ? (int)(w.l.k / w.l.group_size) : 0;
    constexpr int LW = qfk::Deq<F>::LW;
    uint4 *q = (uint4 *)(r.buf.data() + sec.q_off);
    for (int64_t idx = 0; idx < (int64_t)rbs * kc * 32; idx++) {
        uint32_t words[4 * LW];
        const int pair = (int)(idx >> 5);
        qf_repack_lane<F>(w, pair / kc, pair % kc, (int)(idx & 31), words, &r.flag);
        for (int l = 0; l < LW; l++) q[idx * LW + l] = make_uint4(words[4 * l], words[4 * l + 1], words[4 * l + 2], words[4 * l + 3]);
    }
    if (F != QF_WFMT_FP8) {
        const int64_t entries = (int64_t)rbs * (F == QF_WFMT_INT4 ? ng : kc);
        for (int64_t idx = 0; idx < entries * 8; idx++)
            qf_repack_entry<F>(w, idx >> 3, (int)(idx & 7), kc, ng, r.buf.data() + sec.s_off, &r.flag);
    } else {
        float *rs = (float *)(r.buf.data() + sec.rs_off);
        for (int row = 0; row < rbs * QF_RB_ROWS; row++)
            rs[row] = row < w.l.n ? qf_bf16_to_f32(((const uint16_t *)w.scale)[w.l.per_tensor ? 0 : row]) : 0.0f;
    }
    r.gw.l = w.l;
    r.gw.data = r.buf.data();
    r.gw.bytes = sec.total;
    r.gw.alpha = F == QF_WFMT_NVFP4 ? 256.0f / w.global_scale : F == QF_WFMT_MXFP4 ? 256.0f : 1.0f;
    r.gw.q_offset = sec.q_off, r.gw.s_offset = sec.s_off, r.gw.rs_offset = sec.rs_off;
}

static float epi(const qf_wq_view &v, int row) { return v.rs ? v.alpha * v.rs[row] : v.alpha; }

/* ---- dequantization through the A fragments ------------------------------------------------------- */

template <int F> static void emu_dequant(const qf_wq_view &v, vector<float> &W)
{
    constexpr int LW = qfk::Deq<F>::LW;
    W.assign((size_t)v.rb * 16 * v.k, NAN);
    for (int rb = 0; rb < v.rb; rb++)
        for (int c = 0; c < v.kc; c++)
            for (int lane = 0; lane < 32; lane++) {
                const int g = lane >> 2, t = lane & 3;
                uint32_t words[4 * LW];
                memcpy(words, v.q + (((size_t)rb * v.kc + c) * 32 + lane) * LW, 16 * LW);
                const uint2 sraw = qfk::load_sraw<F>(v, rb, c, g);
                for (int j = 0; j < 4; j++) {
                    uint32_t a[4];
                    qfk::Deq<F>::step(words, sraw, j, v.asym != 0, a);
                    for (int i = 0; i < 4; i++)
                        for (int h = 0; h < 2; h++) {
                            const int row = rb * 16 + g + 8 * (i & 1), col = c * 64 + 16 * j + 2 * t + h + 8 * (i >> 1);
                            W[(size_t)row * v.k + col] = bf(a[i], h);
                        }
                }
            }
}

/* ---- split-K as the kernels do it ----------------------------------------------------------------- */

/* store_frag: one accumulator element to y (no split) or to the split's partial sums */
static void emu_store(const qf_wq_view &v, int m, int ksplit, int ks, float val, int row, int tok, vector<uint16_t> &y,
                      vector<float> &part)
{
    if (row >= v.n || tok >= m) return;
    if (ksplit == 1) y[(size_t)tok * v.n + row] = qf_f32_to_bf16(val * epi(v, row));
    else part[((size_t)ks * m + tok) * v.n + row] = val;
}

/* splitk_finalize: arrive on the tile's counter; the last split reduces the tile in split order,
 * writes y and resets the counter. */
static void emu_finalize(const qf_wq_view &v, int m, int ksplit, int tile, int n0, int nrows, int m0, int ntok,
                         vector<uint16_t> &y, const vector<float> &part, vector<int> &cnt)
{
    if (tile < 0 || tile >= (int)cnt.size()) {
        printf("FAIL: split-K counter index %d outside the %zu counters reserved\n", tile, cnt.size());
        exit(1);
    }
    if (cnt[tile]++ != ksplit - 1) return;
    for (int idx = 0; idx < nrows * ntok; idx++) {
        const int row = n0 + idx % nrows, tok = m0 + idx / nrows;
        if (row >= v.n || tok >= m) continue;
        float s = 0.0f;
        for (int ks = 0; ks < ksplit; ks++) s += part[((size_t)ks * m + tok) * v.n + row];
        y[(size_t)tok * v.n + row] = qf_f32_to_bf16(s * epi(v, row));
    }
    cnt[tile] = 0;
}

/* ---- GEMV: one CTA (row tile rt, split ks) -------------------------------------------------------- */

template <int F>
static void emu_gemv_cta(const qf_wq_view &v, const uint16_t *x, int m, int ksplit, int rt, int ks, vector<uint16_t> &y,
                         vector<float> &part, vector<int> &cnt)
{
    constexpr int LW = qfk::Deq<F>::LW, RW = QF_GEMV_RW, SUBC = QF_GEMV_SUBC, XP = SUBC * 64 + 8;
    constexpr int D = LW == 1 ? 4 : 2; /* the kernel's prefetch group */
    const int MT = m <= 8 ? 1 : 2;
    int kc0, kc1;
    qfk::split_range(v.kc, ks, ksplit, &kc0, &kc1);
    vector<uint16_t> xs((size_t)MT * 8 * XP, 0xFFFF); /* shared memory never staged reads as NaN */
    static float acc[QF_GEMV_WARPS][RW][2][32][4];
    memset(acc, 0, sizeof acc);
    for (int c0 = kc0; c0 < kc1; c0 += D) {
        const int sub0 = qfk::gemv_sub0(kc0, c0);
        if (c0 == sub0) { /* stage x[:, sub0 .. min(sub0 + SUBC, kc1)) */
            const int cend = sub0 + SUBC < kc1 ? sub0 + SUBC : kc1, nvec = (cend - sub0) * 8;
            for (int i = 0; i < MT * 8 * nvec; i++) {
                const int tok = i / nvec, vv = i % nvec;
                for (int e = 0; e < 8; e++)
                    xs[(size_t)tok * XP + vv * 8 + e] = tok < m ? x[(size_t)tok * v.k + (size_t)sub0 * 64 + vv * 8 + e] : 0;
            }
        }
        for (int d = 0; d < D; d++) {
            const int c = c0 + d;
            if (c >= kc1) break;
            const int xc = (c - sub0) * 64;
            if (xc < 0 || xc + 64 > SUBC * 64) {
                printf("FAIL: gemv chunk %d of split [%d, %d) reads x columns [%d, %d) of the staged slice\n", c, kc0, kc1, xc, xc + 64);
                exit(1);
            }
            uint32_t b[2][4][32][2];
            for (int nt = 0; nt < MT; nt++)
                for (int half = 0; half < 2; half++) {
                    const uint16_t *src[32];
                    for (int l = 0; l < 32; l++) {
                        int tok, col;
                        qfk::gemv_ldsm_src(l, nt, xc, half, &tok, &col);
                        src[l] = &xs[(size_t)tok * XP + col];
                    }
                    uint32_t out[32][4];
                    emu_ldsm_x4(src, out);
                    for (int l = 0; l < 32; l++) {
                        b[nt][2 * half][l][0] = out[l][0], b[nt][2 * half][l][1] = out[l][1];
                        b[nt][2 * half + 1][l][0] = out[l][2], b[nt][2 * half + 1][l][1] = out[l][3];
                    }
                }
            for (int warp = 0; warp < QF_GEMV_WARPS; warp++)
                for (int r = 0; r < RW; r++) {
                    const int rb = rt * QF_GEMV_WARPS * RW + warp * RW + r;
                    const bool ok = c < kc1 && rb < v.rb; /* the kernel's load guard: zeros past the last row block */
                    for (int j = 0; j < 4; j++) {
                        uint32_t a[32][4];
                        for (int l = 0; l < 32; l++) {
                            uint32_t words[4 * LW] = {0};
                            if (ok) memcpy(words, v.q + (((size_t)rb * v.kc + c) * 32 + l) * LW, 16 * LW);
                            const uint2 sraw = ok ? qfk::load_sraw<F>(v, rb, c, l >> 2) : make_uint2(0u, 0u);
                            qfk::Deq<F>::step(words, sraw, j, v.asym != 0, a[l]);
                        }
                        for (int nt = 0; nt < MT; nt++) emu_mma(a, b[nt][j], acc[warp][r][nt]);
                    }
                }
        }
    }
    for (int warp = 0; warp < QF_GEMV_WARPS; warp++)
        for (int r = 0; r < RW; r++)
            for (int nt = 0; nt < MT; nt++)
                for (int l = 0; l < 32; l++)
                    for (int i = 0; i < 4; i++) {
                        int dr, dt;
                        qfk::frag_c_pos(l, i, &dr, &dt);
                        emu_store(v, m, ksplit, ks, acc[warp][r][nt][l][i], (rt * QF_GEMV_WARPS * RW + warp * RW + r) * 16 + dr,
                                  nt * 8 + dt, y, part);
                    }
    if (ksplit > 1) emu_finalize(v, m, ksplit, rt, rt * QF_GEMV_ROWS, QF_GEMV_ROWS, 0, m, y, part, cnt);
}

/* ---- TILED: one CTA (block bid, split ks) ---------------------------------------------------------- */

template <int F>
static void emu_tile_cta(const qf_wq_view &v, const uint16_t *x, int m, int ksplit, int bid, int ks, vector<uint16_t> &y,
                         vector<float> &part, vector<int> &cnt)
{
    constexpr int LW = qfk::Deq<F>::LW;
    constexpr int W_BYTES = qfk::TileSmem<F>::W_BYTES, STAGE = qfk::TileSmem<F>::STAGE;
    const int tt_count = (m + 127) / 128, rt_count = (v.rb + 7) / 8;
    const int eb = F == QF_WFMT_INT4 ? (v.asym ? 64 : 32) : F == QF_WFMT_NVFP4 ? 64 : 32;
    const int grp = bid / (QF_TILE_GROUP * tt_count);
    const int first_rt = grp * QF_TILE_GROUP, grows = rt_count - first_rt < QF_TILE_GROUP ? rt_count - first_rt : QF_TILE_GROUP;
    const int within = bid - grp * QF_TILE_GROUP * tt_count;
    const int rt = first_rt + within % grows, tt = within / grows;
    const int rb0 = rt * 8, m0 = tt * 128;
    int kc0, kc1;
    qfk::split_range(v.kc, ks, ksplit, &kc0, &kc1);
    vector<uint8_t> st(STAGE);
    static float acc[4][4][8][32][4];
    memset(acc, 0, sizeof acc);
    for (int c = kc0; c < kc1; c++) {
        /* load_stage(c), thread by thread */
        memset(st.data(), 0xCD, st.size());
        for (int tid = 0; tid < 128; tid++) {
            for (int i = 0; i < 8; i++) {
                const int idx = tid + i * 128, tok = idx >> 3, ch = idx & 7;
                const bool ok = m0 + tok < m;
                if (ok) memcpy(&st[qfk::tile_x_off(tok, ch)], x + (size_t)(m0 + tok) * v.k + (size_t)c * 64 + ch * 8, 16);
                else memset(&st[qfk::tile_x_off(tok, ch)], 0, 16);
            }
            for (int i = 0; i < 2 * LW; i++) {
                const int idx = tid + i * 128, rbl = idx / (32 * LW), rem = idx % (32 * LW);
                const bool ok = rb0 + rbl < v.rb;
                if (ok) memcpy(&st[QF_TILE_X_BYTES + idx * 16], v.q + ((size_t)(rb0 + rbl) * v.kc + c) * 32 * LW + rem, 16);
                else memset(&st[QF_TILE_X_BYTES + idx * 16], 0, 16);
            }
            if (F != QF_WFMT_FP8) {
                const int per = eb / 16;
                if (tid < 8 * per) {
                    const int rbl = tid / per, pt = tid % per;
                    const bool ok = rb0 + rbl < v.rb;
                    const size_t entry = F == QF_WFMT_INT4 ? (size_t)(rb0 + rbl) * v.ng + c / v.cpg : (size_t)(rb0 + rbl) * v.kc + c;
                    if (ok) memcpy(&st[QF_TILE_X_BYTES + W_BYTES + rbl * 64 + pt * 16], v.s + entry * eb + pt * 16, 16);
                    else memset(&st[QF_TILE_X_BYTES + W_BYTES + rbl * 64 + pt * 16], 0, 16);
                }
            }
        }
        for (int warp = 0; warp < 4; warp++) {
            const int wr = warp >> 1, wc = warp & 1;
            for (int j = 0; j < 4; j++) {
                uint32_t b[8][32][2];
                for (int q = 0; q < 4; q++) {
                    const uint16_t *src[32];
                    for (int l = 0; l < 32; l++) {
                        int tok, ch;
                        qfk::tile_ldsm_src(l, wc, q, j, &tok, &ch);
                        src[l] = (const uint16_t *)&st[qfk::tile_x_off(tok, ch)];
                    }
                    uint32_t out[32][4];
                    emu_ldsm_x4(src, out);
                    for (int l = 0; l < 32; l++) {
                        b[2 * q][l][0] = out[l][0], b[2 * q][l][1] = out[l][1];
                        b[2 * q + 1][l][0] = out[l][2], b[2 * q + 1][l][1] = out[l][3];
                    }
                }
                for (int r = 0; r < 4; r++) {
                    const int rbl = wr * 4 + r;
                    uint32_t a[32][4];
                    for (int l = 0; l < 32; l++) {
                        const int g = l >> 2;
                        uint32_t words[4 * LW];
                        memcpy(words, &st[QF_TILE_X_BYTES + ((rbl * 32 + l) * LW) * 16], 16 * LW);
                        const uint8_t *se = &st[QF_TILE_X_BYTES + W_BYTES + rbl * 64];
                        uint2 sraw = make_uint2(0u, 0u);
                        if (F == QF_WFMT_NVFP4 || (F == QF_WFMT_INT4 && v.asym)) memcpy(&sraw, se + 8 * g, 8);
                        else if (F != QF_WFMT_FP8) memcpy(&sraw.x, se + 4 * g, 4);
                        qfk::Deq<F>::step(words, sraw, j, v.asym != 0, a[l]);
                    }
                    for (int nt = 0; nt < 8; nt++) emu_mma(a, b[nt], acc[warp][r][nt]);
                }
            }
        }
    }
    for (int warp = 0; warp < 4; warp++)
        for (int r = 0; r < 4; r++)
            for (int nt = 0; nt < 8; nt++)
                for (int l = 0; l < 32; l++)
                    for (int i = 0; i < 4; i++) {
                        int dr, dt;
                        qfk::frag_c_pos(l, i, &dr, &dt);
                        emu_store(v, m, ksplit, ks, acc[warp][r][nt][l][i], (rb0 + (warp >> 1) * 4 + r) * 16 + dr,
                                  m0 + (warp & 1) * 64 + nt * 8 + dt, y, part);
                    }
    if (ksplit > 1) emu_finalize(v, m, ksplit, rt * tt_count + tt, rb0 * QF_RB_ROWS, QF_TILE_ROWS, m0, QF_TILE_TOKS, y, part, cnt);
}

/* ---- one qf_cuda_matmul call: the launcher's plan, the grid in a shuffled order -------------------- */

static uint64_t rnd();

template <int F>
static void emu_call(const qf_wq_view &v, const uint16_t *x, int m, int gemv, const qf_wq_plan &pl, vector<uint16_t> &y,
                     vector<int> &cnt)
{
    y.assign((size_t)m * v.n, 0xFFFF); /* NaN: unwritten outputs fail */
    vector<float> part(pl.ksplit > 1 ? (size_t)pl.ksplit * m * v.n : 0, NAN); /* cudaMalloc'd, never zeroed */
    if (pl.ksplit > 1 && cnt.size() < (size_t)pl.tiles) cnt.assign((size_t)pl.tiles, 0); /* reserve: zeroed */
    if (!gemv) { /* the rasterization visits every tile once */
        const int tt_count = (m + 127) / 128, rt_count = (v.rb + 7) / 8;
        if (pl.tiles != rt_count * tt_count) {
            printf("FAIL: tiled grid of %d blocks for %d x %d tiles\n", pl.tiles, rt_count, tt_count);
            exit(1);
        }
        vector<int> seen((size_t)pl.tiles, 0);
        for (int bid = 0; bid < pl.tiles; bid++) {
            const int grp = bid / (QF_TILE_GROUP * tt_count);
            const int first_rt = grp * QF_TILE_GROUP, grows = rt_count - first_rt < QF_TILE_GROUP ? rt_count - first_rt : QF_TILE_GROUP;
            const int within = bid - grp * QF_TILE_GROUP * tt_count;
            const int rt = first_rt + within % grows, tt = within / grows;
            if (rt >= rt_count || tt >= tt_count || seen[(size_t)rt * tt_count + tt]++) {
                printf("FAIL: rasterization maps block %d to tile (%d, %d) twice or out of range\n", bid, rt, tt);
                exit(1);
            }
        }
    }
    vector<int> order((size_t)pl.tiles * pl.ksplit);
    for (size_t i = 0; i < order.size(); i++) order[i] = (int)i;
    for (size_t i = order.size(); i > 1; i--) std::swap(order[i - 1], order[rnd() % i]); /* any arrival order */
    for (int o : order) {
        const int bx = o % pl.tiles, ks = o / pl.tiles;
        if (gemv) emu_gemv_cta<F>(v, x, m, pl.ksplit, bx, ks, y, part, cnt);
        else emu_tile_cta<F>(v, x, m, pl.ksplit, bx, ks, y, part, cnt);
    }
    for (size_t i = 0; i < cnt.size(); i++)
        if (cnt[i]) {
            printf("FAIL: split-K counter %zu is %d after the call (must be reset to 0)\n", i, cnt[i]);
            exit(1);
        }
}

/* ---- cases ----------------------------------------------------------------------------------------- */

static uint64_t g_rng = 7;
static uint64_t rnd()
{
    uint64_t z = (g_rng += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}
static float rnormal()
{
    double u1 = 1.0 - (double)(rnd() >> 11) * 0x1p-53, u2 = (double)(rnd() >> 11) * 0x1p-53;
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

static int g_fail = 0;

template <int F> static void run_case(qf_ct_layout l, int random_codes)
{
    const int64_t n = l.n, k = l.k;
    qf_ct_sizes sz;
    qf_error err = {QF_OK, {0}};
    if (qf_ct_layout_check(&l, &sz, &err) != QF_OK) exit(2);
    vector<uint8_t> wt(sz.weight + 16), sc(sz.scale + 16), zp(sz.zero_point + 16);
    qf_ct_weight w = {l, wt.data(), sc.data(), l.asym ? zp.data() : NULL, 1.0f};
    if (random_codes) {
        for (auto &b : wt) b = (uint8_t)rnd();
        for (auto &b : zp) b = (uint8_t)rnd();
        if (F == QF_WFMT_INT4)
            for (size_t i = 0; i < sz.scale / 2; i++) ((uint16_t *)sc.data())[i] = qf_f32_to_bf16(0.002f + 0.01f * (float)(rnd() % 1000) / 1000);
        if (F == QF_WFMT_FP8) {
            for (size_t i = 0; i < sz.weight; i++)
                if ((wt[i] & 0x7f) == 0x7f) wt[i] ^= 1;
            for (size_t i = 0; i < sz.scale / 4; i++) ((float *)sc.data())[i] = 1e-3f * (1 + (float)(rnd() % 1000) / 1000);
        }
        if (F == QF_WFMT_NVFP4) {
            for (size_t i = 0; i < sz.scale; i++) {
                uint8_t c = (uint8_t)(0x18 + rnd() % 0x50);
                if (rnd() % 8 == 0) c = (uint8_t)(rnd() % 8); /* zero and subnormal scales */
                if (rnd() % 8 == 0) c |= 0x80;                /* negative scales */
                sc[i] = c;
            }
            w.global_scale = 500.0f + (float)(rnd() % 2000);
        }
        if (F == QF_WFMT_MXFP4)
            for (size_t i = 0; i < sz.scale; i++) sc[i] = (uint8_t)(112 + rnd() % 25);
    } else {
        vector<float> src((size_t)(n * k));
        for (auto &f : src) f = 0.02f * rnormal();
        if (qf_ref_quantize(&l, src.data(), 0, wt.data(), sc.data(), l.asym ? zp.data() : NULL, &w.global_scale, &err) != QF_OK) exit(2);
    }
    HostRepacked hr;
    host_repack<F>(w, hr);
    const qf_wq_view v = qf_wq_view_of(&hr.gw);
    char name[96];
    snprintf(name, sizeof name, "%s [%lld, %lld]%s%s", qf_wfmt_name(l.fmt), (long long)n, (long long)k, l.asym ? " asym" : "",
             random_codes ? " random-codes" : "");

    /* 1. dequantized A fragments vs the reference dequantization */
    vector<float> ref((size_t)(n * k)), W;
    qf_ref_dequant(&w, 0, n, ref.data(), &err);
    emu_dequant<F>(v, W);
    double worst = 0;
    for (int64_t r = 0; r < n; r++)
        for (int64_t c = 0; c < k; c++) {
            const double got = (double)W[(size_t)(r * k + c)] * epi(v, (int)r), want = ref[(size_t)(r * k + c)];
            /* INT4: one bf16 rounding of (q - zp) s; others exact up to the float rounding of alpha */
            const double b = (F == QF_WFMT_INT4 ? 0x1p-8 : 0x1p-22) * fabs(want) + 1e-38;
            if (!(fabs(got - want) <= b)) {
                if (g_fail++ < 10) printf("FAIL %s dequant (%lld, %lld): fragment %.9g, reference %.9g\n", name, (long long)r, (long long)c, got, want);
            }
            worst = fmax(worst, fabs(got - want) / b);
        }
    printf("  %-40s dequant via A fragments: worst |err|/bound %.3f\n", name, worst);

    /* 2. GEMV and TILED calls, as tests/gpu_test_kernels.c makes them, vs qf_ref_matmul */
    const int mmax = 300;
    vector<uint16_t> xb((size_t)mmax * k);
    vector<float> xf((size_t)mmax * k), yref((size_t)mmax * n), mag((size_t)mmax * n);
    for (size_t i = 0; i < xb.size(); i++) xb[i] = qf_f32_to_bf16(rnormal()), xf[i] = qf_bf16_to_f32(xb[i]);
    qf_ref_matmul(&w, xf.data(), mmax, yref.data(), &err);
    for (int i = 0; i < mmax; i++)
        for (int64_t j = 0; j < n; j++) {
            double s = 0;
            for (int64_t c = 0; c < k; c++) s += fabs((double)xf[(size_t)(i * k + c)] * ref[(size_t)(j * k + c)]);
            mag[(size_t)(i * n + j)] = (float)s;
        }
    /* slots: CTAs resident at once.  H100 (132 SMs): GEMV 3 per SM, TILED 2 (ptxas register counts);
     * a small GPU (8 slots) makes the automatic choice split k. */
    static const struct {
        int gemv, ksplit, slots, ms[6];
    } runs[] = {
        {1, 0, 132 * 3, {1, 3, 8, 9, 16, 0}}, {1, 0, 8, {1, 9, 0}}, {1, 1, 1, {1, 16, 0}}, {1, 3, 1, {2, 13, 0}},
        {0, 0, 132 * 2, {1, 17, 130, 300, 0}}, {0, 0, 8, {17, 0}}, {0, 1, 1, {129, 0}}, {0, 3, 1, {40, 0}},
    };
    vector<int> cnt(1 << 14, 0); /* the context's counters: 64 KB, zeroed once, shared by every call */
    for (auto &ru : runs)
        for (int mi = 0; ru.ms[mi]; mi++) {
            const int m = ru.ms[mi];
            const qf_wq_plan pl = qf_wq_plan_of(v, ru.gemv, m, ru.ksplit, ru.slots, (double)hr.gw.bytes);
            vector<uint16_t> y;
            if (ru.gemv) emu_call<F>(v, xb.data(), m, 1, pl, y, cnt);
            else emu_call<F>(v, xb.data(), m, 0, pl, y, cnt);
            double w2 = 0;
            for (int i = 0; i < m; i++)
                for (int64_t j = 0; j < n; j++) {
                    const double got = qf_bf16_to_f32(y[(size_t)(i * n + j)]), want = yref[(size_t)(i * n + j)];
                    const double cw = F == QF_WFMT_INT4 ? 0x1p-8 : 0.0;
                    const double b = 0x1p-8 * fabs(want) + 1.01 * (cw + (double)k * 0x1p-22) * mag[(size_t)(i * n + j)] + 1e-30;
                    if (!(fabs(got - want) <= b)) {
                        if (g_fail++ < 10)
                            printf("FAIL %s %s ksplit %d (slots %d -> %d) m=%d y(%d, %lld): %.6g vs %.6g (bound %.3g)\n", name,
                                   ru.gemv ? "gemv" : "tiled", ru.ksplit, ru.slots, pl.ksplit, m, i, (long long)j, got, want, b);
                    }
                    if (b > 0 && fabs(got - want) / b > w2) w2 = fabs(got - want) / b;
                }
            printf("  %-40s %-5s ksplit %d (slots %3d -> %d) m=%3d: worst |err|/bound %.3f\n", name, ru.gemv ? "gemv" : "tiled",
                   ru.ksplit, ru.slots, pl.ksplit, m, w2);
        }
}

/* ---- the device branches of the bit primitives against the intrinsics' definitions ---------------- */

static void on_alarm(int sig)
{
    (void)sig;
    static const char msg[] = "FAIL: emulate_wq timed out (a device branch that never returns?)\n";
    if (write(1, msg, sizeof msg - 1) < 0) _exit(1);
    _exit(1);
}

static void check_primitives()
{
    alarm(10); /* prmt calling itself instead of __byte_perm loops forever */
    static const uint32_t sels[] = {0x1010, 0x3232, 0x4040, 0x4141, 0x4242, 0x4343, 0x7654, 0x3210, 0x0527};
    for (int it = 0; it < 1000; it++) {
        const uint32_t a = (uint32_t)rnd(), b = (uint32_t)rnd();
        for (uint32_t sel : sels) {
            uint32_t want = 0;
            for (int i = 0; i < 4; i++) {
                const int src = (int)(sel >> (4 * i)) & 7;
                want |= ((src < 4 ? a >> (8 * src) : b >> (8 * (src - 4))) & 0xffu) << (8 * i);
            }
            const uint32_t got = qfk::prmt(a, b, sel);
            if (got != want && g_fail++ < 10)
                printf("FAIL prmt(0x%08x, 0x%08x, 0x%04x) = 0x%08x, want 0x%08x\n", a, b, sel, got, want);
        }
        /* multiply: finite pairs (the product is exact in float); subtract: (128 + q) - (128 + zp) as in Deq */
        const uint32_t pa = a & 0x7f7f7f7fu, pb = b & 0x3f7f3f7fu;
        const uint32_t qa = (a & 0x000F000Fu) | 0x43004300u, qb = (b & 0x000F000Fu) | 0x43004300u;
        const uint32_t mul = qfk::bf16x2_mul(pa, pb), sub = qfk::bf16x2_sub(qa, qb);
        for (int h = 0; h < 2; h++) {
            const float x = qf_bf16_to_f32((uint16_t)(pa >> (16 * h))), y = qf_bf16_to_f32((uint16_t)(pb >> (16 * h)));
            if ((uint16_t)(mul >> (16 * h)) != qf_f32_to_bf16(x * y) && g_fail++ < 10)
                printf("FAIL bf16x2_mul half %d: %g * %g\n", h, (double)x, (double)y);
            const int d = (int)((a >> (16 * h)) & 15u) - (int)((b >> (16 * h)) & 15u);
            if ((uint16_t)(sub >> (16 * h)) != qf_f32_to_bf16((float)d) && g_fail++ < 10)
                printf("FAIL bf16x2_sub half %d: difference %d\n", h, d);
        }
    }
    alarm(0);
    printf("  primitives (device branches): prmt, bf16x2_mul, bf16x2_sub %s\n", g_fail ? "FAILED" : "ok");
}

int main(void)
{
    signal(SIGALRM, on_alarm);
    setvbuf(stdout, NULL, _IOLBF, 0);
    check_primitives();
    alarm(600); /* the whole run takes seconds */
    run_case<QF_WFMT_INT4>({QF_WFMT_INT4, 200, 640, 128, 0, 0}, 0);
    run_case<QF_WFMT_INT4>({QF_WFMT_INT4, 200, 640, 128, 1, 0}, 0);
    run_case<QF_WFMT_INT4>({QF_WFMT_INT4, 72, 192, 64, 0, 0}, 1);
    run_case<QF_WFMT_INT4>({QF_WFMT_INT4, 8, 256, 256, 1, 0}, 1);
    run_case<QF_WFMT_NVFP4>({QF_WFMT_NVFP4, 200, 576, 0, 0, 0}, 0);
    run_case<QF_WFMT_NVFP4>({QF_WFMT_NVFP4, 136, 320, 0, 0, 0}, 1);
    run_case<QF_WFMT_MXFP4>({QF_WFMT_MXFP4, 200, 576, 0, 0, 0}, 0);
    run_case<QF_WFMT_MXFP4>({QF_WFMT_MXFP4, 40, 192, 0, 0, 0}, 1);
    run_case<QF_WFMT_FP8>({QF_WFMT_FP8, 200, 576, 0, 0, 0}, 0);
    run_case<QF_WFMT_FP8>({QF_WFMT_FP8, 40, 128, 0, 0, 1}, 1);
    printf(g_fail ? "emulate_wq: %d FAILURES\n" : "emulate_wq: all cases within bounds\n", g_fail);
    return g_fail ? 1 : 0;
}
