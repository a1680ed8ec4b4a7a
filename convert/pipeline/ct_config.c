/* ct_config.c - compressed-tensors quantization_config for each scheme (see ct_config.h). */
#include "ct_config.h"

#include <stdio.h>
#include <string.h>

static json_t *qf_ct_args(int bits, const char *type, int symmetric, int group_size, const char *strategy, int dynamic)
{
    json_t *a = json_pack("{s:i, s:s, s:b, s:s, s:b, s:n, s:n}", "num_bits", bits, "type", type, "symmetric", symmetric,
                          "strategy", strategy, "dynamic", dynamic, "actorder", "block_structure");
    json_object_set_new(a, "group_size", group_size > 0 ? json_integer(group_size) : json_null());
    json_object_set_new(a, "observer", dynamic ? json_null() : json_string("minmax"));
    json_object_set_new(a, "observer_kwargs", json_object());
    return a;
}

/* One config group: the scheme's weight and input-activation arguments over targets (stolen). */
static json_t *qf_ct_group(const qf_scheme *s, json_t *targets)
{
    json_t *w = NULL, *in = json_null();
    switch (s->id) {
    case QF_SCHEME_FP8_DYNAMIC:
        w = qf_ct_args(8, "float", 1, 0, "channel", 0);
        in = qf_ct_args(8, "float", 1, 0, "token", 1);
        break;
    case QF_SCHEME_FP8:
        w = qf_ct_args(8, "float", 1, 0, "tensor", 0);
        in = qf_ct_args(8, "float", 1, 0, "tensor", 0);
        json_object_set_new(in, "observer", json_string("static_minmax"));
        break;
    case QF_SCHEME_W4A16:
    case QF_SCHEME_W4A16_ASYM:
        w = qf_ct_args(4, "int", s->symmetric, 128, "group", 0);
        break;
    case QF_SCHEME_NVFP4A16:
    case QF_SCHEME_NVFP4:
        /* scale_dtype: without it compressed-tensors (>= 0.19) does not round the run-time
         * activation block scales to E4M3, and a zero scale gets the model dtype's eps */
        w = qf_ct_args(4, "float", 1, 16, "tensor_group", 0);
        json_object_set_new(w, "scale_dtype", json_string("torch.float8_e4m3fn"));
        if (s->id == QF_SCHEME_NVFP4) {
            in = qf_ct_args(4, "float", 1, 16, "tensor_group", 0);
            json_object_set_new(in, "dynamic", json_string("local"));
            json_object_set_new(in, "observer", json_string("static_minmax"));
            json_object_set_new(in, "scale_dtype", json_string("torch.float8_e4m3fn"));
        }
        break;
    case QF_SCHEME_MXFP4A16:
        w = qf_ct_args(4, "float", 1, 32, "group", 0);
        json_object_set_new(w, "scale_dtype", json_string("torch.uint8"));
        break;
    case QF_SCHEME_W8A8:
        w = qf_ct_args(8, "int", 1, 0, "channel", 0);
        in = qf_ct_args(8, "int", 1, 0, "token", 1);
        break;
    }
    return json_pack("{s:o, s:o, s:o, s:n, s:s}", "targets", targets, "weights", w, "input_activations", in,
                     "output_activations", "format", s->ct_format);
}

static json_t *qf_ct_config(const char *format, json_t *groups, char *const *ignored, int n_ignored)
{
    json_t *ign = json_array();
    for (int i = 0; i < n_ignored; i++) json_array_append_new(ign, json_string(ignored[i]));
    return json_pack("{s:s, s:s, s:s, s:s, s:o, s:o, s:n, s:n, s:{}, s:{}}", "quant_method", "compressed-tensors",
                     "format", format, "quantization_status", "compressed", "version", "0.18.0", "config_groups",
                     groups, "ignore", ign, "kv_cache_scheme", "global_compression_ratio", "sparsity_config",
                     "transform_config");
}

json_t *qf_ct_quant_config(const qf_scheme *s, char *const *ignored, int n_ignored)
{
    json_t *groups = json_pack("{s:o}", "group_0", qf_ct_group(s, json_pack("[s]", "Linear")));
    return qf_ct_config(s->ct_format, groups, ignored, n_ignored);
}

json_t *qf_ct_quant_config_mixed(const qf_scheme *const *schemes, int n_schemes, const qf_scheme *const *mod_scheme,
                                 char *const *modules, int n_modules, char *const *ignored, int n_ignored)
{
    json_t *groups = json_object();
    const char *format = NULL;
    int mixed_format = 0, g = 0;
    for (int k = 0; k < n_schemes; k++) {
        json_t *targets = json_array();
        int experts = 0;
        for (int i = 0; i < n_modules; i++)
            if (mod_scheme[i] != schemes[k]) continue;
            else if (strstr(modules[i], ".experts.")) experts = 1;
            else json_array_append_new(targets, json_string(modules[i]));
        /* MoE experts by one regex that names them: transformers 5.23 finds the experts' group
         * as the one whose "re:" targets mention experts (get_experts_scheme) */
        if (experts) json_array_append_new(targets, json_string("re:.*\\.experts\\..*"));
        if (json_array_size(targets) == 0) {
            json_decref(targets);
            continue;
        }
        char name[32];
        snprintf(name, sizeof name, "group_%d", g++);
        json_object_set_new(groups, name, qf_ct_group(schemes[k], targets));
        if (format && strcmp(format, schemes[k]->ct_format) != 0) mixed_format = 1;
        format = schemes[k]->ct_format;
    }
    /* compressed-tensors names a model whose groups differ in format "mixed-precision" and
     * then reads each group's own "format" */
    return qf_ct_config(mixed_format ? "mixed-precision" : format ? format : "dense", groups, ignored, n_ignored);
}
