/* qf_quant_source.h - checkpoints that are already quantized, read as bf16 (dequantized on read).
 *
 * Owns two decisions about a source checkpoint: what its quantization is (qf_qsource_detect:
 * config.json's quantization_config, ModelOpt's hf_quant_config.json, and the tensors present)
 * and how its quantized tensors become the bf16 weights the converter's float path reads
 * (qf_qsource_dequantize).  The sources read, and their rules (docs/formats-io.md):
 *   fp8-block   quant_method "fp8" (DeepSeek-V3/R1, transformers FineGrainedFP8): X.weight
 *               F8_E4M3 [.., R, C] and X.weight_scale_inv [.., ceil(R/bn), ceil(C/bk)] from
 *               weight_block_size [bn, bk] (default [128, 128]); edge blocks may be partial:
 *               w[r][c] = e4m3(q[r][c]) * scale_inv[r / bn][c / bk]
 *   mxfp4       quant_method "mxfp4" (GPT-OSS experts): P_blocks U8 [E, N, G, 16] and P_scales
 *               U8 [E, N, G] become P [E, 32G, N] (transposed, as transformers' GPT-OSS
 *               experts hold it): value k of row n is e2m1(nibble k % 2 of byte k % 32 / 2,
 *               low nibble first) * 2^(scale - 127)
 *   ct-fp8      quant_method "compressed-tensors", every weights group float 8-bit (strategy
 *               tensor, channel or block): X.weight F8_E4M3 * X.weight_scale, broadcast
 *   modelopt-fp8  quant_algo "FP8" (ModelOpt: hf_quant_config.json or quant_method "modelopt"):
 *               X.weight F8_E4M3 * X.weight_scale (one per tensor)
 * The product is formed in float32 and rounded once to bf16 (round to nearest even), as
 * transformers' dequantizing loaders do, so the weights equal theirs bit for bit; the value
 * rules are quant/qf_fmt_fp8.h's and qf_fmt_mxfp4.h's.  Scale companions and activation scales
 * (input_scale, activation_scale, k_scale, v_scale) do not appear in the table afterwards.
 * Anything else quantized is refused, naming the file and the key or tensor: another
 * quant_method or algorithm, a scheme a known method does not use, a quantized tensor without
 * its scale, or quantized tensors under a config that declares no quantization.  A source is
 * never copied through half converted.
 */
#ifndef QF_QUANT_SOURCE_H
#define QF_QUANT_SOURCE_H

#include "qf_error.h"
#include "qf_safetensors.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum qf_qsource_kind {
    QF_QSOURCE_NONE = 0,         /* float weights: nothing to dequantize */
    QF_QSOURCE_FP8_BLOCK = 1,
    QF_QSOURCE_MXFP4 = 2,
    QF_QSOURCE_CT_FP8 = 3,
    QF_QSOURCE_MODELOPT_FP8 = 4,
} qf_qsource_kind;

typedef struct qf_qsource {
    qf_qsource_kind kind;
    int block_rows, block_cols;  /* fp8-block: weight_block_size */
    char origin[128];            /* where it was read: "config.json quantization_config" ... */
    int n_quantized;             /* tensors dequantized (detect: tensors that will be) */
    int n_dropped;               /* scale and activation-scale companions dropped */
} qf_qsource;

/* "none", "fp8-block", "mxfp4", "compressed-tensors-fp8", "modelopt-fp8". */
const char *qf_qsource_name(qf_qsource_kind k);

/* What dir's source quantization is (dir: the checkpoint folder holding config.json, and
 * hf_quant_config.json when ModelOpt wrote one), checked against ck's tensors: every quantized
 * tensor has its companion of the right shape and no quantized tensor is left over.  Refusals
 * are QF_ERR_UNSUPPORTED (a method or scheme qforge does not read) or QF_ERR_FORMAT (tensors
 * that disagree with the config), naming the file and the key or tensor. */
qf_status qf_qsource_detect(const char *dir, const qf_checkpoint *ck, qf_qsource *q, qf_error *err);

/* Replace the quantized tensors of ck (as detected into q) by their bf16 dequantization and
 * drop their companions; the table stays sorted by name.  Nothing is decoded here: each new
 * tensor has data NULL and a decode recipe (qf_tensor.decode), and qf_checkpoint_acquire
 * decodes it when a reader needs it (qf_checkpoint_release frees it), so a converter holds one
 * dequantized tensor at a time.  E8M0 scales are checked here (0xFF refused).  On failure ck
 * may only be freed. */
qf_status qf_qsource_dequantize(qf_checkpoint *ck, qf_qsource *q, qf_error *err);

/* qf_checkpoint_open, then detect and dequantize: the table a converter reads a source through
 * (every read of a tensor's data goes through qf_checkpoint_acquire).  q (may be NULL)
 * receives what was found. */
qf_status qf_checkpoint_open_source(const char *path, qf_checkpoint **out, qf_qsource *q, qf_error *err);

#ifdef __cplusplus
}
#endif

#endif /* QF_QUANT_SOURCE_H */
