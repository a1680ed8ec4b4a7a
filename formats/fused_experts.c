/* fused_experts.c - one expert's Linear weight out of a fused 3-D tensor (see qf_fused_experts.h). */
#include <string.h>

#include "qf_fused_experts.h"

static int qf_ends_with(const char *s, const char *suffix)
{
    size_t l = strlen(s), k = strlen(suffix);
    return l >= k && strcmp(s + l - k, suffix) == 0;
}

qf_fused_kind qf_fused_kind_of(const char *name)
{
    if (qf_ends_with(name, ".experts.gate_up_proj") || strcmp(name, "experts.gate_up_proj") == 0) return QF_FUSED_GATE_UP;
    if (qf_ends_with(name, ".experts.down_proj") || strcmp(name, "experts.down_proj") == 0) return QF_FUSED_DOWN;
    return QF_FUSED_NOT;
}

size_t qf_fused_module_len(const char *name)
{
    const char *dot = strrchr(name, '.');
    return dot ? (size_t)(dot - name) : strlen(name);
}

static qf_status qf_fused_shape(const char *dir, const qf_tensor *t, qf_error *err)
{
    if (t->ndim != 3 || !qf_dtype_is_float(t->dtype) || qf_dtype_bits(t->dtype) % 8)
        return qf_fail(err, QF_ERR_FORMAT, "%s: tensor '%s': a fused expert tensor must be 3-D floating point "
                       "[experts, in, out], found %d-D %s", dir, t->name, t->ndim, qf_dtype_name(t->dtype));
    if (t->shape[0] <= 0 || t->shape[1] <= 0 || t->shape[2] <= 0)
        return qf_fail(err, QF_ERR_FORMAT, "%s: tensor '%s': empty fused expert tensor [%lld, %lld, %lld]", dir, t->name,
                       (long long)t->shape[0], (long long)t->shape[1], (long long)t->shape[2]);
    return QF_OK;
}

qf_status qf_fused_experts_check(const char *dir, const qf_tensor *gate_up, const qf_tensor *down, qf_error *err)
{
    if (gate_up) {
        QF_TRY(qf_fused_shape(dir, gate_up, err));
        if (gate_up->shape[2] % 2)
            return qf_fail(err, QF_ERR_FORMAT, "%s: tensor '%s': gate_up_proj's last dimension %lld is odd: it cannot "
                           "hold gate and up of equal widths", dir, gate_up->name, (long long)gate_up->shape[2]);
    }
    if (down) QF_TRY(qf_fused_shape(dir, down, err));
    if (gate_up && down &&
        (down->shape[0] != gate_up->shape[0] || down->shape[2] != gate_up->shape[1] ||
         2 * down->shape[1] != gate_up->shape[2]))
        return qf_fail(err, QF_ERR_FORMAT, "%s: tensor '%s' is [%lld, %lld, %lld] but '%s' is [%lld, %lld, %lld]: "
                       "expected down_proj [E, I, H] for gate_up_proj [E, H, 2I]", dir, down->name,
                       (long long)down->shape[0], (long long)down->shape[1], (long long)down->shape[2], gate_up->name,
                       (long long)gate_up->shape[0], (long long)gate_up->shape[1], (long long)gate_up->shape[2]);
    return QF_OK;
}

qf_expert_slice qf_expert_slice_of(const qf_tensor *t, int expert, qf_expert_part part, qf_fused_layout layout)
{
    qf_expert_slice s = {t, expert, part, layout, 0, 0};
    /* the Linear is [out, in]: the transpose of the [in, out] block */
    s.rows = part == QF_EXPERT_DOWN ? t->shape[2] : t->shape[2] / 2;
    s.cols = t->shape[1];
    return s;
}

/* Column of the block that output row r of the slice reads. */
static int64_t qf_slice_column(const qf_expert_slice *s, int64_t r)
{
    if (s->part == QF_EXPERT_DOWN) return r;
    const int up = s->part == QF_EXPERT_UP;
    return s->layout == QF_FUSED_INTERLEAVED ? 2 * r + up : r + up * s->rows;
}

void qf_expert_slice_read(const qf_expert_slice *s, void *dst)
{
    const qf_tensor block = qf_expert_block(s->t, s->expert);
    const int64_t width = s->t->shape[2]; /* columns of the [in, out] block */
    const size_t es = (size_t)qf_dtype_bits(s->t->dtype) / 8;
    uint8_t *out = dst;
    /* dst[r][c] = block[c][col(r)]: strided reads down one column per output row; the block of
     * one expert is small enough (a few MB to ~100 MB) that its pages stay cached across rows */
    for (int64_t r = 0; r < s->rows; r++) {
        const uint8_t *col = block.data + (size_t)qf_slice_column(s, r) * es;
        uint8_t *row = out + (size_t)r * (size_t)s->cols * es;
        switch (es) {
        case 2:
            for (int64_t c = 0; c < s->cols; c++) memcpy(row + 2 * c, col + (size_t)c * (size_t)width * 2, 2);
            break;
        case 4:
            for (int64_t c = 0; c < s->cols; c++) memcpy(row + 4 * c, col + (size_t)c * (size_t)width * 4, 4);
            break;
        default:
            for (int64_t c = 0; c < s->cols; c++) memcpy(row + es * c, col + (size_t)c * (size_t)width * es, es);
        }
    }
}

qf_tensor qf_expert_block(const qf_tensor *t, int expert)
{
    qf_tensor b = *t;
    const uint64_t per = t->nbytes / (uint64_t)t->shape[0];
    b.ndim = 2;
    b.shape[0] = t->shape[1];
    b.shape[1] = t->shape[2];
    b.nbytes = per;
    b.offset = t->offset + per * (uint64_t)expert;
    b.data = t->data ? t->data + per * (uint64_t)expert : NULL;
    return b;
}
