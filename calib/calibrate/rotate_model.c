/* rotate_model.c - folding the residual-stream and value/output rotations into a model's
 * weights (see qf_rotate_model.h). */
#include <stdlib.h>
#include <string.h>

#include "qf_numfmt.h"
#include "qf_rotate_model.h"

/* The runner's model types whose every norm is y = x / rms(x) * w: the fold into the next
 * Linear and the weight-1 norm's commuting with R1 rely on exactly that form.  A type with
 * (1 + w) norms (Gemma), a bias or mean subtraction (LayerNorm), or a norm after a sublayer's
 * output (sandwich norms) must not be added here without its own fold. */
static const char *const qf_plain_rmsnorm_types[] = {"llama", "mistral", "qwen2", "qwen3", "mixtral", "qwen2_moe", "qwen3_moe"};

qf_status qf_rotation_check(const qf_model *m, qf_error *err)
{
    const qf_model_config *cf = &m->cfg;
    int plain = 0;
    for (size_t i = 0; i < sizeof qf_plain_rmsnorm_types / sizeof *qf_plain_rmsnorm_types; i++)
        plain |= strcmp(cf->model_type, qf_plain_rmsnorm_types[i]) == 0;
    if (!plain)
        return qf_fail(err, QF_ERR_UNSUPPORTED, "rotation: model_type '%s' does not use plain RMSNorm x weight norms",
                       cf->model_type);
    if (m->n_linear_packed) return qf_fail(err, QF_ERR_UNSUPPORTED, "rotation: the model is already quantized");
    if (m->lm_head.kind != QF_LINEAR_FLOAT) return qf_fail(err, QF_ERR_UNSUPPORTED, "rotation: lm_head is not a float weight");
    if (m->lm_head.weight == m->embed)
        for (int64_t j = 0; j < cf->hidden_size; j++)
            if (m->final_norm[j] != 1.0f)
                return qf_fail(err, QF_ERR_UNSUPPORTED,
                               "rotation: tied embeddings under a final norm that is not all ones cannot be rotated "
                               "exactly (the norm cannot fold into the shared embedding)");
    for (int l = 0; l < cf->n_layers; l++)
        if (m->layers[l].has_shared)
            return qf_fail(err, QF_ERR_UNSUPPORTED, "rotation: layer %d has a shared expert, which is not rotated yet", l);
    return QF_OK;
}

qf_status qf_rotation_init(qf_rotation *R, const qf_model *m, qf_rotate_kind kind, uint64_t seed, int64_t block,
                           qf_error *err)
{
    memset(R, 0, sizeof *R);
    QF_TRY(qf_rotation_check(m, err));
    const int64_t hidden = m->cfg.hidden_size, head_dim = m->cfg.head_dim;
    if (block < 0 || (block > 0 && hidden % block != 0))
        return qf_fail(err, QF_ERR_USAGE, "rotation: a block of %lld does not divide the hidden size %lld", (long long)block,
                       (long long)hidden);
    /* R2 takes the block too where it divides head_dim: a block meant for the quantization
     * groups then rotates o_proj's input groups alike */
    const int64_t H = block ? block : hidden, D = block && head_dim % block == 0 ? block : head_dim;
    R->kind = kind, R->seed = seed, R->n1 = H, R->n2 = D;
    double *q = malloc(sizeof(double) * (size_t)(H > D ? H * H : D * D));
    R->r1 = malloc(sizeof(float) * (size_t)(H * H));
    R->r2 = malloc(sizeof(float) * (size_t)(D * D));
    qf_status s = q && R->r1 && R->r2 ? QF_OK : qf_fail(err, QF_ERR_NOMEM, "rotation: out of memory for its matrices");
    if (s == QF_OK) s = qf_rotate_matrix(kind, H, seed, q, err);
    for (int64_t i = 0; s == QF_OK && i < H * H; i++) R->r1[i] = (float)q[i];
    if (s == QF_OK) s = qf_rotate_matrix(kind, D, ~seed, q, err);
    for (int64_t i = 0; s == QF_OK && i < D * D; i++) R->r2[i] = (float)q[i];
    free(q);
    if (s) qf_rotation_free(R);
    return s;
}

void qf_rotation_free(qf_rotation *R)
{
    free(R->r1);
    free(R->r2);
    R->r1 = R->r2 = NULL;
}

/* ---- dtypes --------------------------------------------------------------------------------- */
void qf_rotate_encode(const float *x, int64_t n, qf_dtype dt, void *out)
{
    if (dt == QF_DTYPE_F32) {
        memcpy(out, x, sizeof(float) * (size_t)n);
        return;
    }
    uint16_t *h = out;
    for (int64_t i = 0; i < n; i++) h[i] = dt == QF_DTYPE_BF16 ? qf_f32_to_bf16(x[i]) : qf_f32_to_f16(x[i]);
}

void qf_rotate_round(float *x, int64_t n, qf_dtype dt)
{
    if (dt == QF_DTYPE_BF16)
        for (int64_t i = 0; i < n; i++) x[i] = qf_bf16_to_f32(qf_f32_to_bf16(x[i]));
    else if (dt == QF_DTYPE_F16)
        for (int64_t i = 0; i < n; i++) x[i] = qf_f16_to_f32(qf_f32_to_f16(x[i]));
}

static void qf_decode(const void *src, qf_dtype dt, int64_t n, float *out)
{
    if (dt == QF_DTYPE_F32) {
        memcpy(out, src, sizeof(float) * (size_t)n);
        return;
    }
    const uint16_t *h = src;
    for (int64_t i = 0; i < n; i++) out[i] = dt == QF_DTYPE_BF16 ? qf_bf16_to_f32(h[i]) : qf_f16_to_f32(h[i]);
}

static size_t qf_dtype_size(qf_dtype dt)
{
    return dt == QF_DTYPE_F32 ? 4 : 2;
}

/* ---- a layer -------------------------------------------------------------------------------- */
static qf_status qf_rot_need_float(const qf_linear *lin, qf_error *err)
{
    if (lin->kind != QF_LINEAR_FLOAT || lin->wdtype != QF_DTYPE_F32)
        return qf_fail(err, QF_ERR_USAGE, "rotation: %s needs a float32 copy of its weight", lin->name);
    return QF_OK;
}

/* A reader of the stream after norm g (NULL: no norm, e.g. nothing folded): W <- W diag(g) R1. */
static qf_status qf_rot_reader(const qf_rotation *R, qf_linear *lin, const float *g, qf_error *err)
{
    QF_TRY(qf_rot_need_float(lin, err));
    float *W = (float *)lin->weight;
    if (g) qf_rotate_fold_norm(W, lin->rows, lin->cols, g);
    return qf_rotate_apply(W, lin->rows, lin->cols, R->r1, R->n1, QF_ROTATE_COLS, err);
}

/* A writer to the stream: W <- R1ᵀ W, b <- R1ᵀ b. */
static qf_status qf_rot_writer(const qf_rotation *R, qf_linear *lin, qf_error *err)
{
    QF_TRY(qf_rot_need_float(lin, err));
    QF_TRY(qf_rotate_apply((float *)lin->weight, lin->rows, lin->cols, R->r1, R->n1, QF_ROTATE_ROWS, err));
    return lin->bias ? qf_rotate_apply(lin->bias, lin->rows, 1, R->r1, R->n1, QF_ROTATE_ROWS, err) : QF_OK;
}

qf_status qf_rotate_layer(const qf_rotation *R, const qf_model *m, qf_layer *L, qf_error *err)
{
    const int64_t D = R->n2;
    /* R1: norms folded into their readers first (the readers' columns are still unrotated) */
    qf_linear *attn_in[3] = {&L->q, &L->k, &L->v};
    for (int i = 0; i < 3; i++) QF_TRY(qf_rot_reader(R, attn_in[i], L->attn_norm, err));
    if (!L->is_moe) {
        QF_TRY(qf_rot_reader(R, &L->gate, L->ffn_norm, err));
        QF_TRY(qf_rot_reader(R, &L->up, L->ffn_norm, err));
        QF_TRY(qf_rot_writer(R, &L->down, err));
    } else {
        QF_TRY(qf_rot_reader(R, &L->router, L->ffn_norm, err));
        for (int e = 0; e < m->cfg.n_experts; e++) {
            QF_TRY(qf_rot_reader(R, &L->experts[3 * e], L->ffn_norm, err));
            QF_TRY(qf_rot_reader(R, &L->experts[3 * e + 1], L->ffn_norm, err));
            QF_TRY(qf_rot_writer(R, &L->experts[3 * e + 2], err));
        }
    }
    QF_TRY(qf_rot_writer(R, &L->o, err));
    for (int64_t j = 0; j < m->cfg.hidden_size; j++) L->attn_norm[j] = L->ffn_norm[j] = 1.0f;
    /* R2: v's output per KV head and o's input per query head (attention mixes value rows
     * across tokens only, linearly, so the rotation passes through it) */
    QF_TRY(qf_rotate_apply((float *)L->v.weight, L->v.rows, L->v.cols, R->r2, D, QF_ROTATE_ROWS, err));
    if (L->v.bias) QF_TRY(qf_rotate_apply(L->v.bias, L->v.rows, 1, R->r2, D, QF_ROTATE_ROWS, err));
    return qf_rotate_apply((float *)L->o.weight, L->o.rows, L->o.cols, R->r2, D, QF_ROTATE_COLS, err);
}

/* ---- outside the layers --------------------------------------------------------------------- */
#define QF_ROT_ROWS 1024 /* rows of the embedding / lm_head rotated at a time */

/* rows (n, hidden) of src -> diag(g) R1 -> out in dt, a chunk of rows at a time. */
static qf_status qf_rot_table(const qf_rotation *R, int64_t m_hidden, int64_t n, const void *src, qf_dtype sdt, const qf_linear *lin,
                              const float *g, qf_dtype dt, void *out, qf_error *err)
{
    const int64_t H = m_hidden;
    float *buf = malloc(sizeof(float) * (size_t)(QF_ROT_ROWS * H));
    if (!buf) return qf_fail(err, QF_ERR_NOMEM, "rotation: out of memory");
    qf_status s = QF_OK;
    for (int64_t r0 = 0; r0 < n && s == QF_OK; r0 += QF_ROT_ROWS) {
        const int64_t k = n - r0 < QF_ROT_ROWS ? n - r0 : QF_ROT_ROWS;
        if (lin) qf_linear_weight_rows(lin, r0, r0 + k, buf);
        else qf_decode((const char *)src + (size_t)(r0 * H) * qf_dtype_size(sdt), sdt, k * H, buf);
        if (g) qf_rotate_fold_norm(buf, k, H, g);
        s = qf_rotate_apply(buf, k, H, R->r1, R->n1, QF_ROTATE_COLS, err);
        if (s == QF_OK) qf_rotate_encode(buf, k * H, dt, (char *)out + (size_t)(r0 * H) * qf_dtype_size(dt));
    }
    free(buf);
    return s;
}

qf_status qf_rotate_embedding(const qf_rotation *R, const qf_model *m, qf_dtype dt, void *out, qf_error *err)
{
    return qf_rot_table(R, m->cfg.hidden_size, m->vocab_in, m->embed, m->embed_dtype, NULL, NULL, dt, out, err);
}

qf_status qf_rotate_lm_head(const qf_rotation *R, const qf_model *m, qf_dtype dt, void *out, qf_error *err)
{
    return qf_rot_table(R, m->cfg.hidden_size, m->vocab_out, NULL, 0, &m->lm_head, m->final_norm, dt, out, err);
}
