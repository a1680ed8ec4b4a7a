/* qforge_api.c - the small helpers of the public API (qforge.h). */
#include <string.h>

#include "qforge.h"

void qf_convert_opts_default(qf_convert_opts *o)
{
    memset(o, 0, sizeof *o);
    o->method = "rtn";
    o->layer_first = o->layer_last = -1;
    o->rtn_clip_search = -1;
    o->rtn_clip_min = 0.75f;
    qf_calib_opts_default(&o->calib);
}

qf_status qf_convert_set_method(qf_convert_opts *o, const char *method, qf_error *err)
{
    if (strcmp(method, "rtn") == 0) o->calib.method = QF_CALIB_RTN;
    else if (strcmp(method, "imatrix") == 0 && o->layout == QF_LAYOUT_GGUF) o->calib.method = QF_CALIB_GPTQ; /* its pass */
    else if (!(o->calib.method = qf_calib_method_from_name(method)))
        return qf_fail(err, QF_ERR_USAGE, "unknown method '%s' (rtn, gptq, awq, awq-gptq; imatrix with --layout gguf)", method);
    o->method = method;
    o->calibrated = o->calib.method != QF_CALIB_RTN || (o->scheme && o->scheme->needs_calibration) ||
                    o->calib.smooth_alpha > 0 || o->calib.rotate != QF_ROTATE_NONE;
    return QF_OK;
}

qf_status qf_verify_artifact(const qf_ctx *ctx, const char *dir, qf_verify_report *rep, qf_error *err)
{
    qf_progress prog;
    qf_progress_begin_ctx(&prog, ctx, "verify", 1);
    qf_status s = qf_verify_dir(dir, rep, &prog, err);
    qf_progress_end(&prog);
    return s;
}
