/* convert_plan.c - decide what is quantized and lay out the output shards (see convert_plan.h). */
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "convert_plan.h"

/* Default ignore list: modules that stay in full precision whatever the scheme. */
static int qf_default_ignored(const char *module)
{
    static const char *const needles[] = {"lm_head", "embed_tokens", "wte", "wpe", "norm", "embedding"};
    for (size_t i = 0; i < sizeof needles / sizeof *needles; i++)
        if (strstr(module, needles[i])) return 1;
    /* MoE routers: mixtral block_sparse_moe.gate, qwen-moe mlp.gate, shared_expert_gate, gpt-oss router */
    size_t l = strlen(module);
    if (l >= 5 && strcmp(module + l - 5, ".gate") == 0) return 1;
    if (strstr(module, "shared_expert_gate") || strstr(module, ".router")) return 1;
    return 0;
}

static int qf_is_linear_like(const qf_tensor *t)
{
    size_t l = strlen(t->name);
    return l > 7 && strcmp(t->name + l - 7, ".weight") == 0 && t->ndim == 2 && qf_dtype_is_float(t->dtype);
}

/* Key that fused siblings share: module name with its last component generalised. */
static void qf_sibling_key(const char *module, char *key, size_t len)
{
    static const char *const fused[][2] = {{"q_proj", "qkv"}, {"k_proj", "qkv"}, {"v_proj", "qkv"},
                                           {"gate_proj", "gate_up"}, {"up_proj", "gate_up"},
                                           {"w1", "w13"}, {"w3", "w13"}};
    const char *last = strrchr(module, '.');
    last = last ? last + 1 : module;
    for (size_t i = 0; i < sizeof fused / sizeof *fused; i++)
        if (strcmp(last, fused[i][0]) == 0) {
            snprintf(key, len, "%.*s%s", (int)(last - module), module, fused[i][1]);
            return;
        }
    snprintf(key, len, "%s", module);
}

void qf_shard_name(int shard, int n_shards, char *buf, size_t len)
{
    if (n_shards == 1) snprintf(buf, len, "model.safetensors");
    else snprintf(buf, len, "model-%05d-of-%05d.safetensors", shard + 1, n_shards);
}

static int qf_out_cmp(const void *a, const void *b)
{
    return strcmp(((const qf_out_tensor *)a)->name, ((const qf_out_tensor *)b)->name);
}

void qf_plan_free(qf_convert_plan *p, int n_src)
{
    for (int i = 0; i < p->n_out; i++) free(p->out[i].name);
    free(p->out);
    if (p->mods)
        for (int i = 0; i < n_src; i++) free(p->mods[i].module);
    free(p->mods);
    for (int i = 0; i < p->n_ignored; i++) free(p->ignored_modules[i]);
    free(p->ignored_modules);
    memset(p, 0, sizeof *p);
}

qf_status qf_plan_build(const qf_convert_opts *o, const qf_checkpoint *ck, qf_convert_plan *p, qf_error *err)
{
    memset(p, 0, sizeof *p);
    regex_t re[QF_MAX_IGNORE];
    for (int i = 0; i < o->n_ignore; i++)
        if (regcomp(&re[i], o->ignore[i], REG_EXTENDED | REG_NOSUB) != 0) {
            for (int k = 0; k < i; k++) regfree(&re[k]);
            return qf_fail(err, QF_ERR_USAGE, "--ignore '%s' is not a valid extended regular expression", o->ignore[i]);
        }
    p->mods = calloc((size_t)ck->n_tensors, sizeof *p->mods);
    p->ignored_modules = calloc((size_t)ck->n_tensors + 1, sizeof(char *));
    int cap = ck->n_tensors * QF_PLAN_MAX + 1;
    p->out = calloc((size_t)cap, sizeof *p->out);
    qf_status st = QF_OK;
    for (int i = 0; i < ck->n_tensors && st == QF_OK; i++) {
        const qf_tensor *t = &ck->tensors[i];
        qf_module_plan *m = &p->mods[i];
        if (qf_is_linear_like(t)) {
            m->module = strndup(t->name, strlen(t->name) - 7);
            int ignored = qf_default_ignored(m->module);
            for (int k = 0; k < o->n_ignore && !ignored; k++) ignored = regexec(&re[k], m->module, 0, NULL, 0) == 0;
            if (!ignored && !qf_scheme_fits(o->scheme, t->shape[0], t->shape[1])) ignored = 1;
            int is_embedding = strstr(m->module, "embed") || strstr(m->module, "wte") || strstr(m->module, "wpe");
            if (ignored && !is_embedding && !strstr(m->module, "norm")) p->ignored_modules[p->n_ignored++] = strdup(m->module);
            if (!ignored) {
                m->quantized = 1;
                st = qf_quant_plan_linear(o->scheme, t->shape[0], t->shape[1], &m->plan, err);
            }
        }
        if (!m->quantized) {
            qf_out_tensor *ot = &p->out[p->n_out++];
            ot->name = strdup(t->name);
            ot->dtype = t->dtype;
            ot->ndim = t->ndim;
            memcpy(ot->shape, t->shape, sizeof ot->shape);
            ot->nbytes = t->nbytes;
            ot->src = i;
            ot->plan_index = -1;
            continue;
        }
        for (int k = 0; k < m->plan.n; k++) {
            const qf_packed_tensor *pt = &m->plan.t[k];
            qf_out_tensor *ot = &p->out[p->n_out++];
            size_t len = strlen(m->module) + strlen(pt->suffix) + 2;
            ot->name = malloc(len);
            snprintf(ot->name, len, "%s.%s", m->module, pt->suffix);
            ot->dtype = pt->dtype;
            ot->ndim = pt->ndim;
            ot->shape[0] = pt->shape[0];
            ot->shape[1] = pt->shape[1];
            ot->nbytes = pt->nbytes;
            ot->src = i;
            ot->plan_index = k;
        }
    }
    for (int i = 0; i < o->n_ignore; i++) regfree(&re[i]);
    if (st) return st;
    if (p->n_out == 0) return qf_fail(err, QF_ERR_FORMAT, "%s: checkpoint has no tensors", ck->dir);
    qsort(p->out, (size_t)p->n_out, sizeof *p->out, qf_out_cmp);

    /* nvfp4: fused siblings share one global scale, from the max of their amaxes */
    if (o->scheme->has_global_scale) {
        char key_i[512], key_j[512];
        float *amax = calloc((size_t)ck->n_tensors, sizeof(float));
        for (int i = 0; i < ck->n_tensors; i++)
            if (p->mods[i].quantized)
                amax[i] = qf_tensor_absmax(ck->tensors[i].dtype, ck->tensors[i].data, qf_tensor_numel(&ck->tensors[i]));
        for (int i = 0; i < ck->n_tensors; i++) {
            if (!p->mods[i].quantized) continue;
            qf_sibling_key(p->mods[i].module, key_i, sizeof key_i);
            float g = amax[i];
            for (int j = 0; j < ck->n_tensors; j++) {
                if (j == i || !p->mods[j].quantized) continue;
                qf_sibling_key(p->mods[j].module, key_j, sizeof key_j);
                if (strcmp(key_i, key_j) == 0 && amax[j] > g) g = amax[j];
            }
            p->mods[i].group_amax = g;
        }
        free(amax);
    }

    /* shards: greedy in name order, a module's packed tensors never split across shards */
    uint64_t limit = o->max_shard_bytes ? o->max_shard_bytes : 5000000000ull, cur = 0;
    int shard = 0;
    for (int i = 0; i < p->n_out; i++) {
        int starts_unit = i == 0 || p->out[i - 1].src != p->out[i].src;
        if (starts_unit && cur > 0 && cur + p->out[i].nbytes > limit) {
            shard++;
            cur = 0;
        }
        p->out[i].shard = shard;
        cur += p->out[i].nbytes;
    }
    p->n_shards = shard + 1;
    return QF_OK;
}
