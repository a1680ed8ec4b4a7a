/* emulate_wq.cu - the weight-only kernels' data path executed on the CPU, for machines without a
 * GPU.  Not built by the Makefile (kernels/dev/ is excluded); build and run from the repository
 * root with:
 *   nvcc -std=c++17 -O2 -DQF_HAVE_CUDA -Icommon -Iquant -Ikernels -Xcompiler -fopenmp \
 *        kernels/dev/emulate_wq.cu kernels/ct_layout.c kernels/*_ref.c common/qf_error.c \
 *        common/qf_dtype.c -o emulate_wq && ./emulate_wq
 *
 * What runs for real (host builds of the production code, QFK_HD functions): the repack of a
 * checkpoint weight (qf_repack_lane / qf_repack_entry, the same code as the repack kernels), the
 * scale slice loads (load_sraw), the in-register dequantizers (Deq<F>::step, with the bf16
 * multiply / subtract emulated by exact-then-rounded float arithmetic), and the kernels' index
 * maps (gemv_ldsm_src, tile_x_off, tile_ldsm_src, frag_c_pos).  What is emulated from the PTX
 * ISA's definitions: ldmatrix.x4 (lane l receives row l/4, columns 2(l%4), 2(l%4)+1 of matrix i
 * from the row address given by lane 8i + l/4) and mma.m16n8k16 (A, B, C fragment layouts).
 * The loop structure of the GEMV and TILED kernels (x staging, shared-memory stage layout,
 * rasterization, split-K) is re-stated here; the pipelining and synchronization are not.
 * Each case compares against qf_ref_matmul with the bound of tests/gpu_test_kernels.c.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <vector>

#include "../repack.cu"
#include "../wq_gemm.cuh"

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
            rs[row] = row < w.l.n ? ((const float *)w.scale)[w.l.per_tensor ? 0 : row] : 0.0f;
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

/* ---- GEMV ------------------------------------------------------------------------------------------ */

template <int F>
static void emu_gemv(const qf_wq_view &v, const uint16_t *x, int m, int ksplit, vector<uint16_t> &y)
{
    constexpr int LW = qfk::Deq<F>::LW, RW = QF_GEMV_RW, SUBC = QF_GEMV_SUBC, XP = SUBC * 64 + 8;
    const int MT = m <= 8 ? 1 : 2, rts = (v.rb + QF_GEMV_WARPS * RW - 1) / (QF_GEMV_WARPS * RW);
    vector<float> part((size_t)ksplit * m * v.n, 0.0f);
    y.assign((size_t)m * v.n, 0xFFFF);
    vector<uint16_t> xs((size_t)MT * 8 * XP);
    for (int rt = 0; rt < rts; rt++)
        for (int ks = 0; ks < ksplit; ks++) {
            const int kc0 = (int)((int64_t)v.kc * ks / ksplit), kc1 = (int)((int64_t)v.kc * (ks + 1) / ksplit);
            static float acc[QF_GEMV_WARPS][RW][2][32][4];
            memset(acc, 0, sizeof acc);
            for (int c = kc0; c < kc1; c++) {
                const int sub0 = kc0 + (c - kc0) / SUBC * SUBC;
                if (c == sub0) {
                    const int cend = sub0 + SUBC < kc1 ? sub0 + SUBC : kc1, nvec = (cend - sub0) * 8;
                    for (int i = 0; i < MT * 8 * nvec; i++) {
                        const int tok = i / nvec, vv = i % nvec;
                        for (int e = 0; e < 8; e++)
                            xs[(size_t)tok * XP + vv * 8 + e] = tok < m ? x[(size_t)tok * v.k + (size_t)sub0 * 64 + vv * 8 + e] : 0;
                    }
                }
                const int xc = (c - sub0) * 64;
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
                        if (rb >= v.rb) continue; /* the kernel multiplies zeros there */
                        for (int j = 0; j < 4; j++) {
                            uint32_t a[32][4];
                            for (int l = 0; l < 32; l++) {
                                uint32_t words[4 * LW];
                                memcpy(words, v.q + (((size_t)rb * v.kc + c) * 32 + l) * LW, 16 * LW);
                                qfk::Deq<F>::step(words, qfk::load_sraw<F>(v, rb, c, l >> 2), j, v.asym != 0, a[l]);
                            }
                            for (int nt = 0; nt < MT; nt++) emu_mma(a, b[nt][j], acc[warp][r][nt]);
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
                                const int row = (rt * QF_GEMV_WARPS * RW + warp * RW + r) * 16 + dr, tok = nt * 8 + dt;
                                if (row >= v.n || tok >= m) continue;
                                if (ksplit == 1) y[(size_t)tok * v.n + row] = qf_f32_to_bf16(acc[warp][r][nt][l][i] * epi(v, row));
                                else part[((size_t)ks * m + tok) * v.n + row] = acc[warp][r][nt][l][i];
                            }
        }
    if (ksplit > 1)
        for (int tok = 0; tok < m; tok++)
            for (int row = 0; row < v.n; row++) {
                float s = 0;
                for (int ks = 0; ks < ksplit; ks++) s += part[((size_t)ks * m + tok) * v.n + row];
                y[(size_t)tok * v.n + row] = qf_f32_to_bf16(s * epi(v, row));
            }
}

/* ---- TILED ----------------------------------------------------------------------------------------- */

template <int F>
static void emu_tile(const qf_wq_view &v, const uint16_t *x, int m, int ksplit, vector<uint16_t> &y)
{
    constexpr int LW = qfk::Deq<F>::LW;
    constexpr int W_BYTES = qfk::TileSmem<F>::W_BYTES, STAGE = qfk::TileSmem<F>::STAGE;
    const int tt_count = (m + 127) / 128, rt_count = (v.rb + 7) / 8;
    const int eb = F == QF_WFMT_INT4 ? (v.asym ? 64 : 32) : F == QF_WFMT_NVFP4 ? 64 : 32;
    vector<float> part((size_t)ksplit * m * v.n, 0.0f);
    vector<int> seen((size_t)rt_count * tt_count, 0);
    y.assign((size_t)m * v.n, 0xFFFF);
    vector<uint8_t> st(STAGE);
    static float acc[4][4][8][32][4];
    for (int bid = 0; bid < rt_count * tt_count; bid++) {
        const int grp = bid / (QF_TILE_GROUP * tt_count);
        const int first_rt = grp * QF_TILE_GROUP, grows = rt_count - first_rt < QF_TILE_GROUP ? rt_count - first_rt : QF_TILE_GROUP;
        const int within = bid - grp * QF_TILE_GROUP * tt_count;
        const int rt = first_rt + within % grows, tt = within / grows;
        if (rt >= rt_count || tt >= tt_count || seen[(size_t)rt * tt_count + tt]++) {
            printf("FAIL: rasterization maps block %d to tile (%d, %d) twice or out of range\n", bid, rt, tt);
            exit(1);
        }
        const int rb0 = rt * 8, m0 = tt * 128;
        for (int ks = 0; ks < ksplit; ks++) {
            const int kc0 = (int)((int64_t)v.kc * ks / ksplit), kc1 = (int)((int64_t)v.kc * (ks + 1) / ksplit);
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
                                const int row = (rb0 + (warp >> 1) * 4 + r) * 16 + dr, tok = m0 + (warp & 1) * 64 + nt * 8 + dt;
                                if (row >= v.n || tok >= m) continue;
                                if (ksplit == 1) y[(size_t)tok * v.n + row] = qf_f32_to_bf16(acc[warp][r][nt][l][i] * epi(v, row));
                                else part[((size_t)ks * m + tok) * v.n + row] = acc[warp][r][nt][l][i];
                            }
        }
    }
    if (ksplit > 1)
        for (int tok = 0; tok < m; tok++)
            for (int row = 0; row < v.n; row++) {
                float s = 0;
                for (int ks = 0; ks < ksplit; ks++) s += part[((size_t)ks * m + tok) * v.n + row];
                y[(size_t)tok * v.n + row] = qf_f32_to_bf16(s * epi(v, row));
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

    /* 2. GEMV and TILED data paths vs qf_ref_matmul */
    const int mmax = 140;
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
    struct {
        int tiled, m, ksplit;
    } runs[] = {{0, 1, 1}, {0, 5, 3}, {0, 9, 1}, {0, 16, 2}, {1, 3, 1}, {1, 140, 1}, {1, 130, 2}};
    for (auto &ru : runs) {
        vector<uint16_t> y;
        const int ks = ru.ksplit > v.kc ? v.kc : ru.ksplit;
        if (ru.tiled) emu_tile<F>(v, xb.data(), ru.m, ks, y);
        else emu_gemv<F>(v, xb.data(), ru.m, ks, y);
        double w2 = 0;
        for (int i = 0; i < ru.m; i++)
            for (int64_t j = 0; j < n; j++) {
                const double got = qf_bf16_to_f32(y[(size_t)(i * n + j)]), want = yref[(size_t)(i * n + j)];
                const double cw = F == QF_WFMT_INT4 ? 0x1p-8 : 0.0;
                const double b = 0x1p-8 * fabs(want) + 1.01 * (cw + (double)k * 0x1p-22) * mag[(size_t)(i * n + j)] + 1e-30;
                if (!(fabs(got - want) <= b)) {
                    if (g_fail++ < 10)
                        printf("FAIL %s %s m=%d ksplit=%d y(%d, %lld): %.6g vs %.6g (bound %.3g)\n", name, ru.tiled ? "tiled" : "gemv",
                               ru.m, ks, i, (long long)j, got, want, b);
                }
                w2 = fmax(w2, fabs(got - want) / b);
            }
        printf("  %-40s %-5s m=%3d ksplit=%d: worst |err|/bound %.3f\n", name, ru.tiled ? "tiled" : "gemv", ru.m, ks, w2);
    }
}

int main(void)
{
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
