/* qf_model_card.h - README.md of an artifact: a model card the Hugging Face Hub accepts.
 *
 * Owns the card's content, rendered only from the manifest (and the licence / base model
 * carried over from the folder's previous README.md or config.json), so the same artifact
 * always gets the same bytes (resumed, merged and single runs agree):
 *
 *   ---                                   YAML front matter
 *   base_model: <from the source README / config _name_or_path, else the source folder name>
 *   library_name: transformers | gguf
 *   license: <carried from the source README front matter or config.json; omitted if none>
 *   pipeline_tag: text-generation
 *   tags: [qforge, <scheme>, <layout>, quantized]
 *   ---
 *   # title, one paragraph on provenance
 *   ## Recipe            scheme, method, layout, modules kept in full precision
 *   ## Files             every weight file with its size, total, ratio to the source
 *   ## How to load       vLLM, TensorRT-LLM, llama.cpp (what applies to the layout)
 *   ## Validation        the manifest's "validation" record as a table (qforge validate
 *                        --record), or how to fill it
 *   ## Integrity         qforge verify
 *
 * Layouts come from manifest.recipe.layout: "compressed-tensors" (default), "modelopt",
 * "gguf", "safetensors" (unquantized passthrough).
 */
#ifndef QF_MODEL_CARD_H
#define QF_MODEL_CARD_H

#include <jansson.h>

#include "qf_error.h"

#ifdef __cplusplus
extern "C" {
#endif

#define QF_MODEL_CARD_NAME "README.md"

/* Render dir/README.md from manifest (replacing any README.md there, after reading the
 * licence and base model from it), then record the new file in manifest["files"]: any
 * entry for README.md is replaced by one at the end of the list, so fresh, resumed, merged
 * and re-rendered artifacts list their files alike.  Call it before qf_manifest_write.
 * QF_ERR_IO naming the file when it cannot be written. */
qf_status qf_model_card_write(const char *dir, json_t *manifest, qf_error *err);

/* For commands that change a finished artifact's manifest (qforge validate --record): load
 * dir's manifest (seal checked), re-render README.md, re-seal and write the manifest. */
qf_status qf_model_card_refresh(const char *dir, qf_error *err);

#ifdef __cplusplus
}
#endif

#endif /* QF_MODEL_CARD_H */
