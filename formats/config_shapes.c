/* config_shapes.c - config.json against the tensors it describes (see qf_config.h).
 *
 * A config that lies about the weights (hidden_size, head counts, widths, expert count,
 * vocabulary) used to convert with exit 0 into an artifact that every engine then rejects or
 * misreads; only `validate` noticed.  This is the converter's check: every tensor of the
 * Llama family whose name it knows must have the shape the config implies.  Names it does not
 * know are left alone (the converter quantizes models it does not understand too).
 */
#include <stdio.h>
#include <string.h>

#include "qf_config.h"

/* Dimension symbols, resolved from the config. */
enum { D_HID = 1, D_Q, D_KV, D_FFN, D_MOE, D_SHARED, D_EXPERTS, D_VOCAB, D_HEAD, D_ONE, D_QG };

typedef struct {
    const char *suffix; /* after "model.layers.N." (or the whole name when global) */
    int global;
    int rank, dims[2];
} qf_shape_rule;

static const qf_shape_rule qf_rules[] = {
    {"model.embed_tokens.weight", 1, 2, {D_VOCAB, D_HID}},
    {"lm_head.weight", 1, 2, {D_VOCAB, D_HID}},
    {"model.norm.weight", 1, 1, {D_HID}},
    {"input_layernorm.weight", 0, 1, {D_HID}},
    {"post_attention_layernorm.weight", 0, 1, {D_HID}},
    {"self_attn.q_proj.weight", 0, 2, {D_QG, D_HID}},
    {"self_attn.k_proj.weight", 0, 2, {D_KV, D_HID}},
    {"self_attn.v_proj.weight", 0, 2, {D_KV, D_HID}},
    {"self_attn.o_proj.weight", 0, 2, {D_HID, D_Q}},
    {"self_attn.q_proj.bias", 0, 1, {D_QG}},
    {"self_attn.k_proj.bias", 0, 1, {D_KV}},
    {"self_attn.v_proj.bias", 0, 1, {D_KV}},
    {"self_attn.q_norm.weight", 0, 1, {D_HEAD}},
    {"self_attn.k_norm.weight", 0, 1, {D_HEAD}},
    {"mlp.gate_proj.weight", 0, 2, {D_FFN, D_HID}},
    {"mlp.up_proj.weight", 0, 2, {D_FFN, D_HID}},
    {"mlp.down_proj.weight", 0, 2, {D_HID, D_FFN}},
    {"block_sparse_moe.gate.weight", 0, 2, {D_EXPERTS, D_HID}},
    {"mlp.gate.weight", 0, 2, {D_EXPERTS, D_HID}},
    {"mlp.shared_expert.gate_proj.weight", 0, 2, {D_SHARED, D_HID}},
    {"mlp.shared_expert.up_proj.weight", 0, 2, {D_SHARED, D_HID}},
    {"mlp.shared_expert.down_proj.weight", 0, 2, {D_HID, D_SHARED}},
    {"mlp.shared_expert_gate.weight", 0, 2, {D_ONE, D_HID}},
};

/* Per-expert tensors "<prefix>.experts.E.<proj>.weight" of mixtral and qwen-moe. */
static const qf_shape_rule qf_expert_rules[] = {
    {"w1.weight", 0, 2, {D_FFN, D_HID}},         {"w3.weight", 0, 2, {D_FFN, D_HID}},
    {"w2.weight", 0, 2, {D_HID, D_FFN}},         {"gate_proj.weight", 0, 2, {D_MOE, D_HID}},
    {"up_proj.weight", 0, 2, {D_MOE, D_HID}},    {"down_proj.weight", 0, 2, {D_HID, D_MOE}},
};

static int64_t qf_dim(const qf_model_config *c, int sym)
{
    switch (sym) {
    case D_HID: return c->hidden_size;
    case D_Q: return (int64_t)c->n_heads * c->head_dim;
    case D_KV: return (int64_t)c->n_kv_heads * c->head_dim;
    case D_FFN: return c->intermediate_size;
    case D_MOE: return c->moe_intermediate_size;
    case D_SHARED: return c->shared_expert_intermediate_size;
    case D_EXPERTS: return c->n_experts;
    case D_VOCAB: return c->vocab_size;
    case D_HEAD: return c->head_dim;
    case D_ONE: return 1;
    case D_QG: return (int64_t)c->n_heads * c->head_dim * (c->attn_output_gate ? 2 : 1); /* + qwen3_next's gate */
    }
    return -1;
}

static const char *qf_dim_key(int sym)
{
    switch (sym) {
    case D_HID: return "hidden_size";
    case D_Q: return "num_attention_heads x head_dim";
    case D_KV: return "num_key_value_heads x head_dim";
    case D_FFN: return "intermediate_size";
    case D_MOE: return "moe_intermediate_size";
    case D_SHARED: return "shared_expert_intermediate_size";
    case D_EXPERTS: return "num_local_experts / num_experts";
    case D_VOCAB: return "vocab_size";
    case D_HEAD: return "head_dim";
    case D_QG: return "num_attention_heads x head_dim (x2: gate)";
    }
    return "1";
}

static qf_status qf_check_rule(const char *cfg_path, const qf_model_config *c, const qf_tensor *t,
                               const qf_shape_rule *r, qf_error *err)
{
    if (t->dtype != QF_DTYPE_BF16 && t->dtype != QF_DTYPE_F16 && t->dtype != QF_DTYPE_F32) return QF_OK; /* packed */
    int ok = t->ndim == r->rank;
    for (int d = 0; ok && d < r->rank; d++) ok = t->shape[d] == qf_dim(c, r->dims[d]);
    if (ok) return QF_OK;
    char want[160], got[96];
    if (r->rank == 1)
        snprintf(want, sizeof want, "[%lld] (%s)", (long long)qf_dim(c, r->dims[0]), qf_dim_key(r->dims[0]));
    else
        snprintf(want, sizeof want, "[%lld, %lld] (%s, %s)", (long long)qf_dim(c, r->dims[0]),
                 (long long)qf_dim(c, r->dims[1]), qf_dim_key(r->dims[0]), qf_dim_key(r->dims[1]));
    int k = snprintf(got, sizeof got, "[");
    for (int d = 0; d < t->ndim && k < (int)sizeof got - 24; d++)
        k += snprintf(got + k, sizeof got - (size_t)k, "%s%lld", d ? ", " : "", (long long)t->shape[d]);
    snprintf(got + k, sizeof got - (size_t)k, "]");
    return qf_fail(err, QF_ERR_FORMAT, "%s: tensor '%s' is %s but the config says %s", cfg_path, t->name, got, want);
}

qf_status qf_config_check_shapes(const char *cfg_path, const qf_model_config *c, const qf_checkpoint *ck,
                                 qf_error *err)
{
    if (qf_config_runnable(c, NULL) != QF_OK) return QF_OK; /* a family this table does not describe */
    for (int i = 0; i < ck->n_tensors; i++) {
        const qf_tensor *t = &ck->tensors[i];
        int layer = -1, n = 0;
        const char *rest = t->name;
        if (sscanf(t->name, "model.layers.%d.%n", &layer, &n) == 1 && n > 0) {
            if (layer >= c->n_layers + c->n_extra_layers) /* GLM's MTP layers follow the decoder's */
                return qf_fail(err, QF_ERR_FORMAT, "%s: tensor '%s' is in layer %d but num_hidden_layers is %d", cfg_path,
                               t->name, layer, c->n_layers);
            rest = t->name + n;
        }
        for (size_t r = 0; r < sizeof qf_rules / sizeof *qf_rules; r++)
            if (!(c->kv_lora_rank > 0 && strncmp(rest, "self_attn.", 10) == 0) && /* MLA: not this table's shapes */
                qf_rules[r].global == (layer < 0) && strcmp(rest, qf_rules[r].suffix) == 0)
                QF_TRY(qf_check_rule(cfg_path, c, t, &qf_rules[r], err));
        const char *ex = layer >= 0 ? strstr(rest, ".experts.") : NULL;
        int e = -1, m = 0;
        if (ex && sscanf(ex, ".experts.%d.%n", &e, &m) == 1 && m > 0) {
            if (c->n_experts > 0 && e >= c->n_experts)
                return qf_fail(err, QF_ERR_FORMAT, "%s: tensor '%s' is expert %d but the config has %d experts", cfg_path,
                               t->name, e, c->n_experts);
            for (size_t r = 0; r < sizeof qf_expert_rules / sizeof *qf_expert_rules; r++)
                if (strcmp(ex + m, qf_expert_rules[r].suffix) == 0)
                    QF_TRY(qf_check_rule(cfg_path, c, t, &qf_expert_rules[r], err));
        }
    }
    return QF_OK;
}
