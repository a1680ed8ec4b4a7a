/* ct_config.h - internal to convert/: the compressed-tensors quantization_config.
 *
 * Owns the JSON that vLLM / SGLang read from config.json["quantization_config"] to load an
 * artifact: quant_method "compressed-tensors", the format, one config group targeting
 * Linear with the scheme's weight and input-activation arguments (as the compressed-tensors
 * presets FP8_DYNAMIC, W4A16, W4A16_ASYM, NVFP4A16, MXFP4A16, W8A8 spell them), and the
 * ignore list of Linear modules kept in full precision; for mixed precision one group per
 * scheme, each targeting its modules by name.
 */
#ifndef QF_CT_CONFIG_H
#define QF_CT_CONFIG_H

#include <jansson.h>

#include "qf_scheme.h"

/* New reference; ignored[n_ignored] are module names. */
json_t *qf_ct_quant_config(const qf_scheme *s, char *const *ignored, int n_ignored);
/* Mixed precision (mixed.h): one group per scheme of schemes[] that some module uses, in that
 * order, whose targets are the exact names of its modules (modules[i] has mod_scheme[i]), as
 * llm-compressor writes non-uniform recipes, except MoE experts (".experts." in the name,
 * all in one scheme), named by the one target "re:.*\.experts\..*"; the top-level format is
 * the groups' own when they agree, else "mixed-precision".  New reference. */
json_t *qf_ct_quant_config_mixed(const qf_scheme *const *schemes, int n_schemes, const qf_scheme *const *mod_scheme,
                                 char *const *modules, int n_modules, char *const *ignored, int n_ignored);

#endif
