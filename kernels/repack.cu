/* repack.cu - one-time repack of checkpoint weights into the kernel layout, and dequantization
 * to bf16 (from the repacked layout for the DEQUANT_CUBLAS path, from the checkpoint layout for
 * qf_cuda_dequant_bf16).  The repacked layout is described in qf_cuda_internal.cuh. */
#include "qf_cuda_internal.cuh"

/* ---- section sizes ------------------------------------------------------------------------ */

struct qf_repack_sections {
    size_t q_off, s_off, rs_off, total;
};

static size_t qf_align256(size_t x) { return (x + 255) & ~(size_t)255; }

static qf_status qf_repack_plan(const qf_ct_layout *l, qf_repack_sections *sec, qf_error *err)
{
    QF_TRY(qf_ct_layout_check(l, NULL, err));
    const char *name = qf_wfmt_name(l->fmt);
    if (l->fmt == QF_WFMT_INT8)
        return qf_fail(err, QF_ERR_UNSUPPORTED, "int8 weights have no CUDA kernel (CPU reference only)");
    if (l->k % QF_CHUNK_K)
        return qf_fail(err, QF_ERR_UNSUPPORTED, "%s weight [%lld, %lld]: the CUDA kernels need k %% 64 == 0", name,
                       (long long)l->n, (long long)l->k);
    if (l->fmt == QF_WFMT_INT4 && (l->group_size % QF_CHUNK_K || l->k % l->group_size))
        return qf_fail(err, QF_ERR_UNSUPPORTED,
                       "int4 weight [%lld, %lld] group %lld: the CUDA kernels need a group that is a multiple of 64 "
                       "and divides k",
                       (long long)l->n, (long long)l->k, (long long)l->group_size);
    if (l->n > INT32_MAX / 2 || l->k > INT32_MAX / 2)
        return qf_fail(err, QF_ERR_UNSUPPORTED, "%s weight [%lld, %lld] is too large for the CUDA kernels", name,
                       (long long)l->n, (long long)l->k);
    const size_t rb = (size_t)qf_rl_rowblocks(l->n), kc = (size_t)(l->k / QF_CHUNK_K);
    const size_t eb = (size_t)qf_rl_entry_bytes(l->fmt, l->asym);
    const size_t entries = l->fmt == QF_WFMT_INT4 ? rb * (size_t)(l->k / l->group_size) : rb * kc;
    sec->q_off = 0;
    sec->s_off = qf_align256(rb * kc * 32 * (size_t)qf_rl_lane_bytes(l->fmt));
    sec->rs_off = sec->s_off + qf_align256(entries * eb);
    sec->total = sec->rs_off + (l->fmt == QF_WFMT_FP8 ? qf_align256(rb * QF_RB_ROWS * sizeof(float)) : 0);
    return QF_OK;
}

extern "C" qf_status qf_cuda_repack_bytes(const qf_ct_layout *l, size_t *bytes, qf_error *err)
{
    qf_repack_sections sec = {0, 0, 0, 0};
    QF_TRY(qf_repack_plan(l, &sec, err));
    if (bytes) *bytes = sec.total;
    return QF_OK;
}

/* ---- repack kernels ----------------------------------------------------------------------- */

#define QF_REPACK_BAD_SCALE 1 /* NaN NVFP4/MXFP4 scale */
#define QF_REPACK_BIG_EXP 2   /* MXFP4 exponent above the bf16 folding range */

QFK_HD void qf_flag(int *flag, int v)
{
#ifdef __CUDA_ARCH__
    atomicOr(flag, v);
#else
    *flag |= v;
#endif
}

/* |E4M3 code| re-encoded as E5<<3 | m with value 2^(E5-10) (1 + m/8) (see the layout comment). */
QFK_HD uint32_t qf_nvfp4_scale_enc(uint32_t code)
{
    const uint32_t c = code & 0x7f;
    if (c == 0 || c == 0x7f) return 0x08; /* zero block (values zeroed) or NaN (reported) */
    const uint32_t e4 = c >> 3, m = c & 7;
    if (e4) return ((e4 + 3) << 3) | m;
    const uint32_t p = m >= 4 ? 2 : m >= 2 ? 1 : 0; /* subnormal m * 2^-9: normalize */
    return ((p + 1) << 3) | ((m << (3 - p)) & 7);
}

/* Value code (nibble or byte) of element (row, col) of a checkpoint weight, after the NVFP4 scale
 * adjustments (zero scale -> zero value, negative scale -> flipped sign). */
template <int F> QFK_HD uint32_t qf_ct_code(const qf_ct_weight &w, int row, int col, int *flag)
{
    const int k = (int)w.l.k;
    if (F == QF_WFMT_INT4)
        return (((const uint32_t *)w.weight)[(size_t)row * (k / 8) + col / 8] >> (4 * (col % 8))) & 15u;
    if (F == QF_WFMT_FP8) return ((const uint8_t *)w.weight)[(size_t)row * k + col];
    const uint8_t byte = ((const uint8_t *)w.weight)[(size_t)row * (k / 2) + col / 2];
    uint32_t nib = (col & 1) ? byte >> 4 : byte & 15u;
    if (F == QF_WFMT_NVFP4) {
        const uint32_t sc = ((const uint8_t *)w.scale)[(size_t)row * (k / 16) + col / 16];
        if ((sc & 0x7f) == 0x7f) qf_flag(flag, QF_REPACK_BAD_SCALE);
        if ((sc & 0x7f) == 0 || (sc & 0x7f) == 0x7f) nib = 0;
        else if (sc & 0x80) nib ^= 8u;
    }
    return nib;
}

/* The 4 * LW words of lane `lane` for (row block rb, chunk c). */
template <int F> QFK_HD void qf_repack_lane(const qf_ct_weight &w, int rb, int c, int lane, uint32_t *words, int *flag)
{
    constexpr int LW = qfk::Deq<F>::LW;
    const int g = lane >> 2, t = lane & 3;
    for (int i = 0; i < 4 * LW; i++) words[i] = 0;
    for (int j = 0; j < 4; j++) {
        for (int e = 0; e < 8; e++) {
            const int row = rb * QF_RB_ROWS + g + 8 * ((e >> 1) & 1);
            const int col = c * QF_CHUNK_K + 16 * j + 2 * t + (e & 1) + 8 * (e >> 2);
            const uint32_t v = row < (int)w.l.n ? qf_ct_code<F>(w, row, col, flag) : 0u;
            const int slot = qfk::slot_of(F, e);
            if (LW == 1) words[j] |= v << (4 * slot);
            else words[2 * j + slot / 4] |= v << (8 * (slot % 4));
        }
    }
}

/* Lane group g's slice of block-scale entry e (row block e / per_rb, group or chunk e % per_rb). */
template <int F>
QFK_HD void qf_repack_entry(const qf_ct_weight &w, int64_t e, int g, int kc, int ng, uint8_t *dst, int *flag)
{
    const int per_rb = F == QF_WFMT_INT4 ? ng : kc;
    const int rb = (int)(e / per_rb), c = (int)(e % per_rb);
    const int n = (int)w.l.n, k = (int)w.l.k;
    const int r0 = rb * QF_RB_ROWS + g, r1 = r0 + 8;
    if (F == QF_WFMT_INT4) {
        const uint16_t *sc = (const uint16_t *)w.scale;
        const uint32_t s = (uint32_t)(r0 < n ? sc[(size_t)r0 * ng + c] : 0) |
                           (uint32_t)(r1 < n ? sc[(size_t)r1 * ng + c] : 0) << 16;
        if (!w.l.asym) {
            *(uint32_t *)(dst + e * 32 + 4 * g) = s;
            return;
        }
        const uint32_t *zp = (const uint32_t *)w.zero_point;
        const uint32_t z0 = r0 < n ? (zp[(size_t)(r0 / 8) * ng + c] >> (4 * (r0 % 8))) & 15u : 8u;
        const uint32_t z1 = r1 < n ? (zp[(size_t)(r1 / 8) * ng + c] >> (4 * (r1 % 8))) & 15u : 8u;
        const uint32_t z = (uint32_t)qf_f32_to_bf16(128.0f + (float)z0) | (uint32_t)qf_f32_to_bf16(128.0f + (float)z1)
                                                                              << 16;
        *(uint2 *)(dst + e * 64 + 8 * g) = make_uint2(s, z);
    } else if (F == QF_WFMT_NVFP4) {
        const uint8_t *sc = (const uint8_t *)w.scale;
        uint32_t b[8];
        for (int j = 0; j < 4; j++) {
            b[2 * j] = qf_nvfp4_scale_enc(r0 < n ? sc[(size_t)r0 * (k / 16) + 4 * c + j] : 0x38u);
            b[2 * j + 1] = qf_nvfp4_scale_enc(r1 < n ? sc[(size_t)r1 * (k / 16) + 4 * c + j] : 0x38u);
        }
        *(uint2 *)(dst + e * 64 + 8 * g) = make_uint2(b[0] | b[1] << 8 | b[2] << 16 | b[3] << 24,
                                                      b[4] | b[5] << 8 | b[6] << 16 | b[7] << 24);
    } else if (F == QF_WFMT_MXFP4) {
        const uint8_t *sc = (const uint8_t *)w.scale;
        uint32_t b[4];
        for (int blk = 0; blk < 2; blk++) {
            b[2 * blk] = r0 < n ? sc[(size_t)r0 * (k / 32) + 2 * c + blk] : 127u;
            b[2 * blk + 1] = r1 < n ? sc[(size_t)r1 * (k / 32) + 2 * c + blk] : 127u;
        }
        for (int i = 0; i < 4; i++)
            if (b[i] > 136u) {
                qf_flag(flag, b[i] == 255u ? QF_REPACK_BAD_SCALE : QF_REPACK_BIG_EXP);
                b[i] = 127u;
            }
        *(uint32_t *)(dst + e * 32 + 4 * g) = b[0] | b[1] << 8 | b[2] << 16 | b[3] << 24;
    }
}

template <int F> __global__ void qf_repack_values_kernel(const qf_ct_weight w, uint4 *dst, int rbs, int kc, int *flag)
{
    constexpr int LW = qfk::Deq<F>::LW;
    const int64_t idx = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= (int64_t)rbs * kc * 32) return;
    const int pair = (int)(idx >> 5);
    uint32_t words[4 * LW];
    qf_repack_lane<F>(w, pair / kc, pair % kc, (int)(idx & 31), words, flag);
#pragma unroll
    for (int l = 0; l < LW; l++)
        dst[idx * LW + l] = make_uint4(words[4 * l], words[4 * l + 1], words[4 * l + 2], words[4 * l + 3]);
}

/* One thread per (block-scale entry, g): writes the lane-group's slice of the entry. */
template <int F>
__global__ void qf_repack_scales_kernel(const qf_ct_weight w, uint8_t *dst, int rbs, int kc, int ng, int *flag)
{
    const int64_t idx = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    const int per_rb = F == QF_WFMT_INT4 ? ng : kc;
    if (idx >= (int64_t)rbs * per_rb * 8) return;
    qf_repack_entry<F>(w, idx >> 3, (int)(idx & 7), kc, ng, dst, flag);
}

__global__ void qf_repack_rowscale_kernel(const uint16_t *scale, int per_tensor, int n, int rows, float *rs)
{
    const int r = blockIdx.x * blockDim.x + threadIdx.x; /* bf16 weight scales, widened exactly */
    if (r < rows) rs[r] = r < n ? qf_bf16_to_f32(scale[per_tensor ? 0 : r]) : 0.0f;
}

static unsigned qf_blocks(int64_t threads, int per_block) { return (unsigned)((threads + per_block - 1) / per_block); }

template <int F>
static qf_status qf_repack_launch(const qf_ct_weight *w, uint8_t *dst, const qf_repack_sections *sec, int *flag,
                                  cudaStream_t s, qf_error *err)
{
    const int rbs = (int)qf_rl_rowblocks(w->l.n), kc = (int)(w->l.k / QF_CHUNK_K);
    const int ng = F == QF_WFMT_INT4 ? (int)(w->l.k / w->l.group_size) : 0;
    qf_repack_values_kernel<F><<<qf_blocks((int64_t)rbs * kc * 32, 256), 256, 0, s>>>(*w, (uint4 *)(dst + sec->q_off),
                                                                                       rbs, kc, flag);
    QF_CUDA_LAUNCHED("qf_repack_values_kernel");
    if (F != QF_WFMT_FP8) {
        const int64_t entries = (int64_t)rbs * (F == QF_WFMT_INT4 ? ng : kc);
        qf_repack_scales_kernel<F><<<qf_blocks(entries * 8, 256), 256, 0, s>>>(*w, dst + sec->s_off, rbs, kc, ng, flag);
        QF_CUDA_LAUNCHED("qf_repack_scales_kernel");
    } else {
        const int rows = rbs * QF_RB_ROWS;
        qf_repack_rowscale_kernel<<<qf_blocks(rows, 256), 256, 0, s>>>((const uint16_t *)w->scale, w->l.per_tensor,
                                                                       (int)w->l.n, rows, (float *)(dst + sec->rs_off));
        QF_CUDA_LAUNCHED("qf_repack_rowscale_kernel");
    }
    return QF_OK;
}

extern "C" qf_status qf_cuda_repack(qf_cuda_ctx *ctx, const qf_ct_weight *w, void *dst, size_t dst_bytes,
                                    qf_gpu_weight *out, void *stream, qf_error *err)
{
    if (!ctx || !w || !dst || !out) return qf_fail(err, QF_ERR_USAGE, "qf_cuda_repack: NULL argument");
    qf_repack_sections sec = {0, 0, 0, 0};
    QF_TRY(qf_repack_plan(&w->l, &sec, err));
    const char *name = qf_wfmt_name(w->l.fmt);
    if (dst_bytes < sec.total)
        return qf_fail(err, QF_ERR_USAGE, "repacking %s [%lld, %lld] needs %zu bytes, buffer has %zu", name,
                       (long long)w->l.n, (long long)w->l.k, sec.total, dst_bytes);
    if (!w->weight || !w->scale || (w->l.asym && !w->zero_point))
        return qf_fail(err, QF_ERR_USAGE, "repacking %s [%lld, %lld]: a checkpoint tensor pointer is NULL", name,
                       (long long)w->l.n, (long long)w->l.k);
    float alpha = 1.0f;
    if (w->l.fmt == QF_WFMT_NVFP4) {
        if (!(w->global_scale > 0.0f) || !(w->global_scale <= 3.402823466e38f))
            return qf_fail(err, QF_ERR_FORMAT, "nvfp4 weight [%lld, %lld] has global scale %g (must be finite, > 0)",
                           (long long)w->l.n, (long long)w->l.k, (double)w->global_scale);
        alpha = 256.0f / w->global_scale;
    } else if (w->l.fmt == QF_WFMT_MXFP4) {
        alpha = 256.0f;
    }
    cudaStream_t s = (cudaStream_t)stream;
    QF_CUDA_TRY(cudaSetDevice(ctx->device));
    int *flag = (int *)ctx->scratch.p;
    QF_CUDA_TRY(cudaMemsetAsync(flag, 0, sizeof(int), s));
    uint8_t *d = (uint8_t *)dst;
    switch (w->l.fmt) {
    case QF_WFMT_INT4: QF_TRY(qf_repack_launch<QF_WFMT_INT4>(w, d, &sec, flag, s, err)); break;
    case QF_WFMT_FP8: QF_TRY(qf_repack_launch<QF_WFMT_FP8>(w, d, &sec, flag, s, err)); break;
    case QF_WFMT_NVFP4: QF_TRY(qf_repack_launch<QF_WFMT_NVFP4>(w, d, &sec, flag, s, err)); break;
    case QF_WFMT_MXFP4: QF_TRY(qf_repack_launch<QF_WFMT_MXFP4>(w, d, &sec, flag, s, err)); break;
    default: return qf_fail(err, QF_ERR_UNSUPPORTED, "no repack for %s", name);
    }
    int h_flag = 0;
    QF_CUDA_TRY(cudaMemcpyAsync(&h_flag, flag, sizeof(int), cudaMemcpyDeviceToHost, s));
    QF_CUDA_TRY(cudaStreamSynchronize(s));
    if (h_flag & QF_REPACK_BAD_SCALE)
        return qf_fail(err, QF_ERR_UNSUPPORTED, "%s weight [%lld, %lld] has NaN block scales", name, (long long)w->l.n,
                       (long long)w->l.k);
    if (h_flag & QF_REPACK_BIG_EXP)
        return qf_fail(err, QF_ERR_UNSUPPORTED,
                       "mxfp4 weight [%lld, %lld] has block scales above 2^9 (E8M0 > 136), outside the CUDA kernels' "
                       "bf16 folding range",
                       (long long)w->l.n, (long long)w->l.k);
    out->l = w->l;
    out->data = dst;
    out->bytes = sec.total;
    out->alpha = alpha;
    out->q_offset = sec.q_off;
    out->s_offset = sec.s_off;
    out->rs_offset = sec.rs_off;
    return QF_OK;
}

/* ---- repacked -> bf16 row panel ----------------------------------------------------------- */

/* One warp per (row block, chunk) of the panel; the same Deq<F>::step the GEMM kernels use. */
template <int F>
__global__ void qf_dequant_panel_kernel(const qf_wq_view v, int rb0, int rbs, int64_t r0, int64_t rows,
                                        __nv_bfloat16 *out)
{
    constexpr int LW = qfk::Deq<F>::LW;
    const int lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
    const int64_t pair = (int64_t)blockIdx.x * (blockDim.x / 32) + (threadIdx.x >> 5);
    if (pair >= (int64_t)rbs * v.kc) return;
    const int rb = rb0 + (int)(pair / v.kc), c = (int)(pair % v.kc);
    uint32_t words[4 * LW];
    const uint4 *src = v.q + (((size_t)rb * v.kc + c) * 32 + lane) * LW;
#pragma unroll
    for (int l = 0; l < LW; l++) {
        const uint4 q = __ldg(src + l);
        words[4 * l] = q.x, words[4 * l + 1] = q.y, words[4 * l + 2] = q.z, words[4 * l + 3] = q.w;
    }
    const uint2 sraw = qfk::load_sraw<F>(v, rb, c, g);
#pragma unroll
    for (int j = 0; j < 4; j++) {
        uint32_t a[4];
        qfk::Deq<F>::step(words, sraw, j, v.asym != 0, a);
#pragma unroll
        for (int i = 0; i < 4; i++) {
            const int64_t row = (int64_t)rb * QF_RB_ROWS + g + 8 * (i & 1);
            const int col = c * QF_CHUNK_K + 16 * j + 2 * t + 8 * (i >> 1);
            if (row >= v.n || row >= r0 + rows) continue;
            __nv_bfloat162 pr = *reinterpret_cast<__nv_bfloat162 *>(&a[i]);
            if (F != QF_WFMT_INT4) {
                const float f = v.alpha * (v.rs ? v.rs[row] : 1.0f);
                pr = __floats2bfloat162_rn(__low2float(pr) * f, __high2float(pr) * f);
            }
            *reinterpret_cast<__nv_bfloat162 *>(out + (row - r0) * v.k + col) = pr;
        }
    }
}

qf_status qf_wq_dequant_panel(const qf_gpu_weight *w, int64_t r0, int64_t rows, uint16_t *out, cudaStream_t s,
                              qf_error *err)
{
    const qf_wq_view v = qf_wq_view_of(w);
    const int rb0 = (int)(r0 / QF_RB_ROWS), rbs = (int)qf_rl_rowblocks(rows);
    const int64_t warps = (int64_t)rbs * v.kc;
    const unsigned blocks = qf_blocks(warps, 8);
    __nv_bfloat16 *o = (__nv_bfloat16 *)out;
    switch (w->l.fmt) {
    case QF_WFMT_INT4: qf_dequant_panel_kernel<QF_WFMT_INT4><<<blocks, 256, 0, s>>>(v, rb0, rbs, r0, rows, o); break;
    case QF_WFMT_FP8: qf_dequant_panel_kernel<QF_WFMT_FP8><<<blocks, 256, 0, s>>>(v, rb0, rbs, r0, rows, o); break;
    case QF_WFMT_NVFP4: qf_dequant_panel_kernel<QF_WFMT_NVFP4><<<blocks, 256, 0, s>>>(v, rb0, rbs, r0, rows, o); break;
    case QF_WFMT_MXFP4: qf_dequant_panel_kernel<QF_WFMT_MXFP4><<<blocks, 256, 0, s>>>(v, rb0, rbs, r0, rows, o); break;
    default: return qf_fail(err, QF_ERR_UNSUPPORTED, "no CUDA dequantization for %s", qf_wfmt_name(w->l.fmt));
    }
    QF_CUDA_LAUNCHED("qf_dequant_panel_kernel");
    return QF_OK;
}

/* ---- checkpoint layout -> bf16 ------------------------------------------------------------ */

/* The float value of qf_ref_dequant, by the same operations (quant/qf_fmt_*.h). */
template <int F> __device__ __forceinline__ float qf_ct_value(const qf_ct_weight &w, int64_t row, int64_t col)
{
    const int64_t k = w.l.k;
    if (F == QF_WFMT_INT4) {
        const int64_t ng = (k + w.l.group_size - 1) / w.l.group_size, gi = col / w.l.group_size;
        const uint32_t q = qf_int4_get((const uint32_t *)w.weight + row * ((k + 7) / 8), col);
        const uint32_t z = w.zero_point ? qf_int4_zero_get((const uint32_t *)w.zero_point, ng, row, gi) : QF_INT4_SYM_ZERO;
        return qf_int4_value(q, z, qf_bf16_to_f32(((const uint16_t *)w.scale)[row * ng + gi]));
    }
    if (F == QF_WFMT_FP8)
        return qf_fp8_value(((const uint8_t *)w.weight)[row * k + col],
                            qf_bf16_to_f32(((const uint16_t *)w.scale)[w.l.per_tensor ? 0 : row]));
    const uint8_t nib = qf_fp4_nibble((const uint8_t *)w.weight + row * (k / 2), col);
    if (F == QF_WFMT_NVFP4)
        return qf_fp4_value(nib, qf_nvfp4_step(((const uint8_t *)w.scale)[row * (k / QF_NVFP4_BLOCK) + col / QF_NVFP4_BLOCK],
                                               w.global_scale));
    return qf_fp4_value(nib, qf_mxfp4_step(((const uint8_t *)w.scale)[row * (k / QF_MXFP4_BLOCK) + col / QF_MXFP4_BLOCK]));
}

template <int F> __global__ void qf_dequant_ct_kernel(const qf_ct_weight w, uint16_t *out)
{
    const int64_t total = w.l.n * w.l.k;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += (int64_t)gridDim.x * blockDim.x)
        out[i] = qf_f32_to_bf16(qf_ct_value<F>(w, i / w.l.k, i % w.l.k));
}

extern "C" qf_status qf_cuda_dequant_bf16(const qf_ct_weight *w, uint16_t *out, void *stream, qf_error *err)
{
    if (!w || !out) return qf_fail(err, QF_ERR_USAGE, "qf_cuda_dequant_bf16: NULL argument");
    QF_TRY(qf_ct_layout_check(&w->l, NULL, err));
    if (!w->weight || !w->scale || (w->l.asym && !w->zero_point))
        return qf_fail(err, QF_ERR_USAGE, "qf_cuda_dequant_bf16: a checkpoint tensor pointer is NULL");
    cudaStream_t s = (cudaStream_t)stream;
    const unsigned blocks = (unsigned)(qf_blocks(w->l.n * w->l.k, 256) < 8192 ? qf_blocks(w->l.n * w->l.k, 256) : 8192);
    switch (w->l.fmt) {
    case QF_WFMT_INT4: qf_dequant_ct_kernel<QF_WFMT_INT4><<<blocks, 256, 0, s>>>(*w, out); break;
    case QF_WFMT_FP8: qf_dequant_ct_kernel<QF_WFMT_FP8><<<blocks, 256, 0, s>>>(*w, out); break;
    case QF_WFMT_NVFP4: qf_dequant_ct_kernel<QF_WFMT_NVFP4><<<blocks, 256, 0, s>>>(*w, out); break;
    case QF_WFMT_MXFP4: qf_dequant_ct_kernel<QF_WFMT_MXFP4><<<blocks, 256, 0, s>>>(*w, out); break;
    default: return qf_fail(err, QF_ERR_UNSUPPORTED, "int8 weights have no CUDA dequantization");
    }
    QF_CUDA_LAUNCHED("qf_dequant_ct_kernel");
    return QF_OK;
}
