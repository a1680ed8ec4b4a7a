/* qforge.h - the public C API of libqforge.a for engines and tools (docs/library.md).
 *
 * One include for what a caller needs to convert, calibrate and verify without the CLI:
 *   qf_ctx           threads, device, memory budget, progress/log callback, cancellation
 *   qf_convert_run   convert a Hugging Face checkpoint (RTN, or calibrated: GPTQ / AWQ /
 *                    AWQ-GPTQ / static activation scales) into a verified artifact folder,
 *                    resumable after an interruption (qf_convert.h)
 *   qf_calibrate     the calibration pass alone, tensors handed to a sink (qf_calibrate.h)
 *   qf_verify_artifact  recompute every file and tensor hash of an artifact (qf_manifest.h)
 *   qf_validate      perplexity of a model on a text and an artifact's drift against it
 *                    (KLD, top-1; qf_validate.h)
 * This header is the library's stable section (docs/library.md "What is stable"): within a
 * major version what it names keeps its meaning, and option structs only grow at their end
 * (start from the *_default functions).  Every other public header is usable but advanced:
 * it may change between minor versions.
 * The library prints nothing and reads no environment variable; errors come back as a
 * qf_status with a one-line qf_error message.  Link: libqforge.a -lzip -lxxhash -ljansson
 * -lpcre2-8 -lcrypto -lm -fopenmp -pthread (plus the CUDA libraries in a CUDA build).
 */
#ifndef QFORGE_H
#define QFORGE_H

#include "qf_calibrate.h"
#include "qf_convert.h"
#include "qf_ctx.h"
#include "qf_error.h"
#include "qf_manifest.h"
#include "qf_scheme.h"
#include "qf_validate.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Options of a plain `qforge convert SRC -o OUT --scheme SCHEME` (RTN, compressed-tensors,
 * 5 GB shards, all layers, calibration defaults for when o->calibrated is set). */
void qf_convert_opts_default(qf_convert_opts *o);

/* For a calibrated method ("gptq", "awq", "awq-gptq"; "imatrix" with o->layout QF_LAYOUT_GGUF)
 * or "rtn": sets o->method, o->calib.method and o->calibrated as the CLI does (a
 * static-activation scheme, SmoothQuant or a rotation calibrates under rtn too).  QF_ERR_USAGE
 * for an unknown name.  Call after setting o->layout, o->scheme, o->calib.smooth_alpha and
 * o->calib.rotate. */
qf_status qf_convert_set_method(qf_convert_opts *o, const char *method, qf_error *err);

/* qf_verify_dir with its progress ("verify", in bytes) sent to ctx's callback. */
qf_status qf_verify_artifact(const qf_ctx *ctx, const char *dir, qf_verify_report *rep, qf_error *err);

#ifdef __cplusplus
}
#endif

#endif /* QFORGE_H */
